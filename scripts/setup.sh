#!/usr/bin/env bash
# Installs everything the project needs on a machine with only Node (>= 20.18) and npm:
# pnpm (pinned, run through npx) and the workspace's dependencies, exactly as locked.
set -euo pipefail
cd "$(dirname "$0")/.."
PNPM_VERSION=10.34.8
if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version 2>/dev/null)" = "$PNPM_VERSION" ]; then
  pnpm install --frozen-lockfile
else
  npx --yes "pnpm@$PNPM_VERSION" install --frozen-lockfile
fi
