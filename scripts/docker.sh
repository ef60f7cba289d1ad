#!/usr/bin/env bash
# Build and smoke-test the salespulse Docker image on a machine without a registry or a running engine.
#
#   scripts/docker.sh engine        start a private dockerd (if none answers) and print its DOCKER_HOST
#   scripts/docker.sh base          make the python:3.11-slim base image locally (debootstrap, cached)
#   scripts/docker.sh build         build the image salespulse:latest from ./Dockerfile
#   scripts/docker.sh smoke         run it on 127.0.0.1 and check health, one forecast and one segment
#   scripts/docker.sh rmi           remove the image
#   scripts/docker.sh stop          stop the private dockerd
#   scripts/docker.sh all           engine + base + build + smoke
#
# The build context is $SALESPULSE_BUILD_DIR (default build/): the exported Bento, the pins and a warehouse
# snapshot (made by `salespulse serve build`) and a wheelhouse (made here), so the image installs with no
# network. Wheels are downloaded once into a cache and hard-linked into the context.
set -euo pipefail
cd "$(dirname "$0")/.."

state="${SALESPULSE_DOCKER_STATE:-/tmp/salespulse-docker}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/salespulse"
export DOCKER_HOST="unix://$state/docker.sock"
image="${SALESPULSE_IMAGE:-salespulse:latest}"
context="${SALESPULSE_BUILD_DIR:-build}"
port="${SALESPULSE_SMOKE_PORT:-3300}"

need_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

engine() {
  need_packages
  if docker info >/dev/null 2>&1; then return; fi
  mkdir -p "$state"
  echo "==> starting dockerd ($state)"
  dockerd --data-root "$state/data" --exec-root "$state/exec" --pidfile "$state/docker.pid" \
    --host "$DOCKER_HOST" --iptables=false --ip-masq=false --bridge=none --storage-driver overlay2 \
    >"$state/dockerd.log" 2>&1 &
  for _ in $(seq 1 50); do docker info >/dev/null 2>&1 && return; sleep 0.2; done
  echo "dockerd did not start; see $state/dockerd.log" >&2
  exit 1
}

base() {
  engine
  if docker image inspect python:3.11-slim >/dev/null 2>&1; then return; fi
  local tarball="$cache/debian-bookworm-python311.tar"
  if [ ! -f "$tarball" ]; then
    echo "==> debootstrap bookworm with python3 (about 30 s, cached in $cache)"
    local root mirror
    root="$(mktemp -d)"
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    debootstrap --variant=minbase --include=ca-certificates,python3,python3-pip,python3-venv,curl \
      bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >/dev/null
    rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
    mkdir -p "$cache"
    tar --numeric-owner -C "$root" -cf "$tarball" .
    rm -rf "$root"
  fi
  echo "==> importing the base image as python:3.11-slim"
  docker import "$tarball" python:3.11-slim >/dev/null
}

wheels() {
  local wheelhouse="$cache/wheels"
  if [ ! -f "$wheelhouse/.complete" ] || [ constraints.txt -nt "$wheelhouse/.complete" ]; then
    echo "==> collecting wheels for the image ($wheelhouse)"
    mkdir -p "$wheelhouse"
    .venv/bin/python -m pip download --quiet --only-binary=:all: --dest "$wheelhouse" -r constraints.txt \
      2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    touch "$wheelhouse/.complete"
  fi
  rm -rf "$context/wheels"
  cp -al "$wheelhouse" "$context/wheels" 2>/dev/null || cp -a "$wheelhouse" "$context/wheels"
}

build() {
  [ -f "$context/salespulse.bento" ] || { echo "$context/salespulse.bento is missing: run 'salespulse serve build' first" >&2; exit 1; }
  base
  wheels
  echo "==> docker build $image (context $context)"
  docker build --network host -f Dockerfile -t "$image" "$context" >"$state/build.log" 2>&1 \
    || { tail -30 "$state/build.log" >&2; exit 1; }
}

smoke() {
  engine
  local name="salespulse-smoke-$$"
  docker run -d --name "$name" --network host -e SALESPULSE_SERVICE_PORT="$port" "$image" >/dev/null
  # On failure, show why before the container is removed.
  trap 'docker logs --tail 40 '"$name"' >&2 2>/dev/null; docker rm -f '"$name"' >/dev/null 2>&1 || true' RETURN
  local url="http://127.0.0.1:$port"
  for _ in $(seq 1 120); do
    curl -fs "$url/readyz" >/dev/null 2>&1 && break
    if [ -z "$(docker ps -q -f "name=^$name\$")" ]; then
      echo "the container exited before it was ready" >&2
      exit 1
    fi
    sleep 1
  done
  curl -fs "$url/health" | tee /dev/stderr | grep -q '"ready"'
  echo
  .venv/bin/python scripts/smoke_requests.py "$url"
  echo "==> smoke test passed: health, forecast and segment answer from the container"
}

stop() {
  [ -f "$state/docker.pid" ] || return 0
  kill "$(cat "$state/docker.pid")" 2>/dev/null || true
  sleep 1
  umount "$state/exec/netns/default" 2>/dev/null || true
}

case "${1:-all}" in
  engine) engine; echo "DOCKER_HOST=$DOCKER_HOST" ;;
  base) base ;;
  build) build ;;
  smoke) smoke ;;
  stop) stop ;;
  rmi) engine; docker rmi -f "$image" >/dev/null ;;
  all) build; smoke ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac
