#!/usr/bin/env bash
# The whole test suite (lint + pytest), from a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "==> ruff"
ruff check .
echo "==> pytest"
pytest -n "${PYTEST_WORKERS:-2}" "$@"
