#!/usr/bin/env bash
# Runs every test of consolegate: the README's second command, and what CI runs.
# Installs what a fresh machine lacks first (tests/setup.sh), then runs each suite,
# keeps going after a failure so one run shows every problem, and ends with a
# "suites: N passed, M failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash tests/setup.sh

passed=0
failed=0
failures=()
suite() {
  local name=$1
  shift
  echo
  echo "=== suite: $name ==="
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: passed ($((SECONDS - start)) s) ==="
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED ($((SECONDS - start)) s) ==="
  fi
}

suite "format" cargo fmt --all -- --check
suite "clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings
# Tests that skip for a missing tool record it here (tests/common/tools.rs).
skipped=target/tmp/skipped-tests.txt
rm -f "$skipped"
suite "rust unit and integration tests" cargo test --workspace --quiet
suite "interop with PyJWT, jwcrypto and openssl" python3 tests/interop.py "$root/target/debug/consolegate"
suite "ticket signing examples (Python, Node.js, Go)" bash tests/examples.sh "$root/target/debug/consolegate"
suite "Debian package: build, install, check, purge" bash tests/package.sh
if [ -f tests/e2e/package.json ]; then
  suite "browser end to end (chromium, noVNC, QEMU)" bash -c 'cd tests/e2e && CONSOLEGATE_BIN="$0/target/debug/consolegate" node --test --test-concurrency=1' "$root"
fi
suite "fuzz quick run (5 s per target)" bash fuzz/run.sh 5
if [ -f bench/run.sh ]; then
  suite "benchmark smoke (byte integrity)" bash bench/run.sh --smoke
fi

echo
if [ -s "$skipped" ]; then
  echo "skipped Rust tests (a tool is missing; under CI=true they fail instead):"
  cat "$skipped"
fi
if [ "$failed" -gt 0 ]; then
  printf 'failed suites: %s\n' "${failures[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
