#!/usr/bin/env bash
# Runs the project's pinned pnpm: the one on PATH if it is that version, else through npx.
set -euo pipefail
PNPM_VERSION=10.34.8
if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version 2>/dev/null)" = "$PNPM_VERSION" ]; then
  exec pnpm "$@"
fi
exec npx --yes "pnpm@$PNPM_VERSION" "$@"
