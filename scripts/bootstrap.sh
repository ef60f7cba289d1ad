#!/usr/bin/env bash
# Creates .venv and installs the project with every dependency pinned by constraints.txt.
# Idempotent: reinstalls only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating virtual environment .venv ($("$python_bin" --version))"
  "$python_bin" -m venv .venv
fi

stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> installing salespulse and its pinned dependencies into .venv (about a minute the first time)"
  # The machine's pip config lists extra local indexes that may be absent; their warnings are noise.
  quiet_pip() { .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
  quiet_pip install --quiet --upgrade pip
  quiet_pip install --quiet -c constraints.txt -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
else
  echo "==> .venv is up to date"
fi
