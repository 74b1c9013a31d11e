#!/usr/bin/env bash
# The whole test suite: build every package (tsc -b, which also type-checks the tests, examples and
# benchmarks), then every test (vitest) against the real embedded network, including the consumer
# test that packs the packages and installs the tarballs with plain npm.
# Prints a closing line "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "build and type check (tsc -b, strict)…"
bash scripts/build.sh
report="$(mktemp -d)/vitest.json"
status=0
node_modules/.bin/vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  const skipped = r.numPendingTests + r.numTodoTests
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`)
  if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1) }
' "$report" || status=1
exit $status
