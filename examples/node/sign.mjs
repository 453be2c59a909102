#!/usr/bin/env node
// Sign a consolegate console ticket in Node.js, as an engine would (jose).
//
//     npm ci
//     node sign.mjs engine.key 127.0.0.1 5901 [--ttl 120] [--sub alice] [--aud hv1]
//
// Prints the ticket. The key is the engine's Ed25519 private key, PKCS#8 PEM, as made
// by `consolegate keygen` or `openssl genpkey -algorithm ed25519`. The proxy trusts the
// matching .pub file (in /etc/consolegate/keys on a packaged install).

import { readFile } from 'node:fs/promises';
import { randomUUID, createPublicKey } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SignJWT, importPKCS8, exportJWK, calculateJwkThumbprint } from 'jose';

/** A ticket for host:port, valid for ttl seconds (keep it short: the proxy refuses
 *  lifetimes over its max_lifetime, 600 s by default). */
export async function signTicket(pem, host, port, { ttl = 120, sub, aud } = {}) {
  const key = await importPKCS8(pem, 'EdDSA', { extractable: true });
  // Key id: the RFC 7638 thumbprint of the public key, as the proxy computes it.
  const kid = await calculateJwkThumbprint(await exportJWK(createPublicKey(pem)));
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ host, port })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid })
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(randomUUID()); // audit logs, and single_use proxies need it
  if (sub) jwt.setSubject(sub);
  if (aud) jwt.setAudience(aud);
  return jwt.sign(key);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { ttl: { type: 'string', default: '120' }, sub: { type: 'string' }, aud: { type: 'string' } },
});
if (positionals.length !== 3) {
  console.error('usage: node sign.mjs KEY.pem HOST PORT [--ttl SECONDS] [--sub USER] [--aud NAME]');
  process.exit(2);
}
const [keyPath, host, port] = positionals;
const pem = await readFile(keyPath, 'utf8');
console.log(await signTicket(pem, host, Number(port), { ttl: Number(values.ttl), sub: values.sub, aud: values.aud }));
