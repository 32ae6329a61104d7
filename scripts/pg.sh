#!/bin/sh
# A project-local PostgreSQL cluster for development, tests and benchmarks.
#
#   scripts/pg.sh start        init on first use, start, wait; prints the URL
#   scripts/pg.sh stop         fast shutdown, waits
#   scripts/pg.sh status       exit 0 if running (prints the URL), 1 if not
#   scripts/pg.sh url          print the URL (does not check that it runs)
#   scripts/pg.sh psql [ARGS]  psql connected to the panel database
#
# Data lives in $PANEL_RUN_DIR/pg (default: <repo>/.run/pg). It listens on
# 127.0.0.1 only, on $PANEL_PG_PORT or else a free port remembered in
# $PANEL_RUN_DIR/pg/port. Trust authentication: a local test server only.
# $PANEL_PG_PRELOAD (optional): shared_preload_libraries, e.g. pg_stat_statements.
# Database `panel`, role `panel` (superuser). When run as root the server runs
# as the `postgres` OS user, since PostgreSQL refuses to run as root.
set -eu
. "$(dirname -- "$0")/common.sh"

PGD=$PANEL_RUN_DIR/pg
DATA=$PGD/data
LOGFILE=$PGD/server.log
PORTFILE=$PGD/port
START_TIMEOUT=60

# PostgreSQL server binaries: $PANEL_PG_BIN, else the newest Debian install.
if [ -z "${PANEL_PG_BIN:-}" ]; then
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_ctl" ] && PANEL_PG_BIN=$d
    done
    # (the glob sorts 15 < 16 < 17 ...; 9.x is long gone)
fi
[ -n "${PANEL_PG_BIN:-}" ] && [ -x "$PANEL_PG_BIN/pg_ctl" ] ||
    die "PostgreSQL server binaries not found (install the postgresql package: scripts/deps.sh, or set PANEL_PG_BIN)"

# Run a server command as the cluster's owner.
if [ "$(id -u)" = 0 ]; then
    PGUSER_OS=postgres
    id "$PGUSER_OS" >/dev/null 2>&1 ||
        die "running as root but there is no 'postgres' OS user to run the server as"
    as_owner() { runuser -u "$PGUSER_OS" -- "$@"; }
else
    PGUSER_OS=$(id -un)
    as_owner() { "$@"; }
fi

# The unix socket goes inside the run dir, unless that path is too long for a
# socket name (108 bytes); then a short directory under /tmp named after it.
sock_dir() {
    s=$PGD/sock
    if [ ${#s} -gt 80 ]; then
        h=$(printf '%s' "$PGD" | cksum | awk '{print $1}')
        s=${TMPDIR:-/tmp}/k12panel-pg-$h
    fi
    printf '%s\n' "$s"
}

port() { cat "$PORTFILE" 2>/dev/null || true; }

url() { printf 'postgresql://panel@127.0.0.1:%s/panel\n' "$(port)"; }

running() {
    [ -f "$DATA/postmaster.pid" ] || return 1
    as_owner "$PANEL_PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# Every directory above $PGD must be searchable by the server's OS user.
ensure_traversable() {
    [ "$(id -u)" = 0 ] || return 0
    # Walk from / down to $PGD; open (o+x) only the directories that block.
    d='' rest=${PGD#/}
    while [ -n "$rest" ]; do
        d=$d/${rest%%/*}
        case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
        if ! runuser -u "$PGUSER_OS" -- test -x "$d"; then
            log "making $d searchable (chmod o+x) so that the '$PGUSER_OS' user can reach $PGD"
            chmod o+x "$d" || die "cannot chmod o+x $d; set PANEL_RUN_DIR to a path the '$PGUSER_OS' user can reach"
        fi
    done
}

init_cluster() {
    log "initializing a new cluster in $DATA"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown -R "$PGUSER_OS": "$PGD"
    chmod 700 "$DATA"
    loc=C
    locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8' && loc=C.UTF-8
    as_owner "$PANEL_PG_BIN/initdb" -D "$DATA" -U postgres --encoding=UTF8 \
        --locale="$loc" --auth-local=trust --auth-host=trust >"$PGD/initdb.log" 2>&1 || {
        tail_log "$PGD/initdb.log"
        die "initdb failed"
    }
    cat >>"$DATA/postgresql.conf" <<'EOF'

# ---- k12panel local server (scripts/pg.sh) ----
include_if_exists = 'panel.conf'
EOF
    touch "$DATA/.panel-initialized"
}

write_conf() {
    sd=$1 p=$2
    as_owner sh -c 'cat > "$1"' sh "$DATA/panel.conf" <<EOF
# Written by scripts/pg.sh at every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $p
unix_socket_directories = '$sd'
max_connections = 200
# The merger's workers each hold one advisory lock per linking address of a batch's changed
# People rows (up to ~2 x PANEL_MERGER_BATCH_MAX) until the batch commits (docs/merger.md).
max_locks_per_transaction = 256
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
effective_cache_size = 2GB
max_wal_size = 4GB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = on
fsync = on
random_page_cost = 1.1
log_line_prefix = '%m [%p] %q%u@%d '
log_lock_waits = on
timezone = 'UTC'
EOF
    # $PANEL_PG_PRELOAD: server libraries to preload, e.g. pg_stat_statements for the
    # benchmark's per-statement profiles (bench/run.py sets it for its own server only).
    if [ -n "${PANEL_PG_PRELOAD:-}" ]; then
        case $PANEL_PG_PRELOAD in
        *[!a-z0-9_,]*) die "PANEL_PG_PRELOAD: library names only (a-z, 0-9, _ and ,)" ;;
        esac
        printf "shared_preload_libraries = '%s'\n" "$PANEL_PG_PRELOAD" |
            as_owner sh -c 'cat >> "$1"' sh "$DATA/panel.conf"
    fi
}

create_db() {
    sd=$1 p=$2
    psql_admin() { psql -X -q -h "$sd" -p "$p" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
    psql_admin -c "DO \$\$BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'panel') THEN
            CREATE ROLE panel LOGIN SUPERUSER;
        END IF; END\$\$;" || die "could not create role panel"
    if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'panel'")" != 1 ]; then
        psql_admin -c "CREATE DATABASE panel OWNER panel" || die "could not create database panel"
    fi
}

start() {
    if running; then
        log "already running (data $DATA)"
        url
        return 0
    fi
    mkdir -p "$PGD"
    ensure_traversable
    [ -f "$DATA/.panel-initialized" ] || init_cluster

    # Port: $PANEL_PG_PORT, else the remembered one if still free, else a new one.
    p=${PANEL_PG_PORT:-}
    if [ -z "$p" ]; then
        p=$(port)
        if [ -z "$p" ] || ! port_free "$p"; then
            p=$(free_ports 1)
        fi
    elif ! port_free "$p"; then
        die "PANEL_PG_PORT=$p is already in use on 127.0.0.1"
    fi
    sd=$(sock_dir)
    mkdir -p "$sd"
    [ "$(id -u)" = 0 ] && chown -R "$PGUSER_OS": "$PGD" "$sd"
    write_conf "$sd" "$p"
    echo "$p" > "$PORTFILE"

    log "starting PostgreSQL on 127.0.0.1:$p (data $DATA, log $LOGFILE)"
    as_owner "$PANEL_PG_BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t "$START_TIMEOUT" \
        >/dev/null 2>&1 || true
    deadline=$(( $(now) + START_TIMEOUT ))
    until pg_isready -q -h 127.0.0.1 -p "$p" -d postgres -U postgres; do
        if ! running; then
            tail_log "$LOGFILE"
            die "PostgreSQL failed to start (see the log above)"
        fi
        if [ "$(now)" -ge "$deadline" ]; then
            tail_log "$LOGFILE"
            die "PostgreSQL did not become ready on 127.0.0.1:$p within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    create_db "$sd" "$p"
    log "ready"
    url
}

stop() {
    if ! running; then
        log "not running"
        return 0
    fi
    log "stopping PostgreSQL (data $DATA)"
    as_owner "$PANEL_PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null 2>&1 || {
        log "fast shutdown did not finish in 60s; immediate shutdown"
        as_owner "$PANEL_PG_BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 30 >/dev/null 2>&1 ||
            die "could not stop PostgreSQL (pid $(head -n 1 "$DATA/postmaster.pid" 2>/dev/null))"
    }
    log "stopped"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
server_command url "$cmd"
case $cmd in
    psql)
        running || die "not running: run '$0 start' first"
        exec psql -h 127.0.0.1 -p "$(port)" -U panel -d panel "$@" ;;
    *) die "usage: $0 start|stop|status|url|psql [psql args]" ;;
esac
