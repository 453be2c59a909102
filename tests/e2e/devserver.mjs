// Development stand-in for `consolegate`, to work on the console page and the e2e
// test before the real proxy exists. It VERIFIES NOTHING: tickets are unsigned and
// any target is reached. Never use it for anything but local development.
//
//   node tests/e2e/devserver.mjs keygen --out-dir D [--name N]
//   node tests/e2e/devserver.mjs sign --key F --host H --port P [--ttl 60s] [--kind K]
//   node tests/e2e/devserver.mjs serve --listen 127.0.0.1:P [--tls-cert C --tls-key K]
//        [--engine-origin O]... [--web-dir D] [--novnc-dir D]   (other options ignored)
//   CONSOLEGATE_BIN=tests/e2e/devserver.sh node --test tests/e2e/   runs the e2e test on it
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { staticHandler } from './lib/static.mjs';

const [command, ...rest] = process.argv.slice(2);
const { values } = parseArgs({
  args: rest,
  strict: false,
  options: {
    listen: { type: 'string', default: '127.0.0.1:8800' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'engine-origin': { type: 'string', multiple: true, default: [] },
    'web-dir': { type: 'string', default: 'web' },
    'novnc-dir': { type: 'string' },
    'out-dir': { type: 'string' },
    name: { type: 'string', default: 'consolegate' },
    host: { type: 'string' },
    port: { type: 'string' },
    ttl: { type: 'string', default: '120s' },
    kind: { type: 'string' },
  },
});

const seconds = (d) => parseInt(d, 10) * ({ s: 1, m: 60, h: 3600 }[d.slice(-1)] || 1);

if (command === 'keygen') {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  fs.writeFileSync(path.join(values['out-dir'], `${values.name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  fs.writeFileSync(path.join(values['out-dir'], `${values.name}.pub`), publicKey.export({ type: 'spki', format: 'pem' }));
  console.log('dev-key');
} else if (command === 'sign') {
  const now = Math.floor(Date.now() / 1000);
  const claims = { host: values.host, port: Number(values.port), exp: now + seconds(values.ttl), iat: now, jti: crypto.randomUUID() };
  if (values.kind) claims.kind = values.kind;
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  console.log(`${b64({ alg: 'EdDSA', typ: 'JWT' })}.${b64(claims)}.unsigned`);
} else if (command === 'serve') {
  serve();
} else {
  console.error(`devserver: unsupported command ${command}`);
  process.exit(2);
}

function claimsOf(ticket) {
  return JSON.parse(Buffer.from(ticket.split('.')[1], 'base64url'));
}

function serve() {
  const root = path.resolve(values['web-dir']);
  const serveStatic = staticHandler({ root, novnc: path.resolve(values['novnc-dir'] || path.join(root, 'node_modules/@novnc/novnc')) + '/' });
  const handler = async (req, res) => {
    if (req.url === '/consolegate/config.json') {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ engine_origins: values['engine-origin'], demo: false }));
      return;
    }
    if (req.method === 'POST' && req.url === '/consolegate/check') {
      let body = '';
      for await (const chunk of req) body += chunk;
      let answer;
      try {
        const claims = claimsOf(body);
        const now = Math.floor(Date.now() / 1000);
        answer = now < claims.exp ? { ok: true, kind: claims.kind || 'vnc', exp: claims.exp, jti: claims.jti }
          : { ok: false, status: 401, code: 'expired', reason: `ticket expired ${now - claims.exp} s ago` };
      } catch {
        answer = { ok: false, status: 400, code: 'malformed', reason: 'not a ticket' };
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(answer));
      return;
    }
    serveStatic(req, res);
  };
  const server = values['tls-cert']
    ? https.createServer({ cert: fs.readFileSync(values['tls-cert']), key: fs.readFileSync(values['tls-key']) }, handler)
    : http.createServer(handler);
  server.on('upgrade', relay);
  const [host, port] = values.listen.split(':');
  server.listen(Number(port), host, () => console.log(`devserver listening on ${values.listen}`));
}

// A bare WebSocket (RFC 6455) to TCP relay: binary frames only, no fragmentation.
function relay(req, socket) {
  let claims;
  try {
    claims = claimsOf(decodeURIComponent(new URL(req.url, 'http://x').pathname.slice(1)));
  } catch {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  const backend = net.connect(claims.port, claims.host);
  backend.once('error', () => socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
  backend.once('connect', () => {
    backend.removeAllListeners('error');
    backend.on('error', () => socket.destroy());
    socket.on('error', () => backend.destroy());
    const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    const offered = (req.headers['sec-websocket-protocol'] || '').split(',').map((s) => s.trim());
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
      + `Sec-WebSocket-Accept: ${accept}\r\n${offered.includes('binary') ? 'Sec-WebSocket-Protocol: binary\r\n' : ''}\r\n`);
    backend.on('data', (data) => socket.write(frame(0x2, data)));
    backend.on('end', () => { socket.end(frame(0x8, Buffer.from([0x03, 0xe8]))); });
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + 4 + len) return;
        const mask = buf.subarray(off, off + 4);
        const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
        for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
        buf = buf.subarray(off + 4 + len);
        if (opcode === 0x2 || opcode === 0x0) backend.write(payload);
        else if (opcode === 0x8) { socket.end(frame(0x8, payload.subarray(0, 2))); backend.destroy(); }
        else if (opcode === 0x9) socket.write(frame(0xa, payload));
      }
    });
    socket.on('close', () => backend.destroy());
  });
}

function frame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, len])
    : len < 65536 ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff])
      : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  return Buffer.concat([head, payload]);
}
