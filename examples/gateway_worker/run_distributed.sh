#!/usr/bin/env bash
# The gateway/worker example as separate processes on this machine: the dev
# server (or a PostgreSQL database), a worker and the FastAPI gateway.
#
#   examples/gateway_worker/run_distributed.sh        run until Ctrl-C
#   examples/gateway_worker/run_distributed.sh demo   dispatch, poll, kill the
#       worker mid-invocation, watch a second worker finish it, then stop
#
# Environment: BIN (where resonate-web and uvicorn live; default: the repo's
# .venv/bin, else PATH), DEV_PORT (8001), GATEWAY_PORT (8000),
# RESONATE_LEASE_TTL (seconds a crashed worker holds a task; 5 here).
# RESONATE_URL=postgresql://... runs everything on that database instead of
# the dev server (it needs resonate-pg's schema: resonate-web pg check "$DSN").
# Every process started here is stopped by its PID on exit.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BIN="${BIN:-$root/.venv/bin}"
if [[ ! -x "$BIN/resonate-web" ]]; then
    BIN="$(dirname "$(command -v resonate-web)")"
fi
DEV_PORT="${DEV_PORT:-8001}"
GATEWAY_PORT="${GATEWAY_PORT:-8000}"
case "${RESONATE_URL:-}" in
    postgresql://* | postgres://*)
        backend="postgres (resonate-pg)" ;;
    *)
        export RESONATE_URL="http://127.0.0.1:$DEV_PORT"
        backend="dev server $RESONATE_URL" ;;
esac
export RESONATE_LEASE_TTL="${RESONATE_LEASE_TTL:-5}"
gateway="http://127.0.0.1:$GATEWAY_PORT/resonate"
cd "$here"

pids=()
cleanup() {
    trap - EXIT INT TERM
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do  # gateway and workers first
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: run COMMAND in the background, its output prefixed.
start() {
    local name="$1"
    shift
    "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
    pids+=("$!")
    last_pid="$!"
}

wait_http() {
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "no answer from $1" >&2
    exit 1
}

if [[ "$RESONATE_URL" == http* ]]; then
    start dev "$BIN/resonate-web" dev --port "$DEV_PORT"
    wait_http "$RESONATE_URL/health"
fi
start worker-1 "$BIN/resonate-web" worker functions --group workers
worker1="$last_pid"
start gateway "$BIN/uvicorn" gateway_fastapi:app --port "$GATEWAY_PORT" --log-level warning
wait_http "$gateway/health"

if [[ "${1:-}" != "demo" ]]; then
    cat <<EOF

$backend, worker group "workers", gateway $gateway. Try:

  curl -s -X POST '$gateway/functions/add?wait=5' -H 'content-type: application/json' -d '{"args": [2, 3]}'
  curl -s -X POST '$gateway/functions/slow?id=s1' -H 'content-type: application/json' -d '{"args": [10, "done"]}'
  curl -s '$gateway/invocations/s1?wait=30'

Ctrl-C stops everything.
EOF
    wait
    exit 0
fi

post() {  # post FUNCTION QUERY BODY
    curl -sS -X POST "$gateway/functions/$1?$2" -H 'content-type: application/json' -d "$3"
    echo
}

sleep 1  # let the worker's event stream connect
echo "== add(2, 3), waiting up to 5 s for the result"
post add "wait=5" '{"args": [2, 3]}'

id="demo-$(date +%s)"
echo "== slow(4, \"finished\") as $id: accepted at once, runs on worker-1"
post slow "id=$id" '{"args": [4, "finished"]}'
sleep 1
echo "== its status while it runs"
curl -sS "$gateway/invocations/$id"
echo

echo "== a second worker joins; worker-1 is killed (SIGKILL) mid-invocation"
start worker-2 "$BIN/resonate-web" worker functions --group workers
sleep 1
kill -9 "$worker1"
killed=$(date +%s.%N)
wait "$worker1" 2>/dev/null || true

echo "== long-poll: worker-2 takes the task over once worker-1's lease ($RESONATE_LEASE_TTL s) lapses"
curl -sS "$gateway/invocations/$id?wait=30"
echo
echo "== finished $(echo "$(date +%s.%N) - $killed" | bc 2>/dev/null || echo '?') s after the kill"
