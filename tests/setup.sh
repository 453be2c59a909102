#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent and quick
# when everything is present; the test runner calls it first, so a clean clone works.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v socat >/dev/null || need_apt+=(socat)
command -v bc >/dev/null || need_apt+=(bc)
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v go >/dev/null || need_apt+=(golang-go)
[ -f /usr/share/gocode/src/github.com/golang-jwt/jwt/v5/go.mod ] || need_apt+=(golang-github-golang-jwt-jwt-v5-dev)
[ -f /usr/lib/x86_64-linux-gnu/qemu/ui-spice-core.so ] || need_apt+=(qemu-system-modules-spice)

if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # QEMU 10 lives in bookworm-backports; add that suite from the machine's own mirror.
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    key=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
      "$uri" "$key" > /etc/apt/sources.list.d/backports.sources
  fi
  apt-get update -qq
  pkgs=()
  for p in "${need_apt[@]}"; do
    case "$p" in
      qemu-system-x86) apt-get install -y -qq -t bookworm-backports "$p" >/dev/null ;;
      qemu-system-modules-spice|golang-github-golang-jwt-jwt-v5-dev)
        apt-get install -y -qq --no-install-recommends -t bookworm-backports "$p" >/dev/null ;;
      *) pkgs+=("$p") ;;
    esac
  done
  [ ${#pkgs[@]} -gt 0 ] && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # nginx and haproxy are started by the tests themselves on loopback ports.
  systemctl disable --now nginx haproxy >/dev/null 2>&1 || true
fi

# Python packages for the interoperability checks (other engines' JWT libraries).
python3 -c 'import jwt, jwcrypto, cryptography' 2>/dev/null \
  || python3 -m pip install -q 'PyJWT[crypto]==2.10.1' 'jwcrypto==1.5.6' cryptography

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet

# Node packages: noVNC, spice-html5 and xterm.js for the console page, playwright-core to drive Debian's chromium.
if [ -f web/package-lock.json ] && { [ ! -d web/node_modules/@novnc/novnc ] \
    || [ ! -d web/node_modules/@spice-project/spice-html5 ] || [ ! -d web/node_modules/@xterm/xterm ] \
    || [ ! -d web/node_modules/@xterm/addon-fit ]; }; then
  (cd web && npm ci --no-audit --no-fund --silent)
fi
if [ -f tests/e2e/package-lock.json ] && [ ! -d tests/e2e/node_modules/playwright-core ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --silent)
fi
if [ -f examples/node/package-lock.json ] && [ ! -d examples/node/node_modules/jose ]; then
  (cd examples/node && npm ci --no-audit --no-fund --silent)
fi
