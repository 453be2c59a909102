// The engine side of the hand-off: tests/e2e/engine.html on its own origin, as a
// portal would serve it, plus POST /ticket?scenario=<name>, which answers with what
// the test file's scenario function returns (usually a ticket signed by the CLI).
import http from 'node:http';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { BIN, E2E_DIR } from './paths.mjs';
import { freePort, run } from './procs.mjs';
import { staticHandler } from './static.mjs';

// A fresh Ed25519 key pair in <dir>/keys: the proxy trusts keyDir, the engine signs
// with signingKey.
export async function makeSigningKey(dir) {
  const keyDir = path.join(dir, 'keys');
  await fsp.mkdir(keyDir);
  await run(BIN, ['keygen', '--out-dir', keyDir, '--name', 'engine']);
  return { keyDir, signingKey: path.join(keyDir, 'engine.key') };
}

// `consolegate sign` for a console on 127.0.0.1:port; kind and tls as the CLI takes them;
// view: a view-only ticket (`--view`).
export async function sign({ key, port, ttl = '60s', kind, tls, sub, view = false }) {
  const args = ['sign', '--key', key, '--host', '127.0.0.1', '--port', String(port), '--ttl', ttl];
  if (sub) args.push('--sub', sub);
  if (kind) args.push('--kind', kind);
  if (tls) args.push('--tls', tls);
  if (view) args.push('--view');
  return (await run(BIN, args)).trim();
}

// scenarios: { name: async () => answer }, the JSON engine.js hands to the console
// page ({ticket, password?, title}). consoleUrl is the default console page for page().
export async function startEngine({ scenarios, consoleUrl }) {
  const serve = staticHandler({ root: E2E_DIR });
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/ticket') {
      const name = url.searchParams.get('scenario');
      // hasOwn: a scenario named "constructor" must not find Object's.
      const make = Object.hasOwn(scenarios, name) ? scenarios[name] : null;
      if (!make) {
        res.writeHead(400).end('unknown scenario');
        return;
      }
      try {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(await make()));
      } catch (err) {
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(err));
      }
      return;
    }
    serve(req, res);
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${port}`;
  return {
    server,
    origin,
    port,
    // The engine page for a scenario; embed is 'window' (a popup) or 'iframe'. `extra`:
    // `host` to reach the engine by another name (another origin: localhost), and
    // query parameters for engine.js (allow, lang).
    page: (scenario, embed = 'window', console = consoleUrl, { host = '127.0.0.1', ...query } = {}) => {
      const params = new URLSearchParams({ console, scenario, embed, ...query });
      return `http://${host}:${port}/engine.html?${params}`;
    },
  };
}
