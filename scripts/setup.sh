#!/usr/bin/env bash
# Installs everything the project needs on a machine with only Node (>= 20.18) and npm:
# pnpm (pinned, run through npx), the workspace's dependencies exactly as locked, and ffmpeg
# (Debian's package) for the transcode example and its tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/pnpm.sh install --frozen-lockfile

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  echo "installing ffmpeg (Debian package)…"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "ffmpeg is missing and this user cannot install it: run 'apt-get install ffmpeg' as root" >&2
    exit 1
  fi
fi
