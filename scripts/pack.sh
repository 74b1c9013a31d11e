#!/usr/bin/env bash
# npm run pack -- DIR: builds every package and writes one .tgz per publishable package into DIR
# (created if missing), exactly as `pnpm publish` would upload it: workspace ranges replaced by
# versions, `publishConfig` applied (exports point at dist/), only `files`, README and LICENSE.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: npm run pack -- DIR" >&2
  exit 2
fi
mkdir -p "$1"
out="$(cd "$1" && pwd)"
cd "$(dirname "$0")/.."
[ -d node_modules ] || bash scripts/pnpm.sh install --frozen-lockfile
bash scripts/build.sh
bash scripts/pnpm.sh -r --filter './packages/*' pack --pack-destination "$out" >/dev/null
ls -1 "$out"/*.tgz
