#!/bin/sh
# The local infrastructure the services, tests and benchmarks need:
# a PostgreSQL (scripts/pg.sh) and a single-node Kafka (scripts/kafka.sh).
#
#   scripts/infra.sh up      install what is missing, start both (reusing running
#                            ones), write $PANEL_RUN_DIR/env, print it
#   scripts/infra.sh down    stop both
#   scripts/infra.sh status  exit 0 if both run
#   scripts/infra.sh env     print $PANEL_RUN_DIR/env
#
# Use the servers from a shell with:  eval "$(scripts/infra.sh env)"
# Several work trees can each run their own: set PANEL_RUN_DIR to tell them
# apart (the default is <repo>/.run); ports are picked free.
set -eu
. "$(dirname -- "$0")/common.sh"

S=$PANEL_ROOT/scripts
ENVFILE=$PANEL_RUN_DIR/env

up() {
    "$S/deps.sh" --check 2>/dev/null || "$S/deps.sh" >&2 ||
        die "installing dependencies failed (see above)"
    pg_url=$("$S/pg.sh" start) || die "PostgreSQL did not start (see above)"
    brokers=$("$S/kafka.sh" start) || die "Kafka did not start (see above)"
    mkdir -p "$PANEL_RUN_DIR"
    cat > "$ENVFILE.tmp" <<EOF
export PANEL_RUN_DIR='$PANEL_RUN_DIR'
export PANEL_PG_URL='$pg_url'
export PANEL_KAFKA_BROKERS='$brokers'
EOF
    mv "$ENVFILE.tmp" "$ENVFILE"
    log "up; environment in $ENVFILE (eval \"\$(scripts/infra.sh env)\")"
    cat "$ENVFILE"
}

down() {
    rc=0
    "$S/kafka.sh" stop || rc=1
    "$S/pg.sh" stop || rc=1
    rm -f "$ENVFILE"
    [ "$rc" = 0 ] || die "could not stop everything (see above)"
    log "down"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status)
        rc=0
        if u=$("$S/pg.sh" status 2>/dev/null); then log "postgresql: running, $u"
        else log "postgresql: not running"; rc=1; fi
        if b=$("$S/kafka.sh" status 2>/dev/null); then log "kafka: running, $b"
        else log "kafka: not running"; rc=1; fi
        exit "$rc" ;;
    env)
        [ -r "$ENVFILE" ] || die "no $ENVFILE: run '$0 up' first"
        cat "$ENVFILE" ;;
    *) die "usage: $0 up|down|status|env" ;;
esac
