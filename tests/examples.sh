#!/usr/bin/env bash
# The ticket-signing examples in examples/ (Python, Node.js, Go) against the proxy's
# own verifier: for each language whose toolchain is here, sign a ticket with the
# example and check that `consolegate verify` accepts it with the right key id and
# claims, and refuses it against another engine's key. Each language runs in its
# own temporary directory with a throwaway key pair.
#
#   bash tests/examples.sh [PATH/TO/consolegate]     (default target/debug/consolegate)
#
# Last line: "examples: N passed, M failed". Languages without a toolchain are
# reported as skipped and do not fail the run.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${1:-target/debug/consolegate}
[[ "$bin" = /* ]] || bin="$root/$bin"

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1"; [ -n "${2:-}" ] && sed 's/^/      /' <<<"$2"; }
skip() { echo "skip  $1"; }

if [ ! -x "$bin" ]; then
    fail "the consolegate binary exists at $bin (cargo build)"
    echo "examples: $passed passed, $failed failed"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check_language NAME DIR SIGN-COMMAND...: SIGN-COMMAND gets KEY HOST PORT --sub USER
# appended (Go's flags come first, so it gets its own wrapper below).
check_language() {
    local name=$1 dir=$2
    shift 2
    local kid out ticket
    kid=$("$bin" keygen --json --out-dir "$dir" --name engine 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["kid"])')
    "$bin" keygen --out-dir "$dir" --name other >/dev/null 2>&1
    if ! ticket=$("$@" "$dir/engine.key" 127.0.0.1 5901 alice 2>&1); then
        fail "$name: the example signs a ticket" "$ticket"
        return
    fi
    if out=$("$bin" verify --trust "$dir/engine.pub" "$ticket" 2>&1); then
        pass "$name: consolegate verify accepts the example's ticket"
    else
        fail "$name: consolegate verify accepts the example's ticket" "$out"
        return
    fi
    if python3 - "$kid" "$out" <<'PY'
import json, sys
kid, out = sys.argv[1], json.loads(sys.argv[2])
c = out["claims"]
assert out.get("kid") == kid, f"kid {out.get('kid')!r}, keygen said {kid!r}"
assert (c["host"], c["port"], c["sub"]) == ("127.0.0.1", 5901, "alice"), c
assert 0 < c["exp"] - c["iat"] <= 600 and c.get("jti"), c
PY
    then
        pass "$name: the ticket names the RFC 7638 key id, host, port, sub, exp and jti"
    else
        fail "$name: the ticket names the RFC 7638 key id, host, port, sub, exp and jti" "$out"
    fi
    if out=$("$bin" verify --trust "$dir/other.pub" "$ticket" 2>&1); then
        fail "$name: another engine's key does not verify the ticket" "$out"
    else
        pass "$name: another engine's key does not verify the ticket"
    fi
}

# --- Python (PyJWT) --------------------------------------------------------------
py_sign() { python3 "$root/examples/python/sign.py" "$1" "$2" "$3" --sub "$4"; }
if command -v python3 >/dev/null && python3 -c 'import jwt, cryptography' 2>/dev/null; then
    mkdir "$tmp/python" && check_language "python (PyJWT)" "$tmp/python" py_sign
else
    skip "python: PyJWT with cryptography is not installed (pip install 'PyJWT[crypto]')"
fi

# --- Node.js (jose) ----------------------------------------------------------------
node_sign() { node "$root/examples/node/sign.mjs" "$1" "$2" "$3" --sub "$4"; }
if command -v node >/dev/null; then
    if [ ! -d examples/node/node_modules/jose ] && command -v npm >/dev/null; then
        (cd examples/node && npm ci --no-audit --no-fund --silent) || true
    fi
    if [ -d examples/node/node_modules/jose ]; then
        mkdir "$tmp/node" && check_language "node (jose)" "$tmp/node" node_sign
    else
        fail "node: jose is installed in examples/node (npm ci)"
    fi
else
    skip "node: not installed"
fi

# --- Go (golang-jwt) ---------------------------------------------------------------
# Built in a copy of examples/go. Offline machines use Debian's packaged source of the
# same module version (golang-github-golang-jwt-jwt-v5-dev) through a replace directive.
go_sign() { "$tmp/go/sign" -sub "$4" "$1" "$2" "$3"; }
if command -v go >/dev/null; then
    mkdir "$tmp/go"
    cp examples/go/sign.go examples/go/go.mod "$tmp/go/"
    [ -f examples/go/go.sum ] && cp examples/go/go.sum "$tmp/go/"
    debian_src=/usr/share/gocode/src/github.com/golang-jwt/jwt/v5
    if [ -f "$debian_src/go.mod" ]; then
        (cd "$tmp/go" && go mod edit -replace "github.com/golang-jwt/jwt/v5=$debian_src")
        export GOPROXY=off GOFLAGS=-mod=mod
    fi
    if out=$(cd "$tmp/go" && go mod tidy 2>&1 && go build -o sign . 2>&1); then
        check_language "go (golang-jwt)" "$tmp/go" go_sign
    else
        fail "go: the example builds" "$out"
    fi
else
    skip "go: not installed (apt-get install golang-go golang-github-golang-jwt-jwt-v5-dev)"
fi

echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
