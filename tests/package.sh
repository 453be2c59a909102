#!/usr/bin/env bash
# Builds the Debian package, installs it on this machine, checks what an operator
# relies on (binary, conffile, user, directory modes, the packaged config with a
# throwaway key and certificate, the systemd unit, the served page), then purges it
# and checks that nothing is left. The package is purged on every exit, also after a
# failure. Needs root. Last line: "package: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1"; [ -n "${2:-}" ] && sed 's/^/      /' <<<"$2"; }
# check NAME CMD...: runs CMD, passes when it exits 0, shows its output when not.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}
finish() {
    echo "package: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

if [ "$(id -u)" -ne 0 ]; then
    fail "runs as root (it installs and purges a package)"
    finish
fi
if dpkg-query -W -f='${Status}' consolegate 2>/dev/null | grep -q 'installed'; then
    fail "consolegate is not installed before the test (the test would purge an operator's install)"
    finish
fi

tmp=$(mktemp -d)
server_pid=
# Files this test adds under /etc/consolegate; removed before the purge.
test_files=(/etc/consolegate/keys/test-engine.pub /etc/consolegate/tls/cert.pem /etc/consolegate/tls/key.pem)
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -f "${test_files[@]}"
    dpkg-statoverride --remove /etc/consolegate/keys >/dev/null 2>&1
    if dpkg-query -W -f='${Status}' consolegate 2>/dev/null | grep -q 'installed\|config-files'; then
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq consolegate >/dev/null 2>&1 \
            || dpkg --purge consolegate >/dev/null 2>&1
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- Build and install ---------------------------------------------------------
if ! deb=$(bash packaging/build-deb.sh 2>"$tmp/build.log" | tail -1) || [ ! -f "$deb" ]; then
    fail "packaging/build-deb.sh builds the .deb" "$(tail -20 "$tmp/build.log")"
    finish
fi
pass "packaging/build-deb.sh builds $deb"

# libgcc-s1 (required priority, always present) is left out by cargo-deb; accept it.
check "the package depends on libc and adduser only" \
    bash -c 'deps=$(dpkg-deb -f "$0" Depends | tr -d " " | tr , "\n" | sed "s/(.*//" | grep -vx libgcc-s1 | sort | tr "\n" " ")
             [ "$deps" = "adduser libc6 " ] || { dpkg-deb -f "$0" Depends; false; }' "$deb"
check "the binary in the package is stripped" \
    bash -c 'dpkg-deb --fsys-tarfile "$0" | tar -xO ./usr/bin/consolegate > "$1/bin" && ! readelf -S "$1/bin" | grep -q "\.debug_info"' "$deb" "$tmp"

if ! out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$PWD/$deb" 2>&1); then
    fail "apt-get installs the package" "$out"
    finish
fi
pass "apt-get installs the package"

# --- What the package put on the machine ---------------------------------------
check "consolegate is on PATH at /usr/bin" test "$(command -v consolegate)" = /usr/bin/consolegate
version=$(dpkg-query -W -f='${Version}' consolegate)
check "consolegate --version names the packaged version ($version)" \
    bash -c 'v=$(consolegate --version) && [[ "$0" == "${v#consolegate }"* ]] || { echo "$v"; false; }' "$version"

conffiles=$(dpkg-query -W -f='${Conffiles}' consolegate)
check "/etc/consolegate/consolegate.toml is a conffile" grep -q '^ /etc/consolegate/consolegate.toml ' <<<"$conffiles"
check "/etc/consolegate/keys/README is a conffile" grep -q '^ /etc/consolegate/keys/README ' <<<"$conffiles"

check "the consolegate system user exists, no login shell" \
    bash -c 'IFS=: read -r _ _ uid _ _ _ shell < <(getent passwd consolegate) && [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ]'
check "the consolegate group exists" getent group consolegate
for dir in /etc/consolegate/keys /etc/consolegate/tls; do
    check "$dir is root:consolegate 0750" test "$(stat -c '%U:%G %a' "$dir")" = "root:consolegate 750"
done
check "other users cannot list /etc/consolegate/keys" \
    bash -c '! runuser -u nobody -- ls /etc/consolegate/keys'

check "the console page is in /usr/share/consolegate/web" test -f /usr/share/consolegate/web/console.html
novnc_dir=$(sed -n 's/^novnc_dir *= *"\(.*\)"/\1/p' /etc/consolegate/consolegate.toml)
if [ -f /usr/share/consolegate/novnc/core/rfb.js ]; then
    check "the packaged config's novnc_dir ($novnc_dir) holds the bundled noVNC" test -f "$novnc_dir/core/rfb.js"
else
    echo "note  noVNC was not bundled (web/node_modules missing at build time)"
fi
check "the packaged config's web dir exists" \
    test -d "$(sed -n 's/^dir *= *"\(.*\)"/\1/p' /etc/consolegate/consolegate.toml)"

unit=/lib/systemd/system/consolegate.service
check "the systemd unit is installed at $unit" test -f "$unit"
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify accepts the unit" systemd-analyze verify "$unit"
    score=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    check "systemd-analyze security exposure is at most 2.0 (is ${score:-?})" \
        awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
else
    echo "note  systemd-analyze missing: unit not verified (apt-get install systemd)"
fi

# --- The packaged config with a throwaway engine key and certificate -----------
consolegate keygen --out-dir "$tmp" --name test-engine >/dev/null 2>&1
install -m 0644 "$tmp/test-engine.pub" /etc/consolegate/keys/test-engine.pub
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 1 -nodes -subj /CN=localhost \
    -keyout /etc/consolegate/tls/key.pem -out /etc/consolegate/tls/cert.pem 2>/dev/null
chown root:consolegate /etc/consolegate/tls/key.pem /etc/consolegate/tls/cert.pem
chmod 0640 /etc/consolegate/tls/key.pem /etc/consolegate/tls/cert.pem
check "the consolegate user accepts the packaged config (--check-config)" \
    runuser -u consolegate -- consolegate serve --config /etc/consolegate/consolegate.toml --check-config

ticket=$(consolegate sign --key "$tmp/test-engine.key" --host 127.0.0.1 --port 5901)
check "a ticket signed with the engine key verifies against /etc/consolegate/keys" \
    consolegate verify --trust /etc/consolegate/keys "$ticket"

# Run the packaged config as the service user (on a free loopback port instead of
# 0.0.0.0:6100) and fetch the page and noVNC through it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
runuser -u consolegate -- consolegate serve --config /etc/consolegate/consolegate.toml \
    --listen "127.0.0.1:$port" >"$tmp/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    curl -ks -o /dev/null "https://127.0.0.1:$port/" && break
    sleep 0.1
done
check "the installed proxy serves the console page over TLS" \
    curl -ksf -o /dev/null "https://127.0.0.1:$port/console.html"
if [ -f /usr/share/consolegate/novnc/core/rfb.js ]; then
    check "the installed proxy serves noVNC at /novnc/" \
        curl -ksf -o /dev/null "https://127.0.0.1:$port/novnc/core/rfb.js"
fi
if [ -f /usr/share/consolegate/spice/main.js ]; then
    check "the installed proxy serves spice-html5 at /spice/" \
        curl -ksf -o /dev/null "https://127.0.0.1:$port/spice/main.js"
fi
if [ -f /usr/share/consolegate/xterm/xterm/lib/xterm.mjs ]; then
    check "the installed proxy serves xterm.js at /xterm/" \
        curl -ksf -o /dev/null "https://127.0.0.1:$port/xterm/xterm/lib/xterm.mjs"
    check "the installed proxy serves xterm.js's fit add-on" \
        curl -ksf -o /dev/null "https://127.0.0.1:$port/xterm/addon-fit/lib/addon-fit.mjs"
fi
kill "$server_pid" 2>/dev/null
wait "$server_pid" 2>/dev/null
server_pid=

# --- Reinstall (upgrade path) keeps the operator's edits -----------------------
echo "# edited by the operator" >>/etc/consolegate/consolegate.toml
chmod 0755 /etc/consolegate/keys
dpkg-statoverride --add root consolegate 0755 /etc/consolegate/keys
if out=$(DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb" 2>&1); then
    check "reinstalling keeps the operator's edited config" grep -q '^# edited by the operator' /etc/consolegate/consolegate.toml
    check "reinstalling honours a dpkg-statoverride on the keys dir" \
        test "$(stat -c '%a' /etc/consolegate/keys)" = 755
else
    fail "dpkg -i reinstalls the package" "$out"
fi
dpkg-statoverride --remove /etc/consolegate/keys
sed -i '/^# edited by the operator$/d' /etc/consolegate/consolegate.toml

# --- Purge leaves nothing behind ------------------------------------------------
rm -f "${test_files[@]}"
if out=$(DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq consolegate 2>&1); then
    pass "apt-get purge removes the package"
else
    fail "apt-get purge removes the package" "$out"
fi
check "the package is gone from dpkg's database" \
    bash -c '! dpkg-query -W -f="\${Status}" consolegate 2>/dev/null | grep -q "installed\|config-files"'
for path in /etc/consolegate /usr/share/consolegate /usr/bin/consolegate "$unit" /usr/share/doc/consolegate; do
    check "purge removed $path" test ! -e "$path"
done
check "purge removed the consolegate user" bash -c '! getent passwd consolegate'
check "purge removed the consolegate group" bash -c '! getent group consolegate'

# --- Purge keeps what the operator added (and the user that owns it) -----------
if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$PWD/$deb" >/dev/null 2>&1; then
    install -m 0644 -g consolegate "$tmp/test-engine.pub" /etc/consolegate/keys/test-engine.pub
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq consolegate >/dev/null 2>&1
    check "purge keeps a key the operator added" test -f /etc/consolegate/keys/test-engine.pub
    check "purge keeps the user and group while their files remain" \
        bash -c 'getent passwd consolegate && getent group consolegate'
    check "purge removed the package's own files next to it" \
        test ! -e /etc/consolegate/keys/README -a ! -e /etc/consolegate/consolegate.toml -a ! -e /etc/consolegate/tls
    rm -rf /etc/consolegate
    deluser --system --quiet consolegate >/dev/null 2>&1
    delgroup --system --quiet consolegate >/dev/null 2>&1
    check "the manual clean-up the README describes leaves nothing" \
        bash -c '! getent passwd consolegate && ! getent group consolegate'
else
    fail "apt-get installs the package a second time"
fi

finish
