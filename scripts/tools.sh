#!/usr/bin/env bash
# Installs the command-line tools the benchmarks drive, so nothing has to be installed by hand.
#
#   scripts/tools.sh            install what is missing (today: hey, the HTTP load generator)
#
# hey is a Debian package (a Go binary: it costs the server far less CPU than a Python load generator on the
# same 2-core machine). Installing needs root, or sudo without a password; CI runs as root. Idempotent: a
# tool already on PATH is left alone.
set -euo pipefail

tools=(hey)

missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "scripts/tools.sh: ${missing[*]} missing; run this script as root (it uses apt-get)" >&2
    exit 1
  fi
fi

echo "==> installing ${missing[*]} (apt-get)"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${missing[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "scripts/tools.sh: $tool still missing" >&2; exit 1; }
done
