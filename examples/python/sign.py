#!/usr/bin/env python3
"""Sign a consolegate console ticket in Python, as an engine would (PyJWT >= 2).

    pip install 'PyJWT[crypto]'
    python3 sign.py engine.key 127.0.0.1 5901 [--ttl 120] [--sub alice] [--aud hv1]

Prints the ticket. The key is the engine's Ed25519 private key, PKCS#8 PEM, as made
by `consolegate keygen` or `openssl genpkey -algorithm ed25519`. The proxy trusts the
matching .pub file (in /etc/consolegate/keys on a packaged install).
"""

import argparse
import base64
import hashlib
import json
import time
import uuid

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(public_key) -> str:
    """RFC 7638 JWK thumbprint of an Ed25519 public key: the proxy's key id."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)},
                     separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(jwk.encode("ascii")).digest())


def sign_ticket(key, host, port, ttl=120, sub=None, aud=None):
    """A ticket for host:port, valid for ttl seconds (keep it short: the proxy
    refuses lifetimes over its max_lifetime, 600 s by default)."""
    now = int(time.time())
    claims = {"host": host, "port": port, "iat": now, "exp": now + ttl,
              "jti": uuid.uuid4().hex}  # jti: audit logs, and single_use proxies need it
    if sub:
        claims["sub"] = sub
    if aud:
        claims["aud"] = aud
    return jwt.encode(claims, key, algorithm="EdDSA",
                      headers={"kid": key_id(key.public_key())})


def main():
    p = argparse.ArgumentParser(description="Sign a consolegate console ticket.")
    p.add_argument("key", help="engine private key, PKCS#8 PEM")
    p.add_argument("host", help="console server host as the proxy reaches it")
    p.add_argument("port", type=int, help="console server TCP port")
    p.add_argument("--ttl", type=int, default=120, help="lifetime in seconds (default 120)")
    p.add_argument("--sub", help="user the ticket is issued to (audit logs)")
    p.add_argument("--aud", help="the proxy's audience name, if it requires one")
    a = p.parse_args()
    with open(a.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    print(sign_ticket(key, a.host, a.port, a.ttl, a.sub, a.aud))


if __name__ == "__main__":
    main()
