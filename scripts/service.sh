#!/usr/bin/env bash
# Start or stop the service in the background (pid in data/service.pid, log in data/service.log).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
host="${SALESPULSE_SERVICE_HOST:-127.0.0.1}"
port="${SALESPULSE_SERVICE_PORT:-3000}"
url="http://$host:$port"

start() {
  echo "==> starting the service on $url (log: data/service.log)"
  nohup salespulse serve run --host "$host" --port "$port" > data/service.log 2>&1 &
  echo $! > data/service.pid
  for _ in $(seq 1 180); do
    if curl -fs "$url/readyz" >/dev/null 2>&1; then
      print_examples
      return
    fi
    if ! kill -0 "$(cat data/service.pid)" 2>/dev/null; then
      echo "the service exited; last lines of data/service.log:" >&2
      tail -30 data/service.log >&2
      exit 1
    fi
    sleep 1
  done
  echo "the service did not become ready in 180 s; see data/service.log" >&2
  exit 1
}

stop() {
  [ -f data/service.pid ] || return 0
  local pid
  pid="$(cat data/service.pid)"
  # bentoml serve runs the API in child processes: stop the whole group it leads.
  pkill -TERM -P "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  rm -f data/service.pid
  echo "==> service stopped"
}

print_examples() {
  local customer key
  # A real customer of this warehouse (the best one), so the examples work on any data.
  customer="$(curl -fs "$url/analytics/reports/top-customers?n=1" 2>/dev/null \
    | python3 -c 'import json,sys; row=json.load(sys.stdin)["rows"][0]; print(row.get("customer_id") or row.get("customer"))' \
    2>/dev/null || echo C-0000001)"
  key="${SALESPULSE_API_KEY:-<your key>}"
  cat <<EXAMPLES

salespulse is answering on $url   (Swagger UI: $url/ · stop: make stop)

  curl -s $url/health
  curl -s $url/models
  curl -s -X POST $url/forecast -H 'content-type: application/json' \\
       -d '{"level": "category", "series": ["Technology"], "horizon": 28}'
  curl -s -X POST $url/segment -H 'content-type: application/json' \\
       -d '{"customer_ids": ["$customer"]}'
  curl -s -X POST $url/segment -H 'content-type: application/json' \\
       -d '{"customers": [{"recency_days": 12, "frequency": 9, "monetary": 5120.5, "tenure_days": 640, "avg_order_value": 568.9}]}'
  curl -s $url/customers/$customer
  curl -s $url/segments
  curl -s $url/analytics/meta
  curl -s -X POST $url/analytics/query -H 'content-type: application/json' \\
       -d '{"measures": ["revenue", "orders"], "dimensions": ["region"], "time_dimension": {"grain": "month"}}'
  curl -s -X POST $url/admin/reload -H 'x-api-key: $key'
EXAMPLES
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  examples) print_examples ;;
  *) echo "usage: scripts/service.sh start|stop|examples" >&2; exit 2 ;;
esac
