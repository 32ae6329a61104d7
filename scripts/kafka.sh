#!/bin/sh
# A project-local single-node Apache Kafka (KRaft, combined broker+controller)
# for development, tests and benchmarks, run on this machine's Java from the
# jars that scripts/deps.sh caches.
#
#   scripts/kafka.sh start     format storage on first use, start, wait; prints 127.0.0.1:PORT
#   scripts/kafka.sh stop      SIGTERM, up to 30 s, then SIGKILL
#   scripts/kafka.sh status    exit 0 if running (prints the address), 1 if not
#   scripts/kafka.sh brokers   print the address (does not check that it runs)
#   scripts/kafka.sh topics ARGS...   run the jars' kafka-topics tool against it,
#                                     e.g. topics --create --topic t --partitions 4
#
# Data and logs live in $PANEL_RUN_DIR/kafka (default <repo>/.run/kafka). The
# broker listens on 127.0.0.1 on $PANEL_KAFKA_PORT or else a free port
# remembered in $PANEL_RUN_DIR/kafka/port (the controller's in controller.port).
# Topics are not auto-created.
#
# PANEL_KAFKA_SECURE=1 (a test mode; the default stays PLAINTEXT): the client
# listener requires SASL_SSL. At the first start a self-signed CA and a broker
# certificate for 127.0.0.1 are made with openssl in $PANEL_RUN_DIR/kafka/tls,
# and two users with random passwords: "admin" (the broker itself, a super user)
# and "panel" (for the services). Both are SCRAM users, created in the storage
# with the broker's own kafka-storage tool, and PLAIN users of the listener.
# The services' settings are written to $PANEL_RUN_DIR/kafka/client.env
# (PANEL_KAFKA_* lines; the password stays in tls/panel.password) and the jars'
# tools' to admin.properties. The services use PLAIN over TLS here: Debian's
# librdkafka 2.0 computes a SCRAM proof that Kafka 4 rejects (fixed in
# librdkafka 2.6.1), see docs/operations.md; SCRAM is tested against Kafka 3.9,
# started by this script with PANEL_KAFKA_POM=tests/kafka-3.9/pom.xml.
set -eu
. "$(dirname -- "$0")/common.sh"

KD=$PANEL_RUN_DIR/kafka
DATA=$KD/data
LOGS=$KD/logs
PIDFILE=$KD/kafka.pid
PORTFILE=$KD/port
CPORTFILE=$KD/controller.port
PROPS=$KD/server.properties
START_TIMEOUT=90
STOP_TIMEOUT=30
HEAP=${PANEL_KAFKA_HEAP:--Xmx512m}

libs() {
    kafka_jars_ok || die "Kafka $(kafka_version) jars are not in $(kafka_home)/libs: run scripts/deps.sh"
    printf '%s/libs/*\n' "$(kafka_home)"
}

have java || die "java not found on PATH (run scripts/deps.sh)"
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java

port() { cat "$PORTFILE" 2>/dev/null || true; }
brokers() { printf '127.0.0.1:%s\n' "$(port)"; }

# The pid in the pid file, if that process is our broker.
pid() {
    p=$(cat "$PIDFILE" 2>/dev/null || true)
    [ -n "$p" ] && alive "$p" || return 1
    # Guard against a reused pid: the command line must name our properties file.
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$PROPS" || return 1
    printf '%s\n' "$p"
}

running() { pid >/dev/null; }

write_log4j() {
    cat > "$KD/log4j2.properties" <<EOF
# Written by scripts/kafka.sh at every start.
status = warn
name = k12panel-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $LOGS/server.log
appender.file.filePattern = $LOGS/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
    # Quiet console logging for the command-line tools.
    cat > "$KD/log4j2-tools.properties" <<'EOF'
status = error
name = k12panel-kafka-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

SECURE=${PANEL_KAFKA_SECURE:-0}
TLS=$KD/tls

# A CA, a broker key pair signed by it for 127.0.0.1, a PKCS12 keystore, and the
# users' passwords; kept across restarts like the data.
make_tls() {
    [ -f "$TLS/broker.p12" ] && return 0
    have openssl || die "openssl not found (PANEL_KAFKA_SECURE=1 needs it)"
    mkdir -p "$TLS"
    (
        umask 077
        cd "$TLS"
        openssl rand -hex 16 > keystore.password
        openssl rand -hex 16 > admin.password
        openssl rand -hex 16 > panel.password
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=k12panel test CA" \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout broker.key -out broker.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > broker.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile broker.ext -out broker.pem 2>/dev/null
        openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
            -passout "pass:$(cat keystore.password)" -out broker.p12
    ) || die "making the test CA and broker certificate with openssl failed"
}

write_secure_props() {
    kp=$(cat "$TLS/keystore.password") ap=$(cat "$TLS/admin.password")
    pp=$(cat "$TLS/panel.password")
    jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$ap\";"
    plain="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$ap\" user_admin=\"$ap\" user_panel=\"$pp\";"
    cat >> "$PROPS" <<EOF
listeners=SASL_SSL://127.0.0.1:$bp,CONTROLLER://127.0.0.1:$cp
advertised.listeners=SASL_SSL://127.0.0.1:$bp
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$jaas
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$jaas
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$kp
ssl.key.password=$kp
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
ssl.client.auth=none
super.users=User:admin
EOF
    (umask 077; cat > "$KD/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$jaas
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
EOF
    )
    cat > "$KD/client.env" <<EOF
PANEL_KAFKA_SECURITY_PROTOCOL=SASL_SSL
PANEL_KAFKA_SASL_MECHANISM=PLAIN
PANEL_KAFKA_SASL_USERNAME=panel
PANEL_KAFKA_SASL_PASSWORD_FILE=$TLS/panel.password
PANEL_KAFKA_SSL_CA_FILE=$TLS/ca.pem
EOF
}

# kcat's options to reach the broker (as admin in secure mode), one a line.
kcat_auth() {
    [ "$SECURE" = 1 ] || return 0
    printf '%s\n' -X security.protocol=SASL_SSL -X sasl.mechanisms=PLAIN \
        -X sasl.username=admin -X "sasl.password=$(cat "$TLS/admin.password")" \
        -X "ssl.ca.location=$TLS/ca.pem"
}

write_props() {
    bp=$1 cp=$2
    if [ "$SECURE" = 1 ]; then
        listeners="# client listener: see below"
    else
        listeners="listeners=PLAINTEXT://127.0.0.1:$bp,CONTROLLER://127.0.0.1:$cp
advertised.listeners=PLAINTEXT://127.0.0.1:$bp
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    fi
    cat > "$PROPS" <<EOF
# Written by scripts/kafka.sh at every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cp
controller.listener.names=CONTROLLER
$listeners
log.dirs=$DATA
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=3
num.io.threads=4
log.retention.hours=168
log.segment.bytes=268435456
EOF
    if [ "$SECURE" = 1 ]; then write_secure_props; fi
}

java_cmd() {
    # $1: log4j2 config; rest: arguments
    l4j=$1; shift
    "$JAVA" -Djava.awt.headless=true -Dlog4j2.configurationFile="$l4j" \
        -cp "$(libs)" "$@"
}

start() {
    if running; then
        log "already running (pid $(pid), data $DATA)"
        brokers
        return 0
    fi
    l=$(libs)
    mkdir -p "$KD" "$LOGS"
    rm -f "$PIDFILE"

    # Ports: $PANEL_KAFKA_PORT, else the remembered ones if still free, else new ones.
    bp=${PANEL_KAFKA_PORT:-$(port)}
    cp=$(cat "$CPORTFILE" 2>/dev/null || true)
    if [ -n "${PANEL_KAFKA_PORT:-}" ] && ! port_free "$bp"; then
        die "PANEL_KAFKA_PORT=$bp is already in use on 127.0.0.1"
    fi
    if [ -z "$bp" ] || ! port_free "$bp"; then bp=; fi
    if [ -z "$cp" ] || [ "$cp" = "$bp" ] || ! port_free "$cp"; then cp=; fi
    # shellcheck disable=SC2046 # two port numbers, split on purpose
    set -- $(free_ports 2)
    [ -n "$bp" ] || { bp=$1; [ "$bp" != "$cp" ] || bp=$2; }
    [ -n "$cp" ] || { cp=$1; [ "$cp" != "$bp" ] || cp=$2; }
    if [ "$SECURE" = 1 ]; then make_tls; fi
    write_props "$bp" "$cp"
    write_log4j
    echo "$bp" > "$PORTFILE"
    echo "$cp" > "$CPORTFILE"

    if [ ! -f "$DATA/meta.properties" ]; then
        cid=$(java_cmd "$KD/log4j2-tools.properties" kafka.tools.StorageTool random-uuid) ||
            die "could not generate a cluster id with kafka.tools.StorageTool"
        log "formatting storage in $DATA (cluster id $cid)"
        rm -rf "$DATA"
        # In secure mode the SCRAM users go into the new storage's metadata.
        set --
        if [ "$SECURE" = 1 ]; then
            pp=$(cat "$TLS/panel.password")
            set -- --add-scram "SCRAM-SHA-512=[name=admin,password=\"$(cat "$TLS/admin.password")\"]" \
                --add-scram "SCRAM-SHA-512=[name=panel,password=\"$pp\"]" \
                --add-scram "SCRAM-SHA-256=[name=panel,password=\"$pp\"]"
        fi
        java_cmd "$KD/log4j2-tools.properties" kafka.tools.StorageTool format \
            -t "$cid" -c "$PROPS" "$@" >"$KD/format.log" 2>&1 || {
            tail_log "$KD/format.log"
            die "formatting Kafka storage failed"
        }
    fi

    log "starting Kafka $(kafka_version) on 127.0.0.1:$bp (controller :$cp, data $DATA, log $LOGS/server.log)"
    # The broker runs detached in its own session; its console goes to stdout.log.
    (
        cd "$KD"
        # shellcheck disable=SC2086
        exec setsid "$JAVA" $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
            -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
            -Dlog4j2.configurationFile="$KD/log4j2.properties" \
            -Dkafka.logs.dir="$LOGS" \
            -cp "$l" kafka.Kafka "$PROPS" \
            </dev/null >"$LOGS/stdout.log" 2>&1
    ) &
    echo $! > "$PIDFILE"

    deadline=$(( $(now) + START_TIMEOUT ))
    # shellcheck disable=SC2046 # kcat's -X options, split on purpose
    until kcat -L -b "127.0.0.1:$bp" -m 2 $(kcat_auth) >/dev/null 2>&1; do
        if ! running; then
            tail_log "$LOGS/stdout.log" 20
            tail_log "$LOGS/server.log"
            rm -f "$PIDFILE"
            die "Kafka exited during start-up (see the logs above)"
        fi
        if [ "$(now)" -ge "$deadline" ]; then
            tail_log "$LOGS/server.log"
            die "Kafka did not answer metadata requests on 127.0.0.1:$bp within ${START_TIMEOUT}s (still running as pid $(pid); 'scripts/kafka.sh stop' to stop it)"
        fi
        sleep 0.3
    done
    log "ready (pid $(pid))"
    brokers
}

stop() {
    if ! p=$(pid); then
        log "not running"
        rm -f "$PIDFILE"
        return 0
    fi
    log "stopping Kafka (pid $p)"
    kill -TERM "$p" 2>/dev/null || true
    deadline=$(( $(now) + STOP_TIMEOUT ))
    while alive "$p"; do
        if [ "$(now)" -ge "$deadline" ]; then
            log "still running after ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$p" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    alive "$p" && die "pid $p is still alive after SIGKILL"
    rm -f "$PIDFILE"
    log "stopped"
}

have kcat || die "kcat not found (run scripts/deps.sh)"

cmd=${1:-}
[ $# -gt 0 ] && shift
server_command brokers "$cmd"
case $cmd in
    topics)
        running || die "not running: run '$0 start' first"
        if [ "$SECURE" = 1 ]; then set -- --command-config "$KD/admin.properties" "$@"; fi
        java_cmd "$KD/log4j2-tools.properties" org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "$(brokers)" "$@" ;;
    *) die "usage: $0 start|stop|status|brokers|topics [kafka-topics args]" ;;
esac
