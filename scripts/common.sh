# Shared helpers for scripts/*.sh. POSIX sh; sourced, not executed.
#
# Conventions: progress and errors go to stderr, the one useful result
# (a URL, an address, a directory) goes to stdout, so callers can capture it.

# Repository root: the directory that holds scripts/.
PANEL_ROOT=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd -P)

# Where local servers keep their data. One per work tree by default, so that
# several git worktrees can run their own servers at once.
: "${PANEL_RUN_DIR:=$PANEL_ROOT/.run}"
case $PANEL_RUN_DIR in
    /*) ;;
    *) PANEL_RUN_DIR=$(pwd -P)/$PANEL_RUN_DIR ;;
esac
export PANEL_RUN_DIR

# Downloaded things that are not in git (Kafka jars).
: "${PANEL_CACHE:=${HOME:-/root}/.cache/k12panel}"
export PANEL_CACHE

# The broker's jars: deploy/kafka/pom.xml; tests/kafka-3.9/pom.xml for the SCRAM test only.
PANEL_KAFKA_POM=${PANEL_KAFKA_POM:-$PANEL_ROOT/deploy/kafka/pom.xml}

_prog=$(basename -- "$0")

log() { printf '%s: %s\n' "$_prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$_prog" "$*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# Seconds since the epoch (integer).
now() { date +%s; }

# free_ports N: print N distinct TCP ports on 127.0.0.1 that are free now.
free_ports() {
    have python3 || die "python3 is needed to pick free ports (run scripts/deps.sh)"
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# port_free PORT: exit 0 if nothing listens on 127.0.0.1:PORT.
port_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

# kafka_version: the version pinned in deploy/kafka/pom.xml.
kafka_version() {
    [ -r "$PANEL_KAFKA_POM" ] || die "missing $PANEL_KAFKA_POM"
    v=$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$PANEL_KAFKA_POM" | head -n 1)
    [ -n "$v" ] || die "no <kafka.version> in $PANEL_KAFKA_POM"
    printf '%s\n' "$v"
}

kafka_home() { printf '%s/kafka-%s\n' "$PANEL_CACHE" "$(kafka_version)"; }

# pom_sum: checksum of the pom, recorded in the jar cache's stamp file so a
# changed pom fetches again.
pom_sum() { cksum < "$PANEL_KAFKA_POM" | awk '{print $1 "-" $2}'; }

# kafka_jars_ok: exit 0 if the jar cache for the pinned version is complete.
kafka_jars_ok() {
    _kh=$(kafka_home)
    [ -f "$_kh/.stamp" ] && [ "$(cat "$_kh/.stamp")" = "$(pom_sum)" ] &&
        ls "$_kh"/libs/kafka_2.13-*.jar >/dev/null 2>&1
}

# tail_log FILE [N]: show the end of a log file on stderr.
tail_log() {
    if [ -r "$1" ]; then
        printf -- '----- last %s lines of %s -----\n' "${2:-40}" "$1" >&2
        tail -n "${2:-40}" "$1" >&2
        printf -- '----- end of %s -----\n' "$1" >&2
    else
        printf '(no log at %s)\n' "$1" >&2
    fi
}

# alive PID: exit 0 if the process exists and is not a zombie (an exited
# process whose parent, often PID 1 here, has not reaped it yet).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
    [ "$st" != Z ] && [ "$st" != X ]
}

# server_command RESULT CMD: the commands every local server script (pg.sh, kafka.sh) has:
# start, stop, status, and RESULT (the script's function that prints where the server is,
# e.g. url or brokers). The script defines start, stop, running, port and RESULT. Runs CMD
# and exits when it is one of them; returns when it is not, for the script's own commands.
server_command() {
    case $2 in
        start) start; exit ;;
        stop) stop; exit ;;
        status)
            if running; then "$1"; exit 0; else log "not running"; exit 1; fi ;;
    esac
    [ "$2" = "$1" ] || return 0
    [ -n "$(port)" ] || die "no port recorded yet: run '$0 start'"
    "$1"
    exit
}
