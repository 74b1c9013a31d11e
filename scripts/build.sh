#!/usr/bin/env bash
# Builds every package (ESM JavaScript, .d.ts and source maps in packages/*/dist) with tsc's
# build mode, and type-checks the tests, examples and benchmarks against those declarations.
# Then removes what an earlier build left in dist/ for a source file that is gone since: tsc -b
# never deletes it, and `files` would ship it (test/consumer.test.ts checks the tarballs).
set -euo pipefail
cd "$(dirname "$0")/.."
node_modules/.bin/tsc -b
node -e '
  const { existsSync, readdirSync, rmSync } = require("node:fs")
  const { join } = require("node:path")
  const compiled = /\.[cm]?js(\.map)?$|\.d\.[cm]?ts(\.map)?$/
  for (const pkg of readdirSync("packages")) {
    const dist = join("packages", pkg, "dist")
    if (!existsSync(dist)) continue
    for (const file of readdirSync(dist, { recursive: true })) {
      if (!compiled.test(file)) continue
      const stem = join("packages", pkg, "src", file.replace(compiled, ""))
      if ([".ts", ".tsx", ".mts", ".cts", ".js", ".cjs", ".mjs"].some((ext) => existsSync(stem + ext))) continue
      rmSync(join(dist, file))
      console.log(`removed ${join(dist, file)}: its source is gone`)
    }
  }
'
