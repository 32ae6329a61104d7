#!/bin/sh
# Install what the project needs and is missing.
#
#   scripts/deps.sh          install missing Debian packages, fetch the Kafka jars
#   scripts/deps.sh --check  exit 0 if everything is present, 1 otherwise; installs nothing
#
# Debian packages: apt-get runs only when dpkg-query says one is missing, so a
# second run needs no network and returns at once.
# Kafka: the broker jars pinned in deploy/kafka/pom.xml are copied by Maven to
#   ${PANEL_CACHE:-$HOME/.cache/k12panel}/kafka-<version>/libs/
# and a stamp file records that the copy is complete.
# Prints the Kafka cache directory on stdout at the end.
set -eu
. "$(dirname -- "$0")/common.sh"

PACKAGES="gcc make pkg-config librdkafka-dev libcurl4-openssl-dev libprotobuf-c-dev
protobuf-c-compiler protobuf-compiler libpq-dev postgresql postgresql-contrib
libcivetweb-dev libcmocka-dev libssl-dev libjansson-dev libcjose-dev default-jdk-headless maven
kcat clang libclang-rt-14-dev clang-format wrk python3 python3-venv curl docker-compose chromium
prometheus python3-confluent-kafka python3-protobuf"

CHECK=0
case ${1:-} in
    --check) CHECK=1 ;;
    "") ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (usage: $0 [--check])" ;;
esac

missing_packages() {
    for p in $PACKAGES; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [ "$st" = "install ok installed" ] || printf '%s ' "$p"
    done
}

have dpkg-query || die "dpkg-query not found: this script supports Debian/Ubuntu only"

missing=$(missing_packages)
jars_ok=1
kafka_jars_ok || jars_ok=0
(PANEL_KAFKA_POM=$PANEL_ROOT/tests/kafka-3.9/pom.xml; kafka_jars_ok) || jars_ok=0

if [ "$CHECK" = 1 ]; then
    rc=0
    if [ -n "$missing" ]; then
        log "missing Debian packages: $missing"; rc=1
    fi
    if [ "$jars_ok" = 0 ]; then
        log "missing Kafka jars in $PANEL_CACHE (deploy/kafka/pom.xml, tests/kafka-3.9/pom.xml)"; rc=1
    fi
    for tool in kubernetes-validate openapi-spec-validator st; do
        if [ ! -x "$PANEL_CACHE/venv/bin/$tool" ]; then
            log "missing $tool in $PANEL_CACHE/venv"; rc=1
        fi
    done
    if [ ! -d "$PANEL_ROOT/tests/browser/node_modules/playwright-core" ]; then
        log "missing playwright-core in tests/browser/node_modules"; rc=1
    fi
    if [ ! -x "$PANEL_ROOT/tests/proto/node_modules/.bin/buf" ]; then
        log "missing buf in tests/proto/node_modules"; rc=1
    fi
    if ! mvn -B -q -o -f "$PANEL_ROOT/examples/subscriber-java/pom.xml" dependency:resolve \
            >/dev/null 2>&1; then
        log "missing the Java subscriber example's jars in Maven's local repository"; rc=1
    fi
    [ "$rc" = 0 ] && log "all dependencies present"
    exit "$rc"
fi

# ---- Debian packages -------------------------------------------------------
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        SUDO=
    elif have sudo; then
        SUDO=sudo
    else
        die "missing Debian packages: $missing
run as root (or install sudo), or install them yourself:
  apt-get update && apt-get install -y $missing"
    fi
    log "installing Debian packages: $missing"
    $SUDO apt-get update -qq >&2 ||
        die "apt-get update failed (is a Debian package mirror reachable?)"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends $missing >&2 ||
        die "apt-get install failed for: $missing"
    still=$(missing_packages)
    [ -z "$still" ] || die "still missing after apt-get install: $still"
    log "Debian packages installed"
fi

# ---- Java: the Kafka 4 broker needs 17 or newer ----------------------------
have java || die "java not found on PATH (package default-jdk-headless)"
jv=$(java -XshowSettings:properties -version 2>&1 |
     sed -n 's/^ *java.specification.version = //p')
case $jv in
    1.*|9|1[0-6]) die "Java $jv found; Kafka $(kafka_version) needs Java 17 or newer" ;;
esac

# ---- Kafka jars ------------------------------------------------------------
# The product's broker (deploy/kafka/pom.xml) and Kafka 3.9 for the SCRAM test
# (tests/kafka-3.9/pom.xml; see there why).
fetch_kafka_jars() {
    kafka_jars_ok && return 0
    have mvn || die "mvn not found (package maven)"
    mkdir -p "$PANEL_CACHE"
    # Several work trees may run this at once: one fetch at a time.
    if have flock; then
        exec 9>"$PANEL_CACHE/.lock"
        flock 9
    fi
    KH=$(kafka_home)
    if ! kafka_jars_ok; then
        log "fetching Apache Kafka $(kafka_version) jars with Maven into $KH/libs"
        tmp=$KH/libs.tmp.$$
        rm -rf "$tmp"
        mkdir -p "$KH"
        if ! mvn -B -q -Dstyle.color=never -f "$PANEL_KAFKA_POM" dependency:copy-dependencies \
                -DoutputDirectory="$tmp" -DincludeScope=runtime >&2; then
            rm -rf "$tmp"
            die "Maven could not fetch the Kafka jars. Re-run without -q to see why:
  mvn -B -f $PANEL_KAFKA_POM dependency:copy-dependencies -DoutputDirectory=$tmp"
        fi
        ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 ||
            die "Maven ran but no kafka_2.13 jar landed in $tmp"
        rm -rf "$KH/libs"
        mv "$tmp" "$KH/libs"
        pom_sum > "$KH/.stamp"
        log "Kafka jars ready ($(ls "$KH/libs" | wc -l | tr -d ' ') jars)"
    fi
    exec 9>&-
}
(PANEL_KAFKA_POM=$PANEL_ROOT/tests/kafka-3.9/pom.xml; fetch_kafka_jars) || exit 1
fetch_kafka_jars
KH=$(kafka_home)

# ---- The Java subscriber example's jars (protobuf-java, kafka-clients) in Maven's local
# repository, so that its build (examples/subscriber-java/build.sh) works offline ---------
JAVA_EXAMPLE_POM=$PANEL_ROOT/examples/subscriber-java/pom.xml
if ! mvn -B -q -o -f "$JAVA_EXAMPLE_POM" dependency:resolve >/dev/null 2>&1; then
    log "fetching the Java subscriber example's dependencies with Maven"
    mvn -B -q -Dstyle.color=never -f "$JAVA_EXAMPLE_POM" dependency:resolve >&2 ||
        die "Maven could not fetch the dependencies of $JAVA_EXAMPLE_POM"
fi

# ---- Python tools for the tests, in one venv: offline Kubernetes schema validation
# (deployment tests), the OpenAPI validator and Schemathesis (contract tests) ----------
VENV=$PANEL_CACHE/venv
[ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV" >&2 ||
    die "python3 -m venv failed (package python3-venv)"
venv_tool() { # venv_tool <command> <pinned requirement>
    [ -x "$VENV/bin/$1" ] && return 0
    log "installing $2 into $VENV"
    "$VENV/bin/pip" install -q "$2" >&2 || die "pip could not install $2"
}
venv_tool kubernetes-validate kubernetes-validate==1.37.0
venv_tool openapi-spec-validator openapi-spec-validator==0.9.0
venv_tool st schemathesis==4.32.5

# ---- Browser tests: playwright-core drives Debian's chromium ---------------------------
if ! have node || ! have npm; then
    log "installing nodejs and npm"
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends \
        nodejs npm >&2 || die "apt-get install nodejs npm failed"
fi
if [ ! -d "$PANEL_ROOT/tests/browser/node_modules/playwright-core" ]; then
    log "installing playwright-core for the browser tests (npm ci)"
    (cd "$PANEL_ROOT/tests/browser" && npm ci --no-audit --no-fund >&2) ||
        die "npm ci failed in tests/browser"
fi

# ---- buf (lints proto/ in the contract tests), pinned in tests/proto/package.json ------
if [ ! -x "$PANEL_ROOT/tests/proto/node_modules/.bin/buf" ]; then
    log "installing buf for the contract tests (npm ci)"
    (cd "$PANEL_ROOT/tests/proto" && npm ci --no-audit --no-fund >&2) ||
        die "npm ci failed in tests/proto"
fi

log "all dependencies present"
printf '%s\n' "$KH"
