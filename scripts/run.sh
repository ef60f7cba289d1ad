#!/usr/bin/env bash
# The main job on the embedded default: install, sample data, trained champions, and the service answering
# on 127.0.0.1:3000. Idempotent: existing data and champions are kept (SALESPULSE_REGENERATE=1 rebuilds
# the warehouse, SALESPULSE_RETRAIN=1 trains again), and a service left running by a previous run is
# replaced. Stop it with `make stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

if [ "${SALESPULSE_REGENERATE:-0}" = "1" ] || ! salespulse data info --quiet >/dev/null 2>&1; then
  salespulse data generate
fi
salespulse data info

if [ "${SALESPULSE_RETRAIN:-0}" = "1" ] || ! salespulse train status --quiet >/dev/null 2>&1; then
  salespulse train all
fi
salespulse train status

# Write endpoints need a key: keep one per checkout unless the caller brings their own.
if [ -z "${SALESPULSE_API_KEY:-}" ]; then
  [ -f data/.api-key ] || python3 -c "import secrets; print(secrets.token_urlsafe(24))" > data/.api-key
  SALESPULSE_API_KEY="$(cat data/.api-key)"
  export SALESPULSE_API_KEY
fi

scripts/service.sh stop >/dev/null 2>&1 || true
scripts/service.sh start
