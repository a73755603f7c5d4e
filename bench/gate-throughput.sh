#!/usr/bin/env bash
# Gate-mode throughput: `GET /v1/check` on a warm cache against a trivial
# axum server (`GET /` -> 200 "ok") on the same machine, in the same run.
#
# The baseline (`examples/trivial_server.rs`) runs the same stack as
# `postern serve`: the `#[tokio::main]` multi-thread runtime (one worker per
# core), a `tokio::net::TcpListener` on 127.0.0.1:0, `axum::serve` (hyper
# HTTP/1.1, same versions, same release profile), and an `axum::Router` with
# one route whose handler returns a static "ok". Both get the same request
# bytes (the same Authorization header); the trivial handler ignores it.
#
# It builds the release binaries, starts postern-demo-idp, `postern serve`
# in gate mode and the trivial server, mints one token, warms the cache with
# one request, then runs wrk against both and prints both requests/s and
# their ratio. Every process it started is killed on exit.
#
# Usage:  bash bench/gate-throughput.sh
# Environment:
#   CARGO_TARGET_DIR  build directory [default: $HOME/.cache/postern/target]
#   THREADS CONNECTIONS DURATION  wrk settings [default: 2 64 15s]
#   IDP_LATENCY       postern-demo-idp --latency [default: 20ms]
#   GATE_REDIS        a Redis URL: run the gate with --redis (revocations
#                     shared, so every hit also checks the feed is current)
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/postern/target}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-15s}"
IDP_LATENCY="${IDP_LATENCY:-20ms}"
# postern reads POSTERN_* settings from the environment; start it clean.
for var in $(compgen -e | grep '^POSTERN_' || true); do unset "$var"; done

# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v wrk >/dev/null 2>&1 || install_missing wrk

echo "building release binaries in $CARGO_TARGET_DIR" >&2
cargo build --release -p postern-server --bins --examples >&2
BIN="$CARGO_TARGET_DIR/release"

# run_wrk NAME URL [wrk args...]: runs wrk, keeps its report in $WORK/NAME.wrk.
run_wrk() {
    local name="$1" url="$2"
    shift 2
    local shown="$*"
    echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency ${shown//$TOKEN/<token>} $url" >&2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" | tee "$WORK/$name.wrk" >&2
}

rps() { awk '/^Requests\/sec:/ { print $2 }' "$WORK/$1.wrk"; }
percentile() { awk -v p="$2" '$1 == p { print $2; exit }' "$WORK/$1.wrk"; }
non2xx() { awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$WORK/$1.wrk"; }
socket_errors() { grep -m1 'Socket errors' "$WORK/$1.wrk" || true; }

start idp "postern-demo-idp listening on" \
    "$BIN/postern-demo-idp" --listen 127.0.0.1:0 --client-id demo --client-secret demo-secret \
    --latency "$IDP_LATENCY"
IDP="$BASE"
mkdir -m 700 "$WORK/data"
# The Redis URL goes through the environment, never the command line (ps).
SHARED=()
if [ -n "${GATE_REDIS:-}" ]; then
    # A throwaway feed key: one instance, nothing to share it with.
    SHARED=("POSTERN_REDIS=$GATE_REDIS" "POSTERN_REDIS_FEED_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")")
fi
start postern "postern listening on" \
    env "${SHARED[@]}" "$BIN/postern" serve --listen 127.0.0.1:0 --data "$WORK/data" \
    --upstream-introspection "$IDP/oauth/introspect" --client-id demo --client-secret demo-secret
POSTERN="$BASE"
start trivial "trivial_server listening on" \
    "$BIN/examples/trivial_server" --listen 127.0.0.1:0
TRIVIAL="$BASE"

TOKEN="$(curl -fsS -X POST "$IDP/admin/tokens" -H 'Content-Type: application/json' \
    -d '{"sub":"bench-user","scope":"read","expires_in":900}' | jq -r .token)"
status="$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$POSTERN/v1/check")"
if [ "$status" != 200 ]; then
    echo "warming request answered $status, not 200" >&2
    exit 1
fi
# Warm until a request is a hit (with --redis, hits wait for the feed's
# first report).
for i in $(seq 1 100); do
    curl -sS -o /dev/null -H "Authorization: Bearer $TOKEN" "$POSTERN/v1/check"
    if [ "$(metric postern_gate_cache_hits_total)" -gt 0 ]; then break; fi
    if [ "$i" = 100 ]; then echo "no request became a hit within 10 s" >&2; exit 1; fi
    sleep 0.1
done
status="$(curl -sS -o /dev/null -w '%{http_code}' "$TRIVIAL/")"
if [ "$status" != 200 ]; then
    echo "trivial server answered $status, not 200" >&2
    exit 1
fi

hits_before="$(metric postern_gate_cache_hits_total)"
misses_before="$(metric postern_gate_cache_misses_total)"
calls_before="$(introspections)"
run_wrk gate "$POSTERN/v1/check" -H "Authorization: Bearer $TOKEN"
hits_after="$(metric postern_gate_cache_hits_total)"
misses_after="$(metric postern_gate_cache_misses_total)"
calls_after="$(introspections)"
# The same request bytes (the trivial handler ignores the header), so the
# difference is the gate's work, not a bigger request to parse.
run_wrk trivial "$TRIVIAL/" -H "Authorization: Bearer $TOKEN"

gate_rps="$(rps gate)"
trivial_rps="$(rps trivial)"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cores="$(nproc)"

echo
echo "== gate throughput (warm cache, one ${#TOKEN}-byte token) =="
echo "machine: $cpu, $cores cores shared by postern, the trivial server, postern-demo-idp and wrk"
echo "         (the load generator competes with the server for the same cores; absolute figures are a floor)"
echo "wrk: -t$THREADS -c$CONNECTIONS -d$DURATION"
if [ -n "${GATE_REDIS:-}" ]; then echo "gate: revocations shared through Redis (--redis)"; fi
printf 'GET /v1/check (postern gate)  %12s req/s   p50 %-8s p99 %-8s non-2xx %s\n' \
    "$gate_rps" "$(percentile gate 50%)" "$(percentile gate 99%)" "$(non2xx gate)"
printf 'GET / (trivial axum server)   %12s req/s   p50 %-8s p99 %-8s non-2xx %s\n' \
    "$trivial_rps" "$(percentile trivial 50%)" "$(percentile trivial 99%)" "$(non2xx trivial)"
socket_errors gate
socket_errors trivial
awk -v g="$gate_rps" -v t="$trivial_rps" \
    'BEGIN { printf "ratio gate / trivial: %.3f (%.1f%% of the trivial server)\n", g / t, 100 * g / t }'
echo "gate cache during the gate run: hits +$((hits_after - hits_before)), misses +$((misses_after - misses_before)), upstream introspections +$((calls_after - calls_before))"
if [ "$((calls_after - calls_before))" -ne 0 ]; then
    echo "the gate run called upstream: not a pure hit measurement" >&2
    exit 1
fi
