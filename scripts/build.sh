#!/usr/bin/env bash
# Builds every package (ESM JavaScript, .d.ts and source maps in packages/*/dist) with tsc's
# build mode, and type-checks the tests, examples and benchmarks against those declarations.
set -euo pipefail
cd "$(dirname "$0")/.."
node_modules/.bin/tsc -b
