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

# kubectl (kustomize), the docker compose plugin and nginx check the deployment recipes (tests/test_deploy.py).
scripts/deploy_tools.sh

# The dashboard's and the API docs' browser libraries come from npm (web/package-lock.json), never from a CDN.
scripts/vendor_web.sh

# newman runs the Postman collection (tests/test_postman_collection.py); pinned by postman/package-lock.json.
# npm ci wipes postman/node_modules first, so the stamp inside it goes whenever the lock file changes.
newman_stamp="postman/node_modules/.installed-$(sha256sum postman/package-lock.json | cut -c1-16)"
if [ ! -f "$newman_stamp" ]; then
  command -v npm >/dev/null 2>&1 || { echo "scripts/bootstrap.sh: npm is missing (Node 20 + npm)" >&2; exit 1; }
  echo "==> installing newman from postman/package-lock.json (npm ci)"
  npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false \
    npm ci --prefix postman --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error
  touch "$newman_stamp"
else
  echo "==> newman is up to date (postman/node_modules)"
fi

# The dashboard test drives Debian's chromium (Playwright's own browser download does not work offline).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing chromium (apt-get) for the dashboard test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "==> chromium is missing (run as root to install it); tests/test_dashboard.py will be skipped"
  fi
fi

# The Postgres tests (system of record, replicas, data sync) start their own server from its binaries.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "==> installing the PostgreSQL server (apt-get) for the Postgres tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "scripts/bootstrap.sh: the PostgreSQL server is missing; install it (apt-get install postgresql)" >&2
    exit 1
  fi
fi
