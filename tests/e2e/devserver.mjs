// Development stand-in for the proxy, to work on the console page without it:
// serves web/ and noVNC like `consolegate serve`, answers config.json and check
// (decoding the ticket WITHOUT verifying it), and pipes every WebSocket upgrade to a
// QEMU started with `-vnc ...,websocket=PORT`. Never use it for anything real.
//
//   node tests/e2e/devserver.mjs --listen 8800 --qemu-ws 5777 --engine-origin http://127.0.0.1:8801
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { staticHandler } from './lib/static.mjs';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', default: '8800' },
    'qemu-ws': { type: 'string' },
    'engine-origin': { type: 'string', multiple: true, default: [] },
  },
});
const root = new URL('../../web/', import.meta.url).pathname;
const serveStatic = staticHandler({ root, novnc: root + 'node_modules/@novnc/novnc/' });

const server = http.createServer(async (req, res) => {
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
      const claims = JSON.parse(Buffer.from(body.split('.')[1], 'base64url'));
      const now = Math.floor(Date.now() / 1000);
      answer = claims.exp > now ? { ok: true, kind: claims.kind || 'vnc', exp: claims.exp }
        : { ok: false, status: 401, code: 'expired', reason: `ticket expired ${now - claims.exp} s ago` };
    } catch {
      answer = { ok: false, status: 400, code: 'malformed', reason: 'not a ticket' };
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(answer));
    return;
  }
  serveStatic(req, res);
});
server.on('upgrade', (req, socket, head) => {
  const up = net.connect(Number(values['qemu-ws']), '127.0.0.1', () => {
    const lines = [`GET / HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(lines.join('\r\n') + '\r\n\r\n');
    up.write(head);
    socket.pipe(up).pipe(socket);
  });
  up.on('error', () => socket.destroy());
  socket.on('error', () => up.destroy());
});
server.listen(Number(values.listen), '127.0.0.1', () => console.log(`devserver on http://127.0.0.1:${values.listen}`));
