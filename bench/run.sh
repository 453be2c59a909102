#!/usr/bin/env bash
# The side-by-side benchmark in one command: consolegate (ws:// and wss://), websockify
# 0.13 (plain and TLS, JWT plugin verifying the same Ed25519 tickets), a bare tokio TCP
# relay and the backend directly, on one machine with one backend and one key; and
# consolegate reaching a TLS-enabled console server (VeNCrypt X509None, as QEMU with
# tls-creds), served by a second backend process; nginx `stream` and HAProxy terminating
# TLS as anchors for wss://; the busy host (1,000 consoles all a little busy at once);
# and the time to first frame in Debian's chromium against QEMU's VNC.
#
#   bench/run.sh            full run (about 15 minutes on 2 cores once built)
#   bench/run.sh --smoke    a few seconds, tiny sizes: byte integrity only, for CI
#                           (the busy host at 20 sessions; no first-frame step);
#                           websockify only if bench/.venv already exists
#   --only a,b,...          restrict to targets: consolegate-ws consolegate-wss
#                           websockify-ws websockify-wss nginx-tls haproxy-tls
#                           bare-relay direct consolegate-ws-vencrypt
#                           consolegate-ws-view consolegate-ws-rec
#   --no-idle               skip the idle-memory phase
#   --no-busy               skip the busy-host phase
#   --no-first-frame        skip the browser's first-frame step
#   --busy-sessions N       busy-host sessions (default 1000)
#
# Writes bench/results/<UTC stamp>/ (JSON, logs, report.md, chart.svg), copies the
# table and chart to bench/results/<date>.md/.svg, and after a full run of every
# target to bench/latest.md and bench/latest.svg. See bench/README.md.
set -euo pipefail

SMOKE=0
IDLE=1
BUSY=1
FIRST_FRAME=1
BUSY_N=1000
ONLY="consolegate-ws,consolegate-wss,websockify-ws,websockify-wss,nginx-tls,haproxy-tls,bare-relay,direct,consolegate-ws-vencrypt,consolegate-ws-view,consolegate-ws-rec"
ALL_TARGETS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        --no-idle) IDLE=0; ALL_TARGETS=0 ;;
        --no-busy) BUSY=0; ALL_TARGETS=0 ;;
        --no-first-frame) FIRST_FRAME=0; ALL_TARGETS=0 ;;
        --busy-sessions) BUSY_N="$2"; ALL_TARGETS=0; shift ;;
        --only) ONLY="$2"; ALL_TARGETS=0; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
cd "$ROOT"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
DATE="$(date -u +%F)"
OUT="$BENCH/results/$STAMP"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
T0=$SECONDS

# Every server runs in its own process group (setsid), so websockify's forked
# children go down with it. The trap ends them all, however the script exits.
GROUPS_STARTED=()
cleanup() {
    for g in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    sleep 0.3
    for g in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# start NAME CMD...: runs CMD in a new process group, logging to $OUT/NAME.log; sets PID.
start() {
    local name="$1"; shift
    setsid "$@" >"$OUT/$name.log" 2>&1 < /dev/null &
    PID=$!
    GROUPS_STARTED+=("$PID")
}
stop() {
    kill -TERM -- "-$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null || true
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    local port="$1" pid="$2" name="$3"
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || die "$name exited at start: $(tail -5 "$OUT/$name.log")"
        sleep 0.1
    done
    die "$name did not listen on $port within 10 s: $(tail -5 "$OUT/$name.log")"
}

# Idle sessions need file descriptors: the proxy holds two per session.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
NBIG=$(( (NOFILE - 100) / 2 / 100 * 100 )); [ "$NBIG" -gt 10000 ] && NBIG=10000
MAXN=$(( NOFILE - 100 )); [ "$MAXN" -gt 20000 ] && MAXN=20000

log "building (release)"
cargo build --release --quiet -p consolegate -p consolegate-bench
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CG="$TARGET_DIR/release/consolegate"
# All load comes from one address with one ticket, so the per-client and per-ticket
# abuse limits (tested in tests/hardening*.rs) would measure the limiter, not the relay;
# websockify has no such limits. They are off here, and only here.
CG_NO_ABUSE_LIMITS="--max-sessions-per-client 0 --handshakes-per-second-per-client 0 --max-sessions-per-ticket 0 --max-pending-per-client 0"
B="$TARGET_DIR/release/cgbench"

# websockify 0.13 in its own virtualenv (numpy comes with it, as in distributions'
# packages; jwcrypto is what its JWT plugin needs).
VENV="$BENCH/.venv"
WEBSOCKIFY=0
if want websockify-ws || want websockify-wss; then
    if [ "$SMOKE" = 1 ]; then
        [ -x "$VENV/bin/websockify" ] && WEBSOCKIFY=1
    else
        if ! "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("websockify") != "0.13.0")' 2>/dev/null; then
            log "creating $VENV with websockify 0.13.0"
            python3 -m venv "$VENV"
            "$VENV/bin/pip" install --quiet --disable-pip-version-check websockify==0.13.0 jwcrypto
        fi
        WEBSOCKIFY=1
    fi
fi

# One key for everyone: consolegate's keygen (PKCS#8 + SPKI PEM, what openssl makes).
KEYS="$WORK/keys"
mkdir -p "$KEYS"
if ! "$CG" keygen --out-dir "$KEYS" --name bench >/dev/null 2>&1 || [ ! -s "$KEYS/bench.pub" ]; then
    log "consolegate keygen unavailable: using openssl"
    rm -f "$KEYS"/bench.*
    (umask 077; openssl genpkey -algorithm ed25519 -out "$KEYS/bench.key")
    openssl pkey -in "$KEYS/bench.key" -pubout -out "$KEYS/bench.pub"
fi
# ticket [PORT TLS]: a fresh EdDSA ticket for the backend (signed per phase: they live
# 600 s); with PORT and TLS, for that backend reached with tls "TLS".
ticket() {
    local t
    if [ $# -gt 0 ]; then
        "$CG" sign --key "$KEYS/bench.key" --host 127.0.0.1 --port "$1" --tls "$2" --ttl 600s
        return
    fi
    if t="$("$CG" sign --key "$KEYS/bench.key" --host 127.0.0.1 --port "$BACKEND_PORT" --ttl 600s 2>/dev/null)" && [ -n "$t" ]; then
        printf '%s' "$t"
        return
    fi
    # Until `consolegate sign` exists: the same form (EdDSA JWS, host/port/exp) by PyJWT.
    python3 - "$KEYS/bench.key" "$BACKEND_PORT" <<'EOF'
import sys, time, jwt
key = open(sys.argv[1]).read()
print(jwt.encode({"host": "127.0.0.1", "port": int(sys.argv[2]), "exp": int(time.time()) + 600},
                 key, algorithm="EdDSA"), end="")
EOF
}

# Throwaway TLS: a CA and a server certificate for 127.0.0.1 (the client verifies the
# chain like a browser would).
TLS="$WORK/tls"
mkdir -p "$TLS"
(
    cd "$TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=cgbench-ca -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out server.pem 2>/dev/null
    cat server.pem server.key > haproxy.pem
)

# The backend, one for all targets; its probe console (a thread of its own) answers the
# busy host's input round trips.
BACKEND_PORT="$(free_port)"
PROBE_PORT="$(free_port)"
start backend "$B" backend --listen "127.0.0.1:$BACKEND_PORT" --probe-listen "127.0.0.1:$PROBE_PORT"
BACKEND_PID=$PID
wait_port "$BACKEND_PORT" "$BACKEND_PID" backend
wait_port "$PROBE_PORT" "$BACKEND_PID" backend

# The TLS relays: nginx `stream` (its stream module is a separate Debian package,
# installed here when missing) and HAProxy, each terminating TLS with the same
# certificate and offering the TLS 1.3 suites in the same order as rustls, then
# relaying the bytes straight to the backend. Started as our own processes on loopback
# with configurations in the run's temporary directory, never as the system services.
NGINX_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
if want nginx-tls && [ ! -f "$NGINX_MODULE" ] && [ "$SMOKE" = 0 ] && [ "$(id -u)" = 0 ]; then
    log "installing libnginx-mod-stream (nginx's stream module)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnginx-mod-stream >/dev/null 2>&1 || true
fi
SUITES="TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
nginx_conf() {
    cat <<CONF
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx.pid;
error_log $OUT/nginx-tls.log warn;
load_module $NGINX_MODULE;
events { worker_connections 20000; }
stream {
    server {
        listen 127.0.0.1:$1 ssl;
        ssl_certificate $TLS/server.pem;
        ssl_certificate_key $TLS/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_conf_command Ciphersuites $SUITES;
        proxy_pass 127.0.0.1:$BACKEND_PORT;
    }
}
CONF
}
haproxy_conf() {
    cat <<CONF
global
    nbthread 2
    maxconn $(( (NOFILE - 100) / 2 ))
    ssl-default-bind-ciphersuites $SUITES
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend tls
    bind 127.0.0.1:$1 ssl crt $TLS/haproxy.pem
    default_backend console
backend console
    server backend 127.0.0.1:$BACKEND_PORT
CONF
}
# The TLS-enabled console server: the same backend behind RFB VeNCrypt X509None and
# TLS with the throwaway certificate, which the proxy checks against the throwaway CA.
if want consolegate-ws-vencrypt; then
    VENC_PORT="$(free_port)"
    start backend-vencrypt "$B" backend --listen "127.0.0.1:$VENC_PORT" \
        --vencrypt-cert "$TLS/server.pem" --vencrypt-key "$TLS/server.key"
    wait_port "$VENC_PORT" "$PID" backend-vencrypt
fi

# The VNC console server for the view-only and recorded targets: the same backend
# behind a plain RFB 3.8 greeting (security None), its commands as RFB messages.
if want consolegate-ws-view || want consolegate-ws-rec; then
    RFB_PORT="$(free_port)"
    start backend-rfb "$B" backend --listen "127.0.0.1:$RFB_PORT" --rfb
    wait_port "$RFB_PORT" "$PID" backend-rfb
fi
# Recordings of the recorded target go to the machine's disk (the run's temporary
# directory), the oldest pruned beyond 4 GiB. Its queue (what a session may have
# waiting for the writer) is 2 GiB instead of 16 MiB: at loopback rates the writer
# (SHA-256 and the file) falls behind, and with the default a 1 GiB transfer would be
# ended ("could not keep up"), as it must be; so the figures show what recording costs
# the relay while every byte is copied, hashed and written, not a sustained rate.
RECORDINGS="$WORK/recordings"

# start_target NAME: starts that proxy on a free port; sets PORT and PID.
start_target() {
    PORT="$(free_port)"
    case "$1" in
        consolegate-ws)
            start "$1" "$CG" serve --listen "127.0.0.1:$PORT" --admin-listen off $CG_NO_ABUSE_LIMITS --allow-plain --trust "$KEYS" \
                --allow-port "$BACKEND_PORT" --allow-port "$PROBE_PORT" --max-sessions 30000 --log-level warn ;;
        consolegate-wss)
            start "$1" "$CG" serve --listen "127.0.0.1:$PORT" --admin-listen off $CG_NO_ABUSE_LIMITS --trust "$KEYS" \
                --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key" \
                --allow-port "$BACKEND_PORT" --allow-port "$PROBE_PORT" --max-sessions 30000 --log-level warn ;;
        nginx-tls)
            nginx_conf "$PORT" > "$WORK/nginx.conf"
            start "$1-stdout" nginx -p "$WORK" -e "$OUT/nginx-tls.log" -c "$WORK/nginx.conf" ;;
        haproxy-tls)
            haproxy_conf "$PORT" > "$WORK/haproxy.cfg"
            start "$1" haproxy -db -f "$WORK/haproxy.cfg" ;;
        websockify-ws)
            start "$1" "$VENV/bin/websockify" --token-plugin JWTTokenApi \
                --token-source "$KEYS/bench.pub" "127.0.0.1:$PORT" ;;
        websockify-wss)
            start "$1" "$VENV/bin/websockify" --token-plugin JWTTokenApi \
                --token-source "$KEYS/bench.pub" --cert "$TLS/server.pem" --key "$TLS/server.key" \
                --ssl-only "127.0.0.1:$PORT" ;;
        consolegate-ws-vencrypt)
            start "$1" "$CG" serve --listen "127.0.0.1:$PORT" --admin-listen off $CG_NO_ABUSE_LIMITS --allow-plain --trust "$KEYS" \
                --backend-ca "$TLS/ca.pem" --allow-port "$VENC_PORT" --max-sessions 30000 --log-level warn ;;
        consolegate-ws-view)
            start "$1" "$CG" serve --listen "127.0.0.1:$PORT" --admin-listen off $CG_NO_ABUSE_LIMITS --allow-plain --trust "$KEYS" \
                --allow-port "$RFB_PORT" --max-sessions 30000 --log-level warn ;;
        consolegate-ws-rec)
            start "$1" "$CG" serve --listen "127.0.0.1:$PORT" --admin-listen off $CG_NO_ABUSE_LIMITS --allow-plain --trust "$KEYS" \
                --allow-port "$RFB_PORT" --max-sessions 30000 --log-level warn \
                --recording-dir "$RECORDINGS" --recording-policy all --recording-max-size 4G \
                --recording-queue-size 2G ;;
        bare-relay)
            RELAY_PROBE_PORT="$(free_port)"
            start "$1" "$B" relay --listen "127.0.0.1:$PORT" --to "127.0.0.1:$BACKEND_PORT" \
                --probe "127.0.0.1:$RELAY_PROBE_PORT,127.0.0.1:$PROBE_PORT" ;;
        direct)
            PORT="$BACKEND_PORT"; PID=0; return ;;
    esac
    wait_port "$PORT" "$PID" "$1"
}
# spec NAME: the generator's NAME,PID,URL for the running target.
spec() {
    case "$1" in
        consolegate-ws|websockify-ws) echo "$1,$PID,ws://127.0.0.1:$PORT/?token=$TICKET" ;;
        consolegate-wss|websockify-wss) echo "$1,$PID,wss://127.0.0.1:$PORT/?token=$TICKET" ;;
        nginx-tls|haproxy-tls) echo "$1,$PID,tls://127.0.0.1:$PORT" ;;
        # ws, then the browser's half of RFB (security type None) the proxy bridges to.
        consolegate-ws-vencrypt) echo "$1,$PID,rfb+ws://127.0.0.1:$PORT/?token=$VTICKET" ;;
        # ws, the browser's half of RFB with ClientInit, commands as RFB messages; the
        # view-only target's uploads are RFB input the proxy filters.
        consolegate-ws-view) echo "$1,$PID,vncview+ws://127.0.0.1:$PORT/?token=$VIEWTICKET" ;;
        consolegate-ws-rec) echo "$1,$PID,vnc+ws://127.0.0.1:$PORT/?token=$RECTICKET" ;;
        bare-relay|direct) echo "$1,$PID,tcp://127.0.0.1:$PORT" ;;
    esac
}

# probe_url NAME: the busy host's round-trip session through the running target to
# the backend's probe console.
probe_url() {
    case "$1" in
        consolegate-ws|websockify-ws) echo "ws://127.0.0.1:$PORT/?token=$PTICKET" ;;
        consolegate-wss|websockify-wss) echo "wss://127.0.0.1:$PORT/?token=$PTICKET" ;;
        bare-relay) echo "tcp://127.0.0.1:$RELAY_PROBE_PORT" ;;
    esac
}

TARGETS=()
for t in consolegate-ws websockify-ws consolegate-wss websockify-wss nginx-tls haproxy-tls bare-relay direct consolegate-ws-vencrypt consolegate-ws-view consolegate-ws-rec; do
    want "$t" || continue
    if [[ "$t" == websockify-* ]] && [ "$WEBSOCKIFY" = 0 ]; then
        log "skipping $t (no $VENV in smoke mode)"; continue
    fi
    if [ "$t" = nginx-tls ] && { ! command -v nginx >/dev/null || [ ! -f "$NGINX_MODULE" ]; }; then
        log "skipping $t (no nginx with its stream module)"; continue
    fi
    if [ "$t" = haproxy-tls ] && ! command -v haproxy >/dev/null; then
        log "skipping $t (no haproxy)"; continue
    fi
    TARGETS+=("$t")
done
[ "${#TARGETS[@]}" -gt 0 ] || die "no target selected"

# Phase 1: throughput, latency, connect rate; all targets up at once so that the
# repetitions can be interleaved.
TICKET="$(ticket)"
VTICKET=""
want consolegate-ws-vencrypt && VTICKET="$(ticket "$VENC_PORT" vencrypt)"
VIEWTICKET=""
RECTICKET=""
if want consolegate-ws-view; then
    VIEWTICKET="$("$CG" sign --key "$KEYS/bench.key" --host 127.0.0.1 --port "$RFB_PORT" --view --ttl 600s)"
fi
if want consolegate-ws-rec; then
    RECTICKET="$("$CG" sign --key "$KEYS/bench.key" --host 127.0.0.1 --port "$RFB_PORT" --ttl 600s)"
fi
SPECS=()
declare -A TPID
for t in "${TARGETS[@]}"; do
    start_target "$t"
    TPID[$t]=$PID
    SPECS+=(--target "$(spec "$t")")
done
log "phase 1: throughput, latency, connect rate (${TARGETS[*]})"
TP_ARGS=(throughput --ca "$TLS/ca.pem" --out "$OUT/throughput.json" "${SPECS[@]}")
[ "$SMOKE" = 1 ] && TP_ARGS+=(--smoke)
STATUS=0
timeout 480 "$B" "${TP_ARGS[@]}" || STATUS=$?
for t in "${TARGETS[@]}"; do
    if [ "${TPID[$t]}" != 0 ]; then stop "${TPID[$t]}"; fi
done

# Phase 2: memory per idle session, each proxy freshly started for each kind so that
# buffers kept from earlier runs do not hide the per-session cost.
if [ "$IDLE" = 1 ]; then
    if [ "$SMOKE" = 1 ]; then AT="20"; MAX=0; else AT="1000,$NBIG"; MAX=$MAXN; fi
    log "phase 2: idle sessions at $AT (ramp to $MAX; fd limit $NOFILE)"
    TICKET="$(ticket)"
    for t in "${TARGETS[@]}"; do
        # The proxies over plain ws://; the bare relay's memory is not a target, and
        # skipping it keeps the run under 10 minutes.
        case "$t" in consolegate-ws|websockify-ws) ;; *) continue ;; esac
        for kind in banner burst; do
            start_target "$t"
            m=0; [ "$kind" = banner ] && m=$MAX
            timeout 330 "$B" idle --target "$(spec "$t")" --ca "$TLS/ca.pem" --kind "$kind" \
                --at "$AT" --max "$m" --out "$OUT/idle-$t-$kind.json" || STATUS=1
            stop "$PID"
        done
    done
fi

# Phase 3: the busy host. Each proxy freshly started, N consoles all a little busy at
# once, then quiet; the bare relay and websockify under the same load.
if [ "$BUSY" = 1 ]; then
    if [ "$SMOKE" = 1 ]; then BN=20; BSECS=3; BAFTER=1; else BN=$BUSY_N; BSECS=20; BAFTER=30; fi
    log "phase 3: busy host, $BN sessions for $BSECS s, then $BAFTER s quiet"
    TICKET="$(ticket)"
    PTICKET="$("$CG" sign --key "$KEYS/bench.key" --host 127.0.0.1 --port "$PROBE_PORT" --ttl 600s)"
    for t in "${TARGETS[@]}"; do
        case "$t" in consolegate-ws|consolegate-wss|bare-relay|websockify-ws) ;; *) continue ;; esac
        start_target "$t"
        timeout $((BSECS * 3 + BAFTER + 200)) "$B" busy --target "$(spec "$t")" --probe "$(probe_url "$t")" \
            --ca "$TLS/ca.pem" --sessions "$BN" --secs "$BSECS" --after "$BAFTER" \
            --out "$OUT/busy-$t.json" || STATUS=1
        stop "$PID"
    done
fi

# Phase 4: time to first frame in Debian's chromium against QEMU's VNC (full runs only).
if [ "$FIRST_FRAME" = 1 ] && [ "$SMOKE" = 0 ]; then
    if command -v chromium >/dev/null && command -v qemu-system-x86_64 >/dev/null \
        && [ -d "$ROOT/tests/e2e/node_modules/playwright-core" ] && [ -d "$ROOT/web/node_modules/@novnc/novnc" ]; then
        log "phase 4: first frame in chromium (20 loads per path)"
        FF_ARGS=(--out "$OUT/first-frame.json" --bin "$CG" --tls-dir "$TLS" --loads 20)
        [ "$WEBSOCKIFY" = 1 ] && FF_ARGS+=(--websockify "$VENV/bin/websockify")
        timeout 600 node "$BENCH/first-frame.mjs" "${FF_ARGS[@]}" > "$OUT/first-frame.log" 2>&1 \
            || { log "first-frame step failed: $(tail -3 "$OUT/first-frame.log")"; STATUS=1; }
    else
        log "skipping the first-frame step (needs chromium, QEMU, tests/e2e and web node_modules)"
    fi
fi

VENC_NOTE=()
want consolegate-ws-vencrypt && VENC_NOTE=(--note "cg ws + VeNCrypt: consolegate over ws:// to a second backend that is a TLS-enabled console server (RFB VeNCrypt X509None, TLS 1.3, as QEMU with tls-creds); the generator does noVNC's RFB security-None steps first; the backend's TLS runs on its one thread, on the same 2 cores; VeNCrypt ÷ ws compares it with plain consolegate ws")
VIEW_NOTE=()
if want consolegate-ws-view || want consolegate-ws-rec; then
    VIEW_NOTE=(--note "cg ws VNC view-only / recorded: consolegate over ws:// to a third backend that is a VNC server first (RFB 3.8, security None, ClientInit; commands as RFB SetEncodings); view-only: a view ticket, uploads in 32-byte units of an update request (forwarded) and a key press, pointer move and key release (dropped), the figure counting what the browser sent and the backend checking count and CRC of what must pass; recorded: every session recorded (policy all) to $RECORDINGS on the machine's disk, pruned beyond 4 GiB, with a 2 GiB queue (with the default 16 MiB, bulk transfers are ended as the writer falls behind); both compared with plain consolegate ws")
fi
WSFY_NOTE="no websockify"
[ "$WEBSOCKIFY" = 1 ] && WSFY_NOTE="websockify 0.13.0 (Python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo '?'), numpy $("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)' 2>/dev/null || echo '-')), JWTTokenApi with the Ed25519 SPKI PEM"
"$B" report --dir "$OUT" \
    --note "consolegate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') release build; $WSFY_NOTE" \
    --note "load average (1/5/15 min) at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg): the machine is shared, figures are noisy" \
    --note "generator: one thread, own WebSocket framing; backend: one thread; bare relay: tokio copy_bidirectional, 64 KiB buffers, 2 workers" \
    --note "TLS relays: nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') stream (2 workers) and HAProxy $(haproxy -v 2>/dev/null | head -1 | awk '{print $3}') (nbthread 2), both on OpenSSL, TLS 1.3 suites in the generator's (a browser's) order, relaying straight to the backend" \
    --note "open-file limit $NOFILE per process (the proxy needs 2 per session): idle checkpoints ${AT:-}, ramp capped at ${MAX:-0}" \
    "${VENC_NOTE[@]}" \
    "${VIEW_NOTE[@]}" \
    --note "whole run $((SECONDS - T0)) s" || STATUS=1

cp "$OUT/report.md" "$BENCH/results/$DATE.md" 2>/dev/null || true
cp "$OUT/chart.svg" "$BENCH/results/$DATE.svg" 2>/dev/null || true
if [ "$SMOKE" = 0 ] && [ "$ALL_TARGETS" = 1 ] && [ "$STATUS" = 0 ]; then
    cp "$OUT/report.md" "$BENCH/latest.md"
    cp "$OUT/chart.svg" "$BENCH/latest.svg"
fi
log "results in $OUT (status $STATUS)"
exit "$STATUS"
