#!/bin/sh
# Smoke test of the local infrastructure scripts (pg.sh, kafka.sh, infra.sh).
#
#   scripts/infra-smoke.sh
#
# Runs in two throw-away run directories (never the work tree's .run): brings
# one copy up, checks PostgreSQL and Kafka (topic, produce, consume through a
# consumer group with librdkafka/kcat), checks that a second `up` reuses it,
# brings a second copy up beside it on other ports, takes both down and checks
# that no process or listening port is left. Ends with "N passed, N failed".
set -u
S=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)
T=$(mktemp -d "${TMPDIR:-/tmp}/k12panel-smoke.XXXXXX")
A=$T/a B=$T/b
pass=0 fail=0

ok() { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
ko() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
check() { d=$1; shift; if "$@" >"$T/out" 2>&1; then ok "$d"; else ko "$d"; sed 's/^/     /' "$T/out" | tail -n 20; fi; }

cleanup() {
    PANEL_RUN_DIR=$A "$S/infra.sh" down >/dev/null 2>&1
    PANEL_RUN_DIR=$B "$S/infra.sh" down >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

envval() { sed -n "s/^export $2='\\(.*\\)'\$/\\1/p" "$1/env"; }

roundtrip() { # run dir, topic
    b=$(envval "$1" PANEL_KAFKA_BROKERS)
    PANEL_RUN_DIR=$1 "$S/kafka.sh" topics --create --topic "$2" --partitions 4 --replication-factor 1 &&
    echo "hello $2" | kcat -P -b "$b" -t "$2" -k tenant-1 &&
    got=$(timeout 60 kcat -b "$b" -G "smoke-$2" -o beginning -e -q -f '%s\n' "$2") &&
    [ "$got" = "hello $2" ]
}

sql() { psql "$(envval "$1" PANEL_PG_URL)" -XAtc "$2"; }

check "up (first copy)" env PANEL_RUN_DIR="$A" "$S/infra.sh" up
check "env written" test -s "$A/env"
check "postgres answers as panel" sh -c '[ "$1" = panel ]' sh "$(sql "$A" 'select current_user')"
check "postgres can create and read a table" sql "$A" 'create table t(x int); insert into t values (42); select * from t'
check "kafka: topic, produce, consume in a group" roundtrip "$A" smoke.one
noauto() { # producing to an unknown topic must not create it
    echo x | kcat -P -b "$(envval "$1" PANEL_KAFKA_BROKERS)" -t not.created \
        -X message.timeout.ms=3000 >/dev/null 2>&1
    ! PANEL_RUN_DIR=$1 "$S/kafka.sh" topics --list | grep -qx not.created
}
check "kafka: topics are not auto-created" noauto "$A"
cp "$A/env" "$T/env.first"
check "second up reuses the running servers" env PANEL_RUN_DIR="$A" "$S/infra.sh" up
check "same addresses after second up" cmp "$T/env.first" "$A/env"
check "up (second copy, other run dir)" env PANEL_RUN_DIR="$B" "$S/infra.sh" up
check "second copy has other ports" sh -c '[ "$1" != "$2" ] && [ "$3" != "$4" ]' sh \
    "$(envval "$A" PANEL_PG_URL)" "$(envval "$B" PANEL_PG_URL)" \
    "$(envval "$A" PANEL_KAFKA_BROKERS)" "$(envval "$B" PANEL_KAFKA_BROKERS)"
check "second copy: postgres" sql "$B" 'select 1'
check "second copy: kafka" roundtrip "$B" smoke.two
check "first copy still has its table" sh -c '[ "$1" = 42 ]' sh "$(sql "$A" 'select x from t')"
ports="$(envval "$A" PANEL_PG_URL) $(envval "$A" PANEL_KAFKA_BROKERS) $(envval "$B" PANEL_PG_URL) $(envval "$B" PANEL_KAFKA_BROKERS)"
check "down (first copy)" env PANEL_RUN_DIR="$A" "$S/infra.sh" down
check "down (second copy)" env PANEL_RUN_DIR="$B" "$S/infra.sh" down
check "down again is harmless" env PANEL_RUN_DIR="$A" "$S/infra.sh" down
leftovers() { ps -eo comm,args | awk -v t="$T/" '($1 == "java" || $1 ~ /^postgres/) && index($0, t)'; }
check "no java or postgres process left" sh -c '[ -z "$1" ]' sh "$(leftovers)"
for u in $ports; do
    p=${u##*:}; p=${p%%/*}
    check "nothing listens on $p" sh -c '! ss -Hltn "sport = :$1" | grep -q .' sh "$p"
done

printf '%s passed, %s failed\n' "$pass" "$fail"
[ "$fail" = 0 ]
