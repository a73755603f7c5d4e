#!/usr/bin/env bash
# The OpenAPI contract, checked by a tool nobody here wrote: schemathesis
# (PyPI, version pinned in conformance/requirements.txt) runs every check
# it has (`--checks all`) against /openapi.json of a real `postern serve`
# (debug build of this checkout, free port, throwaway data directory), and
# any failure fails the script. Runs, each with a fixed seed and example
# budget (about two minutes in all on 2 cores):
#   1. unauthenticated, every operation;
#   2. with a live session (enrolled and logged in with the CLI) passed as
#      `Authorization: Bearer` and `X-Postern-Device`, and `{user}` pinned to
#      its user (conformance/schemathesis.toml), every operation that does
#      not end the session;
#   3. each operation that ends the session or retires its key (logout,
#      log out everywhere, revoke or replace the identity key) alone, with a
#      session of its own user.
# Needs python3 (with venv) and PyPI the first time (the virtualenv is kept
# in $HOME/.cache/postern/venv). Under CI=true nothing is skipped: a missing
# prerequisite fails the run. Figures and how to read a failure:
# docs/openapi.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/postern/target}"
seed="${POSTERN_ST_SEED:-20261203}"
examples="${POSTERN_ST_EXAMPLES:-25}"
venv="${POSTERN_ST_VENV:-$HOME/.cache/postern/venv}"

skip() {
  if [ "${CI:-}" = true ]; then
    echo "schemathesis: $1 (CI=true: failing rather than skipping)" >&2
    exit 1
  fi
  echo "schemathesis SKIPPED: $1"
  exit 0
}

command -v python3 >/dev/null || skip "python3 is missing"
command -v curl >/dev/null || skip "curl is missing"
wanted="$(grep -m1 '^schemathesis==' conformance/requirements.txt | cut -d= -f3)"
if [ "$("$venv/bin/st" --version 2>/dev/null | awk '{print $NF}')" != "$wanted" ]; then
  echo "== installing schemathesis $wanted into $venv"
  { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check \
      -r conformance/requirements.txt; } || skip "could not install schemathesis $wanted from PyPI"
fi
st="$venv/bin/st"

cargo build --quiet --locked -p postern-server --bin postern
postern="$CARGO_TARGET_DIR/debug/postern"

scratch="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
"$postern" serve --listen "127.0.0.1:$port" --data "$scratch/data" >"$scratch/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$scratch/server.log"
    echo "schemathesis: the server did not start" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$url/readyz" >/dev/null

# session USER: prints a live session token of USER (a new user: an
# identity key enrolled, then a full authentication on device st-USER).
session() {
  local user="$1"
  "$postern" client enroll --server "$url" --user "$user" --identity "$scratch/$user.identity" >/dev/null
  "$postern" client login --server "$url" --user "$user" --device "st-$user" \
    --identity "$scratch/$user.identity" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

generated=0
runs=0
started=$SECONDS
# st_run NAME [st options...]: one schemathesis run; any failure fails the script.
st_run() {
  local name="$1"
  shift
  local log="$scratch/st-$name.log"
  local run_started=$SECONDS
  if ! (cd "$scratch" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$root/conformance" \
      "$st" --config-file "$root/conformance/schemathesis.toml" run "$url/openapi.json" \
      --checks all --seed "$seed" --max-examples "$examples" --generation-database none \
      --no-color --output-sanitize false "$@" >"$log" 2>&1); then
    cat "$log"
    echo "schemathesis ($name): FAILED; the end of the server's log:" >&2
    tail -n 40 "$scratch/server.log" >&2
    exit 1
  fi
  if [ -n "${POSTERN_ST_KEEP:-}" ]; then cp "$log" "$POSTERN_ST_KEEP/"; fi
  local cases
  cases="$(grep -Eo '[0-9]+ generated' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)"
  generated=$((generated + cases))
  runs=$((runs + 1))
  echo "-- schemathesis $name: $cases generated test cases, 0 failures, $((SECONDS - run_started)) s"
}

echo "== schemathesis $wanted, all checks, seed $seed, at most $examples examples per operation, against $url"
POSTERN_ST_USER=st-nobody st_run unauthenticated

user=st-reader
token="$(session "$user")"
POSTERN_ST_USER="$user" st_run authenticated \
  -H "Authorization: Bearer $token" -H "X-Postern-Device: st-$user" \
  --exclude-operation-id logout --exclude-operation-id revoke_all \
  --exclude-operation-id revoke_identity --exclude-operation-id replace_identity

for op in logout revoke_all revoke_identity replace_identity; do
  user="st-${op//_/-}"
  token="$(session "$user")"
  POSTERN_ST_USER="$user" st_run "$op" \
    -H "Authorization: Bearer $token" -H "X-Postern-Device: st-$user" --include-operation-id "$op"
done

echo "schemathesis: $runs runs, $generated generated test cases, 0 failures, $((SECONDS - started)) s (seed $seed)"
echo "schemathesis: $runs passed, 0 failed"
