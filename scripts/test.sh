#!/usr/bin/env bash
# The whole test suite: type check, then every test (vitest) against the real embedded network.
# Prints a closing line "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "type check (tsc, strict)…"
node_modules/.bin/tsc -p tsconfig.json
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
