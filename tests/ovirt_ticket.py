#!/usr/bin/env python3
"""An oVirt engine console ticket encoder for the tests, written from the ticket's
published shape with the `cryptography` package (not with consolegate's code), plus
the forgeries consolegate must refuse.

    ovirt_ticket.py sign --key engine.key --cert engine.cer --host 127.0.0.1 --port 5901
        [--ssl-target] [--lifetime 120] [--start -0] [--no-v2] [--v1]
        [--signed-fields salt,digest,validFrom,validTo,data]
    ovirt_ticket.py forge-absorb --ticket T --host 10.0.0.9 --port 22 [--valid-for 31536000]

The ticket: standard base64 of a JSON object of strings `salt` (base64 of 8 random
bytes), `digest` ("sha1"), `validFrom`/`validTo` (UTC yyyyMMddHHmmss), `data`
(URL-encoded JSON {host, port (a string), ssl_target}), `signedFields`,
`signature` (RSA PKCS#1 v1.5 SHA-1), `v2_signature` (RSA-PSS SHA-256, MGF1-SHA-256,
maximum salt length) and `certificate` (PEM). Each signature covers the listed fields'
values concatenated in order, without separators.
"""

import argparse
import base64
import datetime
import json
import os
import sys
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ENGINE_FIELDS = "salt,digest,validFrom,validTo,data"


def stamp(t):
    return t.strftime("%Y%m%d%H%M%S")


def sign_pss(key, message):
    return key.sign(
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        hashes.SHA256(),
    )


def sign_v1(key, message):
    return key.sign(message, padding.PKCS1v15(), hashes.SHA1())


def b64(b):
    return base64.b64encode(b).decode()


def cmd_sign(a):
    with open(a.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(a.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=a.start)
    data = {"host": a.host, "port": str(a.port), "ssl_target": a.ssl_target}
    d = {
        "salt": b64(os.urandom(8)),
        "digest": "sha1",
        "validFrom": stamp(now),
        "validTo": stamp(now + datetime.timedelta(seconds=a.lifetime)),
        # The engine's Java URLEncoder: form encoding, spaces as "+".
        "data": urllib.parse.quote_plus(json.dumps(data)),
    }
    fields = a.signed_fields.split(",")
    message = "".join(d[f] for f in fields).encode("utf-8")
    d["signedFields"] = a.signed_fields
    if a.v1:
        d["signature"] = b64(sign_v1(key, message))
    if not a.no_v2:
        d["v2_signature"] = b64(sign_pss(key, message))
    d["certificate"] = cert.public_bytes(serialization.Encoding.PEM).decode()
    print(b64(json.dumps(d).encode()))


def cmd_forge_absorb(a):
    """oVirt's own verifier takes signedFields from the ticket and needs only `salt`
    or `data` in it. Move every signed value into `salt`, sign "salt", and the same
    bytes carry a new target and a new expiry: no private key needed."""
    d = json.loads(base64.b64decode(a.ticket))
    fields = d["signedFields"].split(",")
    d["salt"] = "".join(d[f] for f in fields)
    d["signedFields"] = "salt"
    now = datetime.datetime.now(datetime.timezone.utc)
    d["validFrom"] = stamp(now)
    d["validTo"] = stamp(now + datetime.timedelta(seconds=a.valid_for))
    d["data"] = urllib.parse.quote_plus(
        json.dumps({"host": a.host, "port": str(a.port), "ssl_target": False})
    )
    print(b64(json.dumps(d).encode()))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sign")
    s.add_argument("--key", required=True)
    s.add_argument("--cert", required=True)
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ssl-target", action="store_true")
    s.add_argument("--lifetime", type=int, default=120, help="seconds (engine default 120)")
    s.add_argument("--start", type=int, default=0, help="validFrom offset from now, seconds")
    s.add_argument("--no-v2", action="store_true", help="omit v2_signature")
    s.add_argument("--v1", action="store_true", help="add the SHA-1 signature")
    s.add_argument("--signed-fields", default=ENGINE_FIELDS)
    s.set_defaults(func=cmd_sign)
    f = sub.add_parser("forge-absorb")
    f.add_argument("--ticket", required=True)
    f.add_argument("--host", required=True)
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--valid-for", type=int, default=365 * 86400)
    f.set_defaults(func=cmd_forge_absorb)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    sys.exit(main())
