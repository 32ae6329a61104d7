#!/bin/sh
# Build the libFuzzer targets with clang (tests/fuzz/fuzz.mk) and run each one for
# FUZZ_SECONDS (default 60) on a copy of its seed corpus. Prints one line per target:
#   fuzz <target>: <executions> executions in <s>s, ok|FAILED
# and exits non-zero when a target crashed, leaked, hit a sanitizer report or a timeout.
#   FUZZ_SECONDS=5 sh tests/fuzz/run.sh [target ...]
#   FUZZ_TIMEOUT   seconds one input may take before it counts as a hang (default 10)
#   FUZZ_RSS_MB    memory limit per target (default 2048)
#   FUZZ_BUILD     where the targets are built (default build/fuzz)
#   FUZZ_SUMMARY   append "target executions status" lines to this file (make soak reads it)
set -u
cd "$(dirname "$0")/../.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
export FUZZ_BUILD

# The generated protobuf code and schema version header come from the main build.
make -s build/gen/panel/v1/events.pb-c.c build/gen/panel/v1/pb_short_names.h build/gen/panel_schema_version.h >/dev/null || exit 1
make -s -j2 -f tests/fuzz/fuzz.mk FUZZ_BUILD="$FUZZ_BUILD" all >"$FUZZ_BUILD.log" 2>&1 || {
    cat "$FUZZ_BUILD.log"; echo "fuzz: build failed"; exit 1; }
targets=${*:-$(make -s -f tests/fuzz/fuzz.mk targets)}
work="$FUZZ_BUILD/work"
failed=0
for t in $targets; do
    corpus="$work/$t/corpus"
    rm -rf "$work/$t" && mkdir -p "$corpus" "$work/$t/artifacts"
    cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    log="$work/$t/fuzz.log"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:symbolize=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$FUZZ_BUILD/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" \
        -rss_limit_mb="$FUZZ_RSS_MB" -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$work/$t/artifacts/" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    status=ok
    if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: ' "$log"; then
        status=FAILED
        failed=1
    fi
    echo "fuzz $t: ${execs:-0} executions (${secs:-0}/s) in ${FUZZ_SECONDS}s, $status"
    if [ "$status" = FAILED ]; then
        grep -E -A30 'ERROR:|runtime error:|Test unit written' "$log" | head -60
        ls "$work/$t/artifacts/"
    fi
    if [ -n "${FUZZ_SUMMARY:-}" ]; then
        echo "$t ${execs:-0} $status" >>"$FUZZ_SUMMARY"
    fi
done
exit $failed
