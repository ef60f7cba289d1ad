#!/usr/bin/env bash
# The main job on an embedded default: install, then sample data into the warehouse.
# Idempotent: an existing warehouse is kept (set SALESPULSE_REGENERATE=1 to rebuild it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

if [ "${SALESPULSE_REGENERATE:-0}" = "1" ] || ! salespulse data info --quiet >/dev/null 2>&1; then
  salespulse data generate
fi
salespulse data info
