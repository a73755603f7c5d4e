#!/usr/bin/env bash
# Instructions per request of `/v1/check` on Postern's own session against
# the trivial axum handler, counted by valgrind's callgrind: the server's
# user-space instructions per request, and the load generator's (wrk's)
# per response. Instruction counts repeat run to run whatever else the
# machine does, where wrk's throughput on two shared cores moves by ±20%
# (BENCHMARKS.md, own sessions vs peers), so this is how a change to the
# check's own work, or to the size of its answer, is seen.
#
# Caveat: under valgrind the sha2 crate takes its portable path (valgrind
# reports no SHA extensions), so Postern's three SHA-256 compressions per
# check (verifier hash, device HMAC) count about 10,000 instructions here
# against a few hundred cycles on the real CPU.
#
# Usage:  bash bench/check-instructions.sh
# Environment: CARGO_TARGET_DIR [default: $HOME/.cache/postern/target],
#              DURATION of the measured wrk run [default: 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/postern/target}"
DURATION="${DURATION:-10s}"
for var in $(compgen -e | grep '^POSTERN_' || true); do unset "$var"; done
# shellcheck source=bench/lib.sh
source bench/lib.sh
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v jq >/dev/null 2>&1 || missing+=(jq)
install_missing "${missing[@]}"

echo "building release binaries in $CARGO_TARGET_DIR" >&2
cargo build --release --locked -p postern-server --bins >&2
(cd bench/peers && cargo build --release --locked --bin trivial >&2)
BIN="$CARGO_TARGET_DIR/release"

# ir_total FILE: the total instruction count of a callgrind output file.
ir_total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; }

# A session to check, made against a Postern that is not under valgrind.
mkdir -m 700 "$WORK/plain"
start plain "postern listening on" "$BIN/postern" serve --listen 127.0.0.1:0 --data "$WORK/plain"
PLAIN="$BASE"
"$BIN/postern" client enroll --server "$PLAIN" --user bench-user \
    --identity "$WORK/bench-user.identity" >/dev/null
"$BIN/postern" client login --server "$PLAIN" --user bench-user --device bench-device \
    --identity "$WORK/bench-user.identity" 2>/dev/null >"$WORK/login.json"
TOKEN="$(jq -r .token "$WORK/login.json")"
HEADERS=(-H "Authorization: Bearer $TOKEN" -H "X-Postern-Device: bench-device")

# server NAME PREFIX PATH COMMAND...: starts COMMAND under callgrind, warms
# it up, counts one wrk run's requests, and prints its instructions per
# request. The Postern under valgrind serves the same data directory's
# copy, so the session above is one of its own.
server() {
    local name="$1" prefix="$2" path="$3"
    shift 3
    start "$name" "$prefix" valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.cg" "$@"
    local pid="${PIDS[-1]}" url="$BASE$path"
    wrk -t1 -c8 -d3s "${HEADERS[@]}" "$url" >/dev/null
    callgrind_control --zero "$pid" >/dev/null
    wrk -t1 -c8 -d"$DURATION" "${HEADERS[@]}" "$url" >"$WORK/$name.wrk"
    callgrind_control --dump=measured "$pid" >/dev/null
    local requests ir
    requests="$(awk '/requests in/ { print $1; exit }' "$WORK/$name.wrk")"
    ir="$(ir_total "$(ls "$WORK/$name.cg".* | head -n1)")"
    kill "$pid"
    printf '| %s (server) | %s | %s |\n' "$name" "$requests" "$((ir / requests))"
}

# client NAME URL: wrk under callgrind against URL; instructions per response.
client() {
    local name="$1" url="$2"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/wrk-$name.cg" \
        wrk -t1 -c8 -d"$DURATION" "${HEADERS[@]}" "$url" >"$WORK/wrk-$name.wrk" 2>/dev/null
    local requests ir
    requests="$(awk '/requests in/ { print $1; exit }' "$WORK/wrk-$name.wrk")"
    ir="$(ir_total "$WORK/wrk-$name.cg")"
    printf '| wrk against %s | %s | %s |\n' "$name" "$requests" "$((ir / requests))"
}

echo "| counted | requests | instructions per request |"
echo "|---|---:|---:|"
start trivial-plain "trivial listening on" "$BIN/trivial" --listen 127.0.0.1:0
client trivial "$BASE/"
client postern-session "$PLAIN/v1/check"
server trivial "trivial listening on" / "$BIN/trivial" --listen 127.0.0.1:0
# The copy is taken with the first Postern stopped, so its store is whole.
kill "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
cp -r "$WORK/plain" "$WORK/copy"
server postern-session "postern listening on" /v1/check \
    "$BIN/postern" serve --listen 127.0.0.1:0 --data "$WORK/copy"
