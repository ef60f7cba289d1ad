#!/usr/bin/env bash
# Start, stop or restart the service in the background (pid in data/service.pid, log in data/service.log,
# rotated by size: scripts/rotating_log.py, SALESPULSE_SERVICE_LOG_MAX_BYTES and _BACKUPS).
# `start` waits for this very instance (its id in /health), not for an old one still draining; `stop` waits
# until the old processes are gone, so the new one can take the warehouse.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
host="${SALESPULSE_SERVICE_HOST:-127.0.0.1}"
port="${SALESPULSE_SERVICE_PORT:-3000}"
url="http://$host:$port"
mkdir -p data

start() {
  local instance
  instance="$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
  echo "==> starting the service on $url (log: data/service.log)"
  # One writer rotates the log for every process of the service (they share the pipe); $! is the service.
  # The writer holds none of this script's outputs open (`make run | tee` ends when the script does).
  SALESPULSE_INSTANCE_ID="$instance" nohup salespulse serve run --host "$host" --port "$port" \
    > >(python scripts/rotating_log.py data/service.log > /dev/null 2>> data/service.log.errors) 2>&1 &
  echo $! > data/service.pid
  for _ in $(seq 1 240); do
    if [ "$(answering_instance)" = "$instance" ] && curl -fs "$url/readyz" >/dev/null 2>&1; then
      print_examples
      return
    fi
    if ! kill -0 "$(cat data/service.pid)" 2>/dev/null; then
      echo "the service exited; last lines of data/service.log:" >&2
      tail -30 data/service.log >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "the service did not become ready in 120 s; see data/service.log" >&2
  exit 1
}

answering_instance() {
  curl -fs "$url/health" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("instance",""))' \
    2>/dev/null || true
}

stop() {
  [ -f data/service.pid ] || return 0
  local pid
  pid="$(cat data/service.pid)"
  # bentoml serve runs the API in child processes: stop the whole group it leads, then wait for all of it.
  local family
  family="$pid $( (pgrep -P "$pid" 2>/dev/null || true) | tr '\n' ' ')"  # none: a stale pid file
  kill -TERM $family 2>/dev/null || true
  for _ in $(seq 1 60); do
    alive=0
    for p in $family; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for p in $family; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f data/service.pid
  echo "==> service stopped"
}

print_examples() {
  local customer key_note
  # A real customer of this warehouse (the best one), so the examples work on any data.
  customer="$(curl -fs "$url/analytics/reports/top-customers?n=1" 2>/dev/null \
    | python3 -c 'import json,sys; row=json.load(sys.stdin)["rows"][0]; print(row.get("customer_id") or row.get("customer"))' \
    2>/dev/null || echo C-0000001)"
  if [ -n "${SALESPULSE_API_KEY:-}" ]; then
    key_note="${SALESPULSE_API_KEY:0:4}…  (masked; the key is in ${SALESPULSE_API_KEY_FILE:-your SALESPULSE_API_KEY})"
  else
    key_note="none: write endpoints refuse until SALESPULSE_API_KEY is set"
  fi
  cat <<EXAMPLES

salespulse is answering on $url   (Swagger UI: $url/ · stop: make stop)
API key for write and admin endpoints: $key_note

  curl -s $url/health
  curl -s $url/models
  curl -s -X POST $url/forecast -H 'content-type: application/json' \\
       -d '{"level": "category", "series": ["Technology"], "horizon": 28}'
  curl -s -X POST $url/segment -H 'content-type: application/json' \\
       -d '{"customer_ids": ["$customer"]}'
  curl -s -X POST $url/segment -H 'content-type: application/json' \\
       -d '{"customers": [{"recency_days": 12, "frequency": 9, "monetary": 5120, "tenure_days": 640, "avg_order_value": 569}]}'
  curl -s $url/customers/$customer
  curl -s $url/segments
  curl -s $url/analytics/meta
  curl -s -X POST $url/analytics/query -H 'content-type: application/json' \\
       -d '{"measures": ["revenue", "orders"], "dimensions": ["region"], "time_dimension": {"grain": "month"}}'
  curl -s -X POST $url/admin/reload -H "x-api-key: \$(cat ${SALESPULSE_API_KEY_FILE:-data/.api-key})"

With the service running, the command line goes through it: salespulse data info | data import | train ... | serve build
EXAMPLES
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  examples) print_examples ;;
  *) echo "usage: scripts/service.sh start|stop|restart|examples" >&2; exit 2 ;;
esac
