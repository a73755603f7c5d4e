#!/usr/bin/env bash
# Postern's own sessions against what a Rust user would otherwise pick
# (issue 12, item 5): wrk throughput of one authenticated request to each
# target, relative to a trivial axum handler measured in the same rounds.
#
# Targets (each answers 200 for the one live session or token it was given):
#   trivial          GET / -> "ok" (bench/peers, the handler of
#                    examples/trivial_server.rs, which gate-throughput.sh uses)
#   postern-session  Postern GET /v1/check with its own session
#                    (Authorization: Bearer pst1... + X-Postern-Device)
#   postern-gate     Postern GET /v1/check with an upstream token on a cache
#                    hit (gate mode, as bench/gate-throughput.sh measures it)
#   sessions-memory  tower-sessions, memory store, cookie -> GET /me
#   sessions-redis   tower-sessions, Redis store (fred), cookie -> GET /me
#   jwt-hs256        jsonwebtoken HS256 bearer token -> GET /me
#   jwt-eddsa        jsonwebtoken EdDSA (Ed25519) bearer token -> GET /me
# The peers are in bench/peers (their own Cargo workspace; README there).
#
# One Postern process serves both of its targets: `postern serve` in gate
# mode (against postern-demo-idp) also holds its own sessions; the session
# is made with the CLI (`postern client enroll`, then `client login`: an
# identity key and a full authentication), the upstream token as
# gate-throughput.sh makes it. Redis is a throwaway `redis-server` on a free
# loopback port, without persistence.
#
# Before measuring, each target must answer 200 with the user's id (in its
# body, or X-Postern-User) and 401 without credentials, so a target that
# checks nothing cannot pass. Then a warm-up run per target, then ROUNDS
# rounds that run every target once each, in an order rotated every round so
# that drift on the machine falls on all of them alike. Every wrk run must
# report 0 non-2xx answers and no connect/read/write errors, else the script
# fails. The table gives each target's requests/s (median, min-max over the
# rounds) and its ratio to the trivial server of the same round (median,
# min-max), and the CPU time the serving process used per request (its
# user + system time over the run, from /proc, divided by the requests wrk
# counted; for sessions-redis, redis-server's share is not included). On
# two cores that wrk shares, throughput moves with how the scheduler places
# wrk's threads; CPU per request is the steadier figure of what a target
# costs. Every process it started is killed on exit.
#
# Usage:  bash bench/own-vs-peers.sh
# Environment:
#   CARGO_TARGET_DIR  build directory [default: $HOME/.cache/postern/target]
#   ROUNDS DURATION WARMUP  rounds and wrk durations [default: 5 10s 3s]
#   THREADS CONNECTIONS     wrk settings [default: 2 64]
#   SERVER_CPUS WRK_CPUS    taskset CPU lists for the servers and for wrk
#                           [default: unpinned, as gate-throughput.sh runs;
#                           note a server pinned to one CPU runs one tokio
#                           worker]
#   TARGETS           the targets to run, space-separated [default: all]
#   IDP_LATENCY       postern-demo-idp --latency [default: 20ms]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/postern/target}"
ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-3s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
IDP_LATENCY="${IDP_LATENCY:-20ms}"
ALL_TARGETS="trivial postern-session postern-gate sessions-memory sessions-redis jwt-hs256 jwt-eddsa"
read -r -a TARGET_LIST <<<"${TARGETS:-$ALL_TARGETS}"
for t in "${TARGET_LIST[@]}"; do
    case " $ALL_TARGETS " in
        *" $t "*) ;;
        *) echo "unknown target $t (known: $ALL_TARGETS)" >&2; exit 2 ;;
    esac
done
case " ${TARGET_LIST[*]} " in
    *" trivial "*) ;;
    *) echo "TARGETS must include trivial (the ratios are to it)" >&2; exit 2 ;;
esac
# postern reads POSTERN_* settings from the environment; start it clean.
for var in $(compgen -e | grep '^POSTERN_' || true); do unset "$var"; done

SERVER_PIN=()
WRK_PIN=()
if [ -n "${SERVER_CPUS:-}" ]; then SERVER_PIN=(taskset -c "$SERVER_CPUS"); fi
if [ -n "${WRK_CPUS:-}" ]; then WRK_PIN=(taskset -c "$WRK_CPUS"); fi

# shellcheck source=bench/lib.sh
source bench/lib.sh
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v jq >/dev/null 2>&1 || missing+=(jq)
install_missing "${missing[@]}"

echo "building release binaries in $CARGO_TARGET_DIR" >&2
cargo build --release --locked -p postern-server --bins >&2
(cd bench/peers && cargo build --release --locked --bins >&2)
BIN="$CARGO_TARGET_DIR/release"

# A free loopback TCP port (the kernel's pick; closed again before use).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}


# --- the servers -------------------------------------------------------------
start idp "postern-demo-idp listening on" \
    "$BIN/postern-demo-idp" --listen 127.0.0.1:0 --client-id demo --client-secret demo-secret \
    --latency "$IDP_LATENCY"
IDP="$BASE"
mkdir -m 700 "$WORK/data"
start postern "postern listening on" \
    "${SERVER_PIN[@]}" "$BIN/postern" serve --listen 127.0.0.1:0 --data "$WORK/data" \
    --upstream-introspection "$IDP/oauth/introspect" --client-id demo --client-secret demo-secret
POSTERN="$BASE"
POSTERN_PID="${PIDS[-1]}"

REDIS_PORT=""
for i in 1 2 3 4 5; do
    port="$(free_port)"
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --daemonize no --loglevel warning >"$WORK/redis.log" 2>&1 &
    PIDS+=("$!")
    for j in $(seq 1 50); do
        if redis-cli -p "$port" ping >/dev/null 2>&1; then REDIS_PORT="$port"; break; fi
        sleep 0.1
    done
    [ -n "$REDIS_PORT" ] && break
done
if [ -z "$REDIS_PORT" ]; then
    echo "redis-server did not start; its log:" >&2
    cat "$WORK/redis.log" >&2
    exit 1
fi

declare -A URL
# The process serving each target, whose CPU time each run reads.
declare -A PID_OF
PID_OF[postern-session]="$POSTERN_PID"
PID_OF[postern-gate]="$POSTERN_PID"
for peer in trivial sessions-memory jwt-hs256 jwt-eddsa; do
    start "$peer" "$peer listening on" "${SERVER_PIN[@]}" "$BIN/$peer" --listen 127.0.0.1:0
    URL[$peer]="$BASE"
    PID_OF[$peer]="${PIDS[-1]}"
done
start sessions-redis "sessions-redis listening on" \
    "${SERVER_PIN[@]}" "$BIN/sessions-redis" --listen 127.0.0.1:0 --redis "redis://127.0.0.1:$REDIS_PORT"
URL[sessions-redis]="$BASE"
PID_OF[sessions-redis]="${PIDS[-1]}"

# --- one live session or token per target -------------------------------------
USER_ID="bench-user"
DEVICE="bench-device-1"
"$BIN/postern" client enroll --server "$POSTERN" --user "$USER_ID" \
    --identity "$WORK/$USER_ID.identity" >"$WORK/enroll.out"
"$BIN/postern" client login --server "$POSTERN" --user "$USER_ID" --device "$DEVICE" \
    --identity "$WORK/$USER_ID.identity" >"$WORK/login.json"
SESSION_TOKEN="$(jq -r .token "$WORK/login.json")"
GATE_TOKEN="$(curl -fsS -X POST "$IDP/admin/tokens" -H 'Content-Type: application/json' \
    -d "{\"sub\":\"$USER_ID\",\"scope\":\"read\",\"expires_in\":3600}" | jq -r .token)"

# login_cookie NAME: logs in to a tower-sessions peer, prints its Cookie value.
login_cookie() {
    curl -fsS -D "$WORK/$1.login.headers" -o /dev/null -X POST "${URL[$1]}/login?user=$USER_ID"
    tr -d '\r' <"$WORK/$1.login.headers" | awk -F'[:;] *' 'tolower($1) == "set-cookie" { print $2; exit }'
}
login_token() { curl -fsS -X POST "${URL[$1]}/login?user=$USER_ID"; }

# The request each target gets: URL and headers (header values hold secrets,
# so they are never echoed; wrk's command lines below name them).
declare -A PATH_OF
declare -A HEADERS
HEADERS[trivial]="Authorization: Bearer $SESSION_TOKEN"$'\n'"X-Postern-Device: $DEVICE"
PATH_OF[trivial]="/"
URL[postern-session]="$POSTERN"
PATH_OF[postern-session]="/v1/check"
HEADERS[postern-session]="Authorization: Bearer $SESSION_TOKEN"$'\n'"X-Postern-Device: $DEVICE"
URL[postern-gate]="$POSTERN"
PATH_OF[postern-gate]="/v1/check"
HEADERS[postern-gate]="Authorization: Bearer $GATE_TOKEN"
for peer in sessions-memory sessions-redis; do
    PATH_OF[$peer]="/me"
    HEADERS[$peer]="Cookie: $(login_cookie "$peer")"
done
for peer in jwt-hs256 jwt-eddsa; do
    PATH_OF[$peer]="/me"
    HEADERS[$peer]="Authorization: Bearer $(login_token "$peer")"
done

# header_args TARGET: curl/wrk -H arguments, one per header line.
header_args() {
    local line
    HARGS=()
    while IFS= read -r line; do
        HARGS+=(-H "$line")
    done <<<"${HEADERS[$1]}"
}

# --- every target answers its user with 200, and refuses without credentials --
for t in "${TARGET_LIST[@]}"; do
    header_args "$t"
    url="${URL[$t]}${PATH_OF[$t]}"
    status="$(curl -sS -D "$WORK/$t.check.headers" -o "$WORK/$t.check.body" -w '%{http_code}' "${HARGS[@]}" "$url")"
    if [ "$status" != 200 ]; then
        echo "$t: GET ${PATH_OF[$t]} with its credentials answered $status, not 200" >&2
        exit 1
    fi
    case "$t" in
        trivial) expected="ok"; got="$(cat "$WORK/$t.check.body")" ;;
        postern-*) expected="$USER_ID"
            got="$(tr -d '\r' <"$WORK/$t.check.headers" | awk -F': ' 'tolower($1) == "x-postern-user" { print $2; exit }')" ;;
        *) expected="$USER_ID"; got="$(cat "$WORK/$t.check.body")" ;;
    esac
    if [ "$got" != "$expected" ]; then
        echo "$t: answered the user '$got', not '$expected'" >&2
        exit 1
    fi
    if [ "$t" != trivial ]; then
        status="$(curl -sS -o /dev/null -w '%{http_code}' "$url")"
        if [ "$status" != 401 ]; then
            echo "$t: GET ${PATH_OF[$t]} without credentials answered $status, not 401" >&2
            exit 1
        fi
    fi
done
# The gate's request must be a cache hit (the first one above was a miss).
case " ${TARGET_LIST[*]} " in
    *" postern-gate "*)
        header_args postern-gate
        for i in $(seq 1 100); do
            curl -sS -o /dev/null "${HARGS[@]}" "$POSTERN/v1/check"
            if [ "$(metric postern_gate_cache_hits_total)" -gt 0 ]; then break; fi
            if [ "$i" = 100 ]; then echo "postern-gate: no request became a hit within 10 s" >&2; exit 1; fi
            sleep 0.1
        done
        ;;
esac

# --- wrk -------------------------------------------------------------------------
# cpu_ticks PID: the user + system CPU time PID has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICKS_PER_SECOND="$(getconf CLK_TCK)"

# run_wrk TARGET DURATION FILE: one wrk run; fails on any non-2xx answer or
# connect/read/write error. FILE.cpu gets the server's CPU time over the run
# (clock ticks). Throughput on a machine whose cores wrk shares swings with
# scheduling; the CPU time each request costs the server does far less.
run_wrk() {
    local t="$1" duration="$2" out="$3"
    header_args "$t"
    echo "wrk -t$THREADS -c$CONNECTIONS -d$duration --latency <$t credentials> ${URL[$t]}${PATH_OF[$t]}" >&2
    local ticks_before
    ticks_before="$(cpu_ticks "${PID_OF[$t]}")"
    "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency "${HARGS[@]}" \
        "${URL[$t]}${PATH_OF[$t]}" >"$out"
    echo "$(($(cpu_ticks "${PID_OF[$t]}") - ticks_before))" >"$out.cpu"
    local non2xx errors requests
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$out")"
    errors="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8; exit } END { }' "$out")"
    requests="$(awk '/requests in/ { print $1; exit }' "$out")"
    if [ "$non2xx" != 0 ]; then
        echo "$t: $non2xx non-2xx answers in this run; wrk said:" >&2
        cat "$out" >&2
        exit 1
    fi
    if [ -n "$errors" ] && [ "$errors" != 0 ]; then
        echo "$t: socket errors in this run; wrk said:" >&2
        cat "$out" >&2
        exit 1
    fi
    if [ -z "$requests" ] || [ "$requests" = 0 ]; then
        echo "$t: no request completed; wrk said:" >&2
        cat "$out" >&2
        exit 1
    fi
    grep -m1 'Socket errors' "$out" >&2 || true
}

rps_of() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
# cpu_per_request FILE: the server's CPU time per request of that run, in µs.
cpu_per_request() {
    awk -v ticks="$(cat "$1.cpu")" -v hz="$TICKS_PER_SECOND" \
        '/requests in/ { printf "%.2f", ticks * 1000000 / hz / $1; exit }' "$1"
}
p50_of() { awk '$1 == "50%" { print $2; exit }' "$1"; }
p99_of() { awk '$1 == "99%" { print $2; exit }' "$1"; }

echo "load before: $(uptime)" >&2
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${TARGET_LIST[@]}"; do
    run_wrk "$t" "$WARMUP" "$WORK/$t.warmup.wrk"
done

if [[ " ${TARGET_LIST[*]} " == *" postern-gate "* ]]; then
    hits_before="$(metric postern_gate_cache_hits_total)"
    misses_before="$(metric postern_gate_cache_misses_total)"
    calls_before="$(introspections)"
fi
: >"$WORK/results.tsv"
n="${#TARGET_LIST[@]}"
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round of $ROUNDS" >&2
    for k in $(seq 0 $((n - 1))); do
        t="${TARGET_LIST[$(((k + round - 1) % n))]}"
        out="$WORK/$t.$round.wrk"
        run_wrk "$t" "$DURATION" "$out"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$(rps_of "$out")" "$(p50_of "$out")" "$(p99_of "$out")" \
            "$(cpu_per_request "$out")" \
            | tee -a "$WORK/results.tsv" >&2
    done
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "load after: $(uptime)" >&2

if [[ " ${TARGET_LIST[*]} " == *" postern-gate "* ]]; then
    hits_after="$(metric postern_gate_cache_hits_total)"
    misses_after="$(metric postern_gate_cache_misses_total)"
    calls_after="$(introspections)"
    if [ "$((calls_after - calls_before))" -ne 0 ] || [ "$((misses_after - misses_before))" -ne 0 ]; then
        echo "postern-gate: the measured runs missed the cache ($((misses_after - misses_before)) misses, $((calls_after - calls_before)) upstream calls): not a hit measurement" >&2
        exit 1
    fi
fi

# --- the table ---------------------------------------------------------------------
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -c1)"
echo
echo "== own sessions vs peers: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit${dirty:+ (uncommitted changes)}"
echo "machine: $cpu, $(nproc) cores shared by every server, redis-server and wrk; load average before $LOAD_BEFORE, after $LOAD_AFTER"
echo "wrk: -t$THREADS -c$CONNECTIONS, warm-up $WARMUP per target, $ROUNDS rounds x $DURATION per target, order rotated each round${SERVER_CPUS:+, servers on CPUs $SERVER_CPUS}${WRK_CPUS:+, wrk on CPUs $WRK_CPUS}"
echo "every run: 0 non-2xx answers, 0 socket errors${hits_after:+; gate: hits +$((hits_after - hits_before)), misses +0, upstream calls +0}"
echo
awk -F'\t' -v order="${TARGET_LIST[*]}" '
    function median(a, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function commas(x,    s) { s = sprintf("%.0f", x); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }
    function lat(s) { # wrk latency (e.g. 512.00us, 3.21ms, 1.02s) in microseconds
        if (s ~ /us$/) return s + 0; if (s ~ /ms$/) return s * 1000; if (s ~ /s$/) return s * 1000000; return s + 0
    }
    { rps[$2, $1] = $3; p50[$2, $1] = lat($4); p99[$2, $1] = lat($5); cpu[$2, $1] = $6; if ($1 > rounds) rounds = $1 }
    END {
        n = split(order, names, " ")
        print "| target | req/s, median (min-max) | ratio to trivial, median (min-max) | p50 / p99 latency, median | server CPU per request, median (ratio to trivial) |"
        print "|---|---|---|---|---|"
        for (k = 1; k <= n; k++) {
            t = names[k]; lo = ""; hi = ""; rlo = ""; rhi = ""
            for (r = 1; r <= rounds; r++) {
                v[r] = rps[t, r]; q[r] = rps[t, r] / rps["trivial", r]; a[r] = p50[t, r]; b[r] = p99[t, r]
                c[r] = cpu[t, r]; ct[r] = cpu["trivial", r]
                if (lo == "" || v[r] < lo) lo = v[r]; if (hi == "" || v[r] > hi) hi = v[r]
                if (rlo == "" || q[r] < rlo) rlo = q[r]; if (rhi == "" || q[r] > rhi) rhi = q[r]
            }
            cm = median(c, rounds); ctm = median(ct, rounds)
            printf "| %s | %s (%s-%s) | %.3f (%.3f-%.3f) | %.0f µs / %.2f ms | %.2f µs (%.2f) |\n", \
                t, commas(median(v, rounds)), commas(lo), commas(hi), median(q, rounds), rlo, rhi, median(a, rounds), median(b, rounds) / 1000, \
                cm, cm / ctm
        }
    }' "$WORK/results.tsv"
