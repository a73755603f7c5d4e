# Shared by the bench scripts (sourced, not run): installing what is
# missing, starting servers in the background and killing them on exit,
# and reading Postern's metrics and the demo IdP's counters.
#
# After sourcing: WORK is a scratch directory and PIDS the processes
# `start` launched; both are cleaned up when the script exits.

# install_missing PACKAGE...: installs the Debian packages given (none: nothing).
install_missing() {
    local packages=("$@")
    [ "${#packages[@]}" -gt 0 ] || return 0
    echo "installing the Debian packages ${packages[*]}" >&2
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
}

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME PREFIX COMMAND...: runs COMMAND in the background and sets BASE
# to the base URL from its first stdout line "PREFIX http://ADDR". (Not run
# in a command substitution: the PID must reach PIDS in this shell.)
start() {
    local name="$1" prefix="$2"
    shift 2
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=("$!")
    local i line
    for i in $(seq 1 300); do
        line="$(head -n1 "$WORK/$name.out" 2>/dev/null || true)"
        if [ -n "$line" ]; then
            case "$line" in
                "$prefix "*) BASE="${line#"$prefix "}"; return 0 ;;
                *) echo "$name: unexpected first line: $line" >&2; return 1 ;;
            esac
        fi
        sleep 0.1
    done
    echo "$name did not start in 30 s; stderr:" >&2
    cat "$WORK/$name.err" >&2
    return 1
}

# metric NAME: the value of the unlabelled metric NAME in Postern's
# /metrics (at $POSTERN).
metric() {
    curl -fsS "$POSTERN/metrics" | awk -v name="$1" '$1 == name { print $2; exit }'
}

# introspections: how many introspection calls postern-demo-idp (at $IDP)
# has answered.
introspections() { curl -fsS "$IDP/stats" | jq -r .introspect; }
