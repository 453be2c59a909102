#!/usr/bin/env bash
# Soak test (not part of CI): runs the release proxy for --minutes N (default 10)
# under steady churn from examples/soak_driver.rs (bulk, interactive and idle
# sessions, bad tickets, vanishing browsers, console servers that reset), samples
# the proxy's RSS, open file descriptors and live sessions every 5 s into a CSV, and
# fails if a byte was lost, a session failed unexpectedly, the proxy did not drain
# cleanly on SIGTERM, or memory or descriptors kept growing (the last third of the
# run, after a one-minute warm-up, compared with the first third, with slack).
#
#   bash tests/soak.sh --minutes 30 [--rate 10] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
rate=10
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--minutes N] [--rate SESSIONS_PER_S] [--out DIR]" >&2; exit 2 ;;
  esac
done

cargo build --release --quiet --bin consolegate --example soak_driver
bin=target/release/consolegate
driver=target/release/examples/soak_driver

work=${out:-$(mktemp -d -t consolegate-soak.XXXXXX)}
mkdir -p "$work/keys"
"$bin" keygen --out-dir "$work/keys" --name engine >/dev/null 2>&1
mv "$work/keys/engine.key" "$work/engine.key"

# Each session claims an X-Forwarded-For address, so 127.0.0.1 is the trusted balancer.
"$bin" serve --listen 127.0.0.1:0 --allow-plain --trust "$work/keys" \
  --allow-target 127.0.0.1/32 --allow-port 1-65535 --trusted-proxy 127.0.0.1/32 \
  --grace 10s --log-format json 2>"$work/proxy.log" &
proxy=$!
trap 'kill "$proxy" 2>/dev/null || true; kill "${driver_pid:-}" 2>/dev/null || true' EXIT

addr=""
for _ in $(seq 1 100); do
  addr=$(grep -o '"listen":"[^"]*"' "$work/proxy.log" 2>/dev/null | head -1 | cut -d'"' -f4 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "proxy did not start"; cat "$work/proxy.log"; exit 1; }
echo "soak: proxy pid $proxy on $addr, $minutes min at $rate sessions/s, output in $work"

"$driver" --proxy "$addr" --key "$work/engine.key" --minutes "$minutes" --rate "$rate" \
  --status "$work/status" >"$work/driver.out" 2>"$work/driver.err" &
driver_pid=$!

csv="$work/samples.csv"
echo "t_s,rss_kib,fds,live_sessions,opened,failures" >"$csv"
start=$SECONDS
while kill -0 "$driver_pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$proxy/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$proxy/fd" 2>/dev/null | wc -l)
  st=$(cat "$work/status" 2>/dev/null || true)
  live=$(sed -n 's/.*live=\([0-9]*\).*/\1/p' <<<"$st")
  opened=$(sed -n 's/.*opened=\([0-9]*\).*/\1/p' <<<"$st")
  failures=$(sed -n 's/.*failures=\([0-9]*\).*/\1/p' <<<"$st")
  echo "$((SECONDS - start)),$rss,$fds,${live:-0},${opened:-0},${failures:-0}" >>"$csv"
  sleep 5
done
driver_rc=0
wait "$driver_pid" || driver_rc=$?

kill -TERM "$proxy"
proxy_rc=0
wait "$proxy" || proxy_rc=$?
trap - EXIT

cat "$work/driver.out"
[ -s "$work/driver.err" ] && head -20 "$work/driver.err"

# Growth check: after a 60 s warm-up, the mean of the last third against the first.
verdict=$(awk -F, 'NR > 1 && $1 >= 60 { n++; rss[n] = $2; fd[n] = $3 }
  END {
    if (n < 6) { print "ok (too short for a growth check)"; exit }
    t = int(n / 3)
    for (i = 1; i <= t; i++) { r1 += rss[i]; f1 += fd[i] }
    for (i = n - t + 1; i <= n; i++) { r3 += rss[i]; f3 += fd[i] }
    r1 /= t; r3 /= t; f1 /= t; f3 /= t
    grow = (r3 > r1 * 1.25 + 16384 || f3 > f1 * 1.25 + 64)
    printf "%s rss_first_third=%.0fKiB rss_last_third=%.0fKiB fds_first_third=%.0f fds_last_third=%.0f\n",
      (grow ? "GROWING" : "ok"), r1, r3, f1, f3
  }' "$csv")
peak=$(awk -F, 'NR > 1 { if ($2 > r) r = $2; if ($3 > f) f = $3; if ($4 > l) l = $4 } END { printf "peak rss=%dKiB fds=%d live=%d", r, f, l }' "$csv")
refusal_lines=$(grep -c '"message":"refused"' "$work/proxy.log" || true)
summaries=$(grep -c 'suppressed' "$work/proxy.log" || true)
echo "soak: $verdict; $peak; proxy log: $(wc -l <"$work/proxy.log") lines ($refusal_lines refusals, $summaries summaries)"
echo "soak: driver exit $driver_rc, proxy exit $proxy_rc; samples in $csv"

[ "$driver_rc" -eq 0 ] && [ "$proxy_rc" -eq 0 ] && [[ $verdict == ok* ]]
