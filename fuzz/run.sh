#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and fails if any crashes,
# leaks past the memory limit or hangs. `fuzz/run.sh 5` is the quick CI run.
#
# Each target starts from its committed seeds (fuzz/corpus/<target>/seed-*) and
# grows a throwaway corpus in a temporary directory, so a run leaves the repository
# as it found it. A crashing input is kept in fuzz/artifacts/<target>/; replay it
# with `cargo +nightly fuzz run <target> <file>` from fuzz/.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (cargo fuzz needs it: rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=(ticket_verify ticket_signed request_uri static_path config_toml rfb_view)
# Limits of the brief: no input may make the process use more than 512 MiB (or ask
# for that much in one allocation), inputs up to 8 KiB (twice the largest ticket),
# and no single input may take more than 10 s.
limits=(-rss_limit_mb=512 -malloc_limit_mb=512 -max_len=8192 -timeout=10)

failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! cargo +nightly fuzz build >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "fuzz: build failed" >&2
  exit 1
fi
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log="$work/$t.log"
  start=$SECONDS
  if cargo +nightly fuzz run "$t" "$work/$t" "corpus/$t" -- \
    "${limits[@]}" -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=$((failed + 1))
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz $t: $status, ${execs:-?} execs in $((SECONDS - start)) s"
  if [ "$status" = FAILED ]; then
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -20 | sed 's/^/    /'
  fi
done
echo "fuzz targets: $((${#targets[@]} - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
