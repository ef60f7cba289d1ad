#!/usr/bin/env bash
# The main job on the embedded default: install, sample data, trained champions, and the service answering
# on 127.0.0.1:3000. Safe to run again: a warehouse that holds sales is never replaced (SALESPULSE_REGENERATE=1
# stops the service and generates a new one), champions are kept (SALESPULSE_RETRAIN=1 trains again), and
# a service left running by a previous run is replaced by a new instance, which is waited for.
# SALESPULSE_SAMPLE_ARGS passes options to `salespulse data generate` (e.g. "--rows 60000" for a quick try).
# Stop the service with `make stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
# shellcheck disable=SC2206
sample=(${SALESPULSE_SAMPLE_ARGS:-})

if [ "${SALESPULSE_REGENERATE:-0}" = "1" ]; then
  scripts/service.sh stop
  salespulse data generate --replace "${sample[@]}"
else
  # Generates only when there is no warehouse or it has no sales; asks the running service if it owns one.
  salespulse data generate --if-empty "${sample[@]}"
fi
salespulse data info

if [ "${SALESPULSE_RETRAIN:-0}" = "1" ] || ! salespulse train status --quiet >/dev/null 2>&1; then
  salespulse train all
fi
salespulse train status

# Write endpoints need a key: keep one per checkout (readable by its owner only) unless the caller brings one.
if [ -z "${SALESPULSE_API_KEY:-}" ]; then
  key_file="${SALESPULSE_API_KEY_FILE:-data/.api-key}"
  if [ ! -s "$key_file" ]; then
    (umask 077 && python3 -c "import secrets; print(secrets.token_urlsafe(24))" > "$key_file")
  fi
  chmod 600 "$key_file"
  SALESPULSE_API_KEY="$(cat "$key_file")"
  export SALESPULSE_API_KEY SALESPULSE_API_KEY_FILE="$key_file"
fi

scripts/service.sh restart
