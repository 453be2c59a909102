#!/usr/bin/env python3
"""Interoperability of consolegate tickets with other engines' JWT libraries.

Usage: tests/interop.py PATH/TO/consolegate

Engines that sign tickets are written in Python, Java and Go, so the ticket format
is only a contract if third-party libraries and consolegate agree both ways. This
checks PyJWT 2.10 and jwcrypto against `consolegate sign` and `consolegate verify`,
with keys from `consolegate keygen`, from `cryptography`, and from the openssl CLI.
Each check runs in its own temporary directory and prints `ok - name` or
`FAIL - name: detail`; the last line is `interop: N passed, M failed`.

`pyjwt_ticket(key_pem_path, claims)` is meant for reuse by other tests (the proxy's
end-to-end tests) that need a ticket signed the way a Python engine would sign it.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc7638_kid(public_key) -> str:
    """The RFC 7638 thumbprint of an Ed25519 public key, computed by hand."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def pyjwt_ticket(key_pem_path, claims, with_kid=True, headers=None):
    """A ticket signed by PyJWT with the PKCS#8 PEM private key at key_pem_path.

    With with_kid (the default) the header carries the RFC 7638 key id, as the
    contract asks; extra header members can be given in headers.
    """
    with open(key_pem_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    hdr = dict(headers or {})
    if with_kid:
        hdr["kid"] = rfc7638_kid(key.public_key())
    return jwt.encode(claims, key, algorithm="EdDSA", headers=hdr or None)


def write_keypair(directory, name="py"):
    """An Ed25519 key pair made by `cryptography`: NAME.key (0600) and NAME.pub."""
    key = Ed25519PrivateKey.generate()
    key_path = os.path.join(directory, name + ".key")
    pub_path = os.path.join(directory, name + ".pub")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(pub_path, "wb") as f:
        f.write(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return key, key_path, pub_path


def openssl_keypair(directory, name="ossl"):
    key_path = os.path.join(directory, name + ".key")
    pub_path = os.path.join(directory, name + ".pub")
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", key_path],
        check=True,
        capture_output=True,
    )
    os.chmod(key_path, 0o600)
    subprocess.run(
        ["openssl", "pkey", "-in", key_path, "-pubout", "-out", pub_path],
        check=True,
        capture_output=True,
    )
    return key_path, pub_path


def console_claims(**extra):
    now = int(time.time())
    claims = {"host": "10.0.0.5", "port": 5900, "exp": now + 60, "iat": now}
    claims.update(extra)
    return claims


class Failed(Exception):
    pass


def expect(condition, detail):
    if not condition:
        raise Failed(detail)


class Interop:
    def __init__(self, binary):
        self.binary = binary
        self.passed = 0
        self.failed = 0

    def run(self, *args, stdin=None):
        return subprocess.run(
            [self.binary, *args], input=stdin, capture_output=True, text=True, timeout=60
        )

    def verify(self, trust, ticket, *extra):
        # The ticket alone: verify would apply a proxy's policy too (these tickets name
        # 10.0.0.5:5900, and view and rec tickets ask for what a bare proxy cannot do).
        return self.run("verify", "--ticket-only", "--trust", trust, *extra, ticket)

    def accepted(self, trust, ticket, *extra):
        out = self.verify(trust, ticket, *extra)
        expect(out.returncode == 0, f"verify exit {out.returncode}: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def sign_json(self, key, *extra):
        out = self.run("sign", "--key", key, "--host", "10.0.0.5", "--port", "5900", "--json", *extra)
        expect(out.returncode == 0, f"sign exit {out.returncode}: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def check(self, name, fn):
        with tempfile.TemporaryDirectory(prefix="consolegate-interop-") as tmp:
            try:
                fn(tmp)
            except Failed as e:
                self.failed += 1
                print(f"FAIL - {name}: {e}")
            except Exception as e:  # a crash in a check is a failure, not the end of the run
                self.failed += 1
                detail = traceback.format_exception_only(type(e), e)[-1].strip()
                print(f"FAIL - {name}: {detail}")
            else:
                self.passed += 1
                print(f"ok - {name}")

    # The checks.

    def pyjwt_ticket_with_kid_is_accepted(self, tmp):
        key, key_path, pub_path = write_keypair(tmp)
        claims = console_claims(sub="alice", jti="py-1", aud="proxy-a", kind="spice")
        ticket = pyjwt_ticket(key_path, claims)
        out = self.accepted(pub_path, ticket, "--aud", "proxy-a")
        expect(out["kid"] == rfc7638_kid(key.public_key()), f"kid {out['kid']}")
        for name in ("host", "port", "exp", "sub", "jti", "aud", "kind"):
            expect(out["claims"].get(name) == claims[name], f"claim {name}: {out['claims']}")

    def pyjwt_ticket_without_kid_is_accepted(self, tmp):
        key, key_path, _ = write_keypair(tmp, "a")
        write_keypair(tmp, "b")  # another trusted key, tried first (sorted)
        ticket = pyjwt_ticket(key_path, console_claims(), with_kid=False)
        expect("kid" not in jwt.get_unverified_header(ticket), "PyJWT added a kid")
        out = self.accepted(tmp, ticket)
        expect(out["kid"] == rfc7638_kid(key.public_key()), f"kid {out['kid']}")

    def consolegate_ticket_verifies_in_pyjwt(self, tmp):
        self.run("keygen", "--out-dir", tmp, "--name", "cg").check_returncode()
        signed = self.sign_json(
            os.path.join(tmp, "cg.key"), "--aud", "proxy-a", "--sub", "alice", "--kind", "spice",
            "--tls", "vencrypt",
        )
        with open(os.path.join(tmp, "cg.pub"), "rb") as f:
            public = serialization.load_pem_public_key(f.read())
        claims = jwt.decode(signed["ticket"], public, algorithms=["EdDSA"], audience="proxy-a")
        expect(claims["host"] == "10.0.0.5" and claims["port"] == 5900, f"claims {claims}")
        expect(claims["sub"] == "alice" and claims["kind"] == "spice", f"claims {claims}")
        expect(claims["tls"] == "vencrypt" and claims["jti"] == signed["jti"], f"claims {claims}")
        expect(claims["exp"] == signed["exp"] and claims["iat"] <= claims["exp"], f"claims {claims}")
        header = jwt.get_unverified_header(signed["ticket"])
        want = {"alg": "EdDSA", "typ": "JWT", "kid": rfc7638_kid(public)}
        expect(header == want, f"header {header}")
        expect(signed["kid"] == want["kid"], f"--json kid {signed['kid']}")

    def consolegate_ticket_verifies_in_jwcrypto(self, tmp):
        self.run("keygen", "--out-dir", tmp, "--name", "cg").check_returncode()
        signed = self.sign_json(os.path.join(tmp, "cg.key"), "--sub", "bob", "--aud", "p1", "--aud", "p2")
        with open(os.path.join(tmp, "cg.pub"), "rb") as f:
            key = jwcrypto_jwk.JWK.from_pem(f.read())
        expect(key.thumbprint() == signed["kid"], f"jwcrypto thumbprint {key.thumbprint()}")
        token = jwcrypto_jwt.JWT(jwt=signed["ticket"], key=key, algs=["EdDSA"])
        claims = json.loads(token.claims)
        expect(claims["host"] == "10.0.0.5" and claims["sub"] == "bob", f"claims {claims}")
        expect(claims["aud"] == ["p1", "p2"], f"aud {claims['aud']}")

    def openssl_keys_work_both_ways(self, tmp):
        key_path, pub_path = openssl_keypair(tmp)
        signed = self.sign_json(key_path)
        with open(pub_path, "rb") as f:
            public = serialization.load_pem_public_key(f.read())
        claims = jwt.decode(signed["ticket"], public, algorithms=["EdDSA"])
        expect(claims["port"] == 5900, f"claims {claims}")
        ticket = pyjwt_ticket(key_path, console_claims())
        out = self.accepted(pub_path, ticket)
        expect(out["kid"] == signed["kid"], f"kid {out['kid']} vs {signed['kid']}")

    def keygen_keys_load_in_cryptography_and_pyjwt(self, tmp):
        out = self.run("keygen", "--json", "--out-dir", tmp, "--name", "cg")
        expect(out.returncode == 0, out.stderr.strip())
        kid = json.loads(out.stdout)["kid"]
        with open(os.path.join(tmp, "cg.key"), "rb") as f:
            private = serialization.load_pem_private_key(f.read(), password=None)
        with open(os.path.join(tmp, "cg.pub"), "rb") as f:
            public = serialization.load_pem_public_key(f.read())
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        expect(private.public_key().public_bytes(*raw) == public.public_bytes(*raw), "key pair mismatch")
        expect(kid == rfc7638_kid(public), f"keygen printed {kid!r}")
        ticket = pyjwt_ticket(os.path.join(tmp, "cg.key"), console_claims())
        expect(self.accepted(os.path.join(tmp, "cg.pub"), ticket)["kid"] == kid, "kid")
        mode = os.stat(os.path.join(tmp, "cg.key")).st_mode & 0o777
        expect(mode == 0o600, f"key mode {mode:o}")

    def keygen_refuses_to_overwrite(self, tmp):
        self.run("keygen", "--out-dir", tmp, "--name", "cg").check_returncode()
        with open(os.path.join(tmp, "cg.key"), "rb") as f:
            before = f.read()
        out = self.run("keygen", "--out-dir", tmp, "--name", "cg")
        expect(out.returncode != 0, "second keygen succeeded")
        expect("exists" in out.stderr, f"stderr {out.stderr.strip()}")
        with open(os.path.join(tmp, "cg.key"), "rb") as f:
            expect(f.read() == before, "key overwritten")

    def world_readable_key_is_refused_by_sign(self, tmp):
        self.run("keygen", "--out-dir", tmp, "--name", "cg").check_returncode()
        key = os.path.join(tmp, "cg.key")
        os.chmod(key, 0o644)
        out = self.run("sign", "--key", key, "--host", "10.0.0.5", "--port", "5900")
        expect(out.returncode == 2, f"exit {out.returncode}")
        expect("chmod 600" in out.stderr, f"stderr {out.stderr.strip()}")
        expect(out.stdout == "", "printed a ticket")

    def expired_pyjwt_ticket_is_refused(self, tmp):
        _, key_path, pub_path = write_keypair(tmp)
        ticket = pyjwt_ticket(key_path, console_claims(exp=int(time.time()) - 3600))
        out = self.verify(pub_path, ticket)
        expect(out.returncode == 1, f"exit {out.returncode}")
        expect("expired" in out.stderr, f"stderr {out.stderr.strip()}")
        expect(ticket not in out.stderr + out.stdout, "the ticket was echoed")

    def pyjwt_hs256_with_the_public_key_is_refused(self, tmp):
        _, _, pub_path = write_keypair(tmp)
        with open(pub_path, "rb") as f:
            secret = f.read()
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64url(json.dumps(console_claims()).encode())
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        out = self.verify(pub_path, f"{header}.{body}.{b64url(mac)}")
        expect(out.returncode == 1 and "(bad_alg)" in out.stderr, f"{out.returncode} {out.stderr.strip()}")

    def pyjwt_ticket_with_view_and_rec_is_accepted(self, tmp):
        _, key_path, pub_path = write_keypair(tmp)
        ticket = pyjwt_ticket(key_path, console_claims(view=True, rec=True))
        out = self.accepted(pub_path, ticket)
        expect(out["claims"].get("view") is True, f"view: {out['claims']}")
        expect(out["claims"].get("rec") is True, f"rec: {out['claims']}")
        # A Python engine writing False gets the default, and a string is refused.
        out = self.accepted(pub_path, pyjwt_ticket(key_path, console_claims(view=False)))
        expect("view" not in out["claims"] and "rec" not in out["claims"], f"claims {out['claims']}")
        out = self.verify(pub_path, pyjwt_ticket(key_path, console_claims(view="true")))
        expect(out.returncode == 1 and "(bad_claim_type)" in out.stderr, f"{out.returncode} {out.stderr.strip()}")
        expect("claim view must be true or false" in out.stderr, f"stderr {out.stderr.strip()}")

    def consolegate_view_and_rec_tickets_verify_in_pyjwt(self, tmp):
        self.run("keygen", "--out-dir", tmp, "--name", "cg").check_returncode()
        with open(os.path.join(tmp, "cg.pub"), "rb") as f:
            public = serialization.load_pem_public_key(f.read())
        key = os.path.join(tmp, "cg.key")
        both = jwt.decode(self.sign_json(key, "--view", "--rec")["ticket"], public, algorithms=["EdDSA"])
        expect(both.get("view") is True and both.get("rec") is True, f"claims {both}")
        view = jwt.decode(self.sign_json(key, "--view")["ticket"], public, algorithms=["EdDSA"])
        expect(view.get("view") is True and "rec" not in view, f"claims {view}")
        plain = jwt.decode(self.sign_json(key)["ticket"], public, algorithms=["EdDSA"])
        expect("view" not in plain and "rec" not in plain, f"claims {plain}")

    def pyjwt_ticket_with_typ_at_jwt_is_refused(self, tmp):
        """An OAuth access token (RFC 9068 `typ: at+jwt`) signed by the engine's key is
        not a console ticket, even with console claims in it."""
        _, key_path, pub_path = write_keypair(tmp)
        ticket = pyjwt_ticket(key_path, console_claims(), headers={"typ": "at+jwt"})
        typ = jwt.get_unverified_header(ticket).get("typ")
        expect(typ == "at+jwt", f"PyJWT wrote typ {typ!r}")
        out = self.verify(pub_path, ticket)
        expect(out.returncode == 1 and "(bad_typ)" in out.stderr, f"{out.returncode} {out.stderr.strip()}")
        # The same claims under typ JWT (PyJWT's default) are accepted.
        self.accepted(pub_path, pyjwt_ticket(key_path, console_claims()))

    def jwcrypto_tickets_with_view_and_rec_pass_and_with_typ_jose_fail(self, tmp):
        _, key_path, pub_path = write_keypair(tmp)
        with open(key_path, "rb") as f:
            key = jwcrypto_jwk.JWK.from_pem(f.read())

        def signed(header):
            token = jwcrypto_jwt.JWT(header=header, claims=console_claims(view=True, rec=False))
            token.make_signed_token(key)
            return token.serialize()

        out = self.accepted(pub_path, signed({"alg": "EdDSA", "kid": key.thumbprint()}))
        expect(out["claims"].get("view") is True and "rec" not in out["claims"], f"claims {out['claims']}")
        out = self.verify(pub_path, signed({"alg": "EdDSA", "typ": "JOSE", "kid": key.thumbprint()}))
        expect(out.returncode == 1 and "(bad_typ)" in out.stderr, f"{out.returncode} {out.stderr.strip()}")

    def verify_reads_the_ticket_from_stdin(self, tmp):
        _, key_path, pub_path = write_keypair(tmp)
        ticket = pyjwt_ticket(key_path, console_claims())
        out = self.run("verify", "--trust", pub_path, "--allow-target", "10.0.0.0/8", "-", stdin=ticket + "\n")
        expect(out.returncode == 0, f"exit {out.returncode}: {out.stderr.strip()}")
        expect(json.loads(out.stdout)["claims"]["host"] == "10.0.0.5", f"stdout {out.stdout!r}")

    def pyjwt_ticket_opens_a_session_through_the_proxy(self, tmp):
        """The proxy itself, not just `verify`, accepts a Python engine's ticket: a raw
        WebSocket handshake gets 101 and the console server's first bytes arrive."""
        import socket
        import threading

        _, key_path, pub_path = write_keypair(tmp)
        console = socket.socket()
        console.bind(("127.0.0.1", 0))
        console.listen(1)
        console_port = console.getsockname()[1]

        def serve_banner():
            conn, _ = console.accept()
            conn.sendall(b"RFB 003.008\n")
            conn.recv(1)
            conn.close()

        threading.Thread(target=serve_banner, daemon=True).start()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        proxy_port = probe.getsockname()[1]
        probe.close()
        proxy = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{proxy_port}", "--admin-listen", "off", "--allow-plain",
             "--trust", pub_path, "--allow-port", str(console_port), "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 20
            while True:
                try:
                    client = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
                    break
                except OSError:
                    expect(time.time() < deadline, "the proxy did not start listening")
                    time.sleep(0.05)
            ticket = pyjwt_ticket(key_path, console_claims(host="127.0.0.1", port=console_port))
            key = base64.b64encode(os.urandom(16)).decode()
            client.sendall(
                (f"GET /{ticket} HTTP/1.1\r\nHost: 127.0.0.1:{proxy_port}\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
            )
            data = b""
            while b"RFB 003.008" not in data and len(data) < 4096:
                chunk = client.recv(4096)
                if not chunk:
                    break
                data += chunk
            expect(data.startswith(b"HTTP/1.1 101"), f"answer {data[:80]!r}")
            expect(b"RFB 003.008\n" in data, f"no banner in {data[-40:]!r}")
            client.close()
        finally:
            proxy.terminate()
            proxy.wait(timeout=40)
            console.close()


CHECKS = [
    "pyjwt_ticket_with_kid_is_accepted",
    "pyjwt_ticket_without_kid_is_accepted",
    "consolegate_ticket_verifies_in_pyjwt",
    "consolegate_ticket_verifies_in_jwcrypto",
    "openssl_keys_work_both_ways",
    "keygen_keys_load_in_cryptography_and_pyjwt",
    "keygen_refuses_to_overwrite",
    "world_readable_key_is_refused_by_sign",
    "expired_pyjwt_ticket_is_refused",
    "pyjwt_hs256_with_the_public_key_is_refused",
    "pyjwt_ticket_with_view_and_rec_is_accepted",
    "consolegate_view_and_rec_tickets_verify_in_pyjwt",
    "pyjwt_ticket_with_typ_at_jwt_is_refused",
    "jwcrypto_tickets_with_view_and_rec_pass_and_with_typ_jose_fail",
    "verify_reads_the_ticket_from_stdin",
    "pyjwt_ticket_opens_a_session_through_the_proxy",
]


def main(argv):
    if len(argv) != 2 or not os.access(argv[1], os.X_OK):
        print("usage: interop.py PATH/TO/consolegate", file=sys.stderr)
        return 2
    suite = Interop(os.path.abspath(argv[1]))
    for name in CHECKS:
        suite.check(name.replace("_", " "), getattr(suite, name))
    print(f"interop: {suite.passed} passed, {suite.failed} failed")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
