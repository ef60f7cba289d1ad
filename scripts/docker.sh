#!/usr/bin/env bash
# Build and smoke-test the salespulse Docker image on a machine without a registry or a running engine.
#
#   scripts/docker.sh engine        start a private dockerd (if none answers) and print its DOCKER_HOST
#   scripts/docker.sh base          make the python:3.11-slim base image locally (debootstrap, cached)
#   scripts/docker.sh build         build the image salespulse:latest from ./Dockerfile
#   scripts/docker.sh smoke         run it on 127.0.0.1 and check health, one forecast, one segment, that no
#                                   process in it runs as root and that it runs one worker (the default)
#   scripts/docker.sh workers       run it with SALESPULSE_SERVICE_WORKERS=$SALESPULSE_SMOKE_WORKERS (default
#                                   2) and check it starts that many workers, none as root
#   scripts/docker.sh rmi           remove the image
#   scripts/docker.sh stop          stop the private dockerd
#   scripts/docker.sh all           engine + base + build + smoke + workers
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
smoke_workers="${SALESPULSE_SMOKE_WORKERS:-2}"
url="http://127.0.0.1:$port"

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

# The containers this run started: removed when the script exits, whichever way (an `exit 1` skips a
# function's RETURN trap, and a container left running keeps answering on the port).
containers=()
remove_containers() {
  local status=$? name
  for name in "${containers[@]}"; do
    [ "$status" -eq 0 ] || docker logs --tail 40 "$name" >&2 2>/dev/null || true  # why it failed
    docker rm -f "$name" >/dev/null 2>&1 || true
  done
}
trap remove_containers EXIT

# Start the image as container $1 with extra `docker run` arguments, and wait until it answers /readyz
# (--max-time: while no worker is up, the kernel still accepts connections that nobody answers).
start_container() {
  local name="$1"; shift
  if curl -fs --max-time 5 "$url/readyz" >/dev/null 2>&1; then
    echo "something already answers on $url: set SALESPULSE_SMOKE_PORT to a free port" >&2
    exit 1
  fi
  containers+=("$name")
  docker run -d --name "$name" --network host -e SALESPULSE_SERVICE_PORT="$port" "$@" "$image" >/dev/null
  for _ in $(seq 1 120); do
    curl -fs --max-time 5 "$url/readyz" >/dev/null 2>&1 && return
    if [ -z "$(docker ps -q -f "name=^$name\$")" ]; then
      echo "the container exited before it was ready" >&2
      exit 1
    fi
    sleep 1
  done
  echo "the container was not ready in 120 s" >&2
  exit 1
}

# The image as built, with its default settings (one worker).
smoke() {
  engine
  local name="salespulse-smoke-$$"
  start_container "$name"
  curl -fs --max-time 30 "$url/health" | tee /dev/stderr | grep -q '"ready"'
  echo
  .venv/bin/python scripts/smoke_requests.py "$url"
  check_processes "$name" 1
  docker rm -f "$name" >/dev/null
  echo "==> smoke test passed: health, forecast and segment answer from the container"
}

# SALESPULSE_SERVICE_WORKERS reaches the service. Only the processes are checked: with several workers only
# the first one owns the warehouse, so a forecast may be refused by whichever worker takes the connection.
workers() {
  engine
  local name="salespulse-workers-$$"
  start_container "$name" -e SALESPULSE_SERVICE_WORKERS="$smoke_workers"
  check_processes "$name" "$smoke_workers"
  check_workers_stay_up "$name"
  docker rm -f "$name" >/dev/null
  echo "==> workers test passed: SALESPULSE_SERVICE_WORKERS=$smoke_workers started $smoke_workers workers"
}

# Every process of container $1, seen from the host (docker top runs the host's ps): none may be root, and
# the service must run $2 worker processes (circus starts them all at once, before /readyz answers).
check_processes() {
  local name="$1" expected="$2" processes uids workers
  for _ in $(seq 1 20); do  # circus starts every worker at once; allow them a moment to show up
    processes="$(docker top "$name" -eo pid,uid,args | tail -n +2)"  # docker top needs the pid column
    workers="$(grep -c "_bentoml_impl.worker.service" <<<"$processes" || true)"
    [ "$workers" -ge "$expected" ] && break
    sleep 0.5
  done
  uids="$(awk '{print $2}' <<<"$processes" | sort -un | paste -sd, -)"
  echo "==> container processes run as uid $uids; service workers: $workers"
  if awk '$2 == 0 {found = 1} END {exit !found}' <<<"$processes"; then
    echo "a container process runs as root:" >&2
    echo "$processes" >&2
    exit 1
  fi
  if [ "$workers" -ne "$expected" ]; then
    echo "expected $expected service worker(s), found $workers:" >&2
    echo "$processes" >&2
    exit 1
  fi
}

# /readyz answers once one worker is up; circus restarts a worker that fails at start-up in a loop, so a
# count of processes alone would pass. The workers must keep their processes for a while, and no worker may
# have logged a failed start.
check_workers_stay_up() {
  local name="$1" before after logs
  before="$(worker_pids "$name")"
  sleep "${SALESPULSE_SMOKE_STABLE_SECONDS:-15}"
  after="$(worker_pids "$name")"
  logs="$(docker logs "$name" 2>&1)"
  if [ "$before" != "$after" ] || grep -q "Application startup failed" <<<"$logs"; then
    echo "a worker did not stay up (worker pids before: $before; after: $after):" >&2
    grep -B 4 -m 1 "Application startup failed" <<<"$logs" >&2 || true
    exit 1
  fi
  echo "==> the workers stayed up (pids $after)"
}

worker_pids() {
  docker top "$1" -eo pid,args | awk '/_bentoml_impl.worker.service/ {print $1}' | sort -n | paste -sd, -
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
  workers) workers ;;
  stop) stop ;;
  rmi) engine; docker rmi -f "$image" >/dev/null ;;
  all) build; smoke; workers ;;
  *) sed -n 2,15p "$0"; exit 2 ;;
esac
