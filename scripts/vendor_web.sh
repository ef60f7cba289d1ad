#!/usr/bin/env bash
# Copies the browser libraries of the dashboard and of the offline API docs from npm into
# service/dashboard/vendor/, so that the service never loads anything from a CDN at run time.
#
#   scripts/vendor_web.sh            install web/package-lock.json's exact versions and copy them (idempotent)
#   scripts/vendor_web.sh --update   move web/ to the newest versions first (rewrites the lock file; commit it)
#
# The versions are pinned by web/package-lock.json (`npm ci`). Install scripts are not run: the files we copy
# are prebuilt bundles, and swagger-ui-dist's install script only reports telemetry (@scarf/scarf).
# Re-copies only when the lock file changed (a stamp in the vendor folder).
set -euo pipefail
cd "$(dirname "$0")/.."

vendor=service/dashboard/vendor
stamp="$vendor/.vendored-$(sha256sum web/package-lock.json | cut -c1-16)"

export SCARF_ANALYTICS=false npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

if [ "${1:-}" = "--update" ]; then
  (cd web && npm install --ignore-scripts --save-exact echarts@latest us-atlas@latest topojson-client@latest \
    swagger-ui-dist@latest redoc@latest)
  rm -f "$vendor"/.vendored-*
  stamp="$vendor/.vendored-$(sha256sum web/package-lock.json | cut -c1-16)"
fi

if [ -f "$stamp" ]; then
  echo "==> dashboard libraries are up to date ($vendor)"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "scripts/vendor_web.sh: npm is missing (Node 20 + npm)" >&2; exit 1; }
echo "==> installing the dashboard's browser libraries from web/package-lock.json (npm ci)"
(cd web && npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)

modules=web/node_modules
rm -rf "$vendor"
mkdir -p "$vendor"/echarts "$vendor"/topojson "$vendor"/us-atlas "$vendor"/swagger-ui "$vendor"/redoc
cp "$modules"/echarts/dist/echarts.min.js "$modules"/echarts/LICENSE "$vendor"/echarts/
cp "$modules"/topojson-client/dist/topojson-client.min.js "$modules"/topojson-client/LICENSE "$vendor"/topojson/
cp "$modules"/us-atlas/states-10m.json "$modules"/us-atlas/LICENSE "$vendor"/us-atlas/
cp "$modules"/swagger-ui-dist/swagger-ui-bundle.js "$modules"/swagger-ui-dist/swagger-ui.css \
  "$modules"/swagger-ui-dist/favicon-32x32.png "$modules"/swagger-ui-dist/LICENSE "$vendor"/swagger-ui/
cp "$modules"/redoc/bundles/redoc.standalone.js "$modules"/redoc/LICENSE "$vendor"/redoc/
# ReDoc's menu shows a "by Redocly" logo from cdn.redoc.ly whatever the options: point it at our own icon.
# (Checked: a new ReDoc that loads the logo otherwise fails here rather than going online at run time.)
redoc_logo='https://cdn.redoc.ly/redoc/logo-mini.svg'
grep -q "$redoc_logo" "$vendor"/redoc/redoc.standalone.js
sed -i "s#$redoc_logo#/dashboard/favicon.svg#g" "$vendor"/redoc/redoc.standalone.js
if grep -q 'https://cdn\.' "$vendor"/redoc/redoc.standalone.js; then
  echo "scripts/vendor_web.sh: redoc.standalone.js still names a CDN" >&2
  exit 1
fi
# The versions served, for the root page and for whoever audits the bundle.
(cd web && node -e '
  const lock = require("./package-lock.json");
  const names = Object.keys(require("./package.json").dependencies);
  const versions = Object.fromEntries(names.map((n) => [n, lock.packages["node_modules/" + n].version]));
  console.log(JSON.stringify(versions, null, 2));
') > "$vendor"/versions.json
touch "$stamp"
echo "==> vendored into $vendor: $(du -sh "$vendor" | cut -f1)"
