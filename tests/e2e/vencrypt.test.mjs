// End-to-end test of secure console servers in a real browser (Debian's chromium,
// noVNC): QEMU's VNC server with `tls-creds-x509,verify-peer=yes` and a VNC password
// offers only VeNCrypt X509Vnc; consolegate speaks VeNCrypt to it with its console CA
// and client certificate and plain RFB 3.8 to the browser. Failures of that step
// must reach the person as a sentence on the console page.
//
//   node --test tests/e2e/            (from the repository root; `cargo build` first)
//
// The browser talks plain ws:// to the proxy here: the browser-side TLS is covered by
// console.test.mjs, and this file is about the proxy's TLS to the console server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { start, stopAll, run, freePort, freePortIn, waitFor, tcpOpen } from './lib/procs.mjs';
import { qmpConnect } from './lib/qmp.mjs';
import { staticHandler } from './lib/static.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const BIN = path.resolve(REPO, process.env.CONSOLEGATE_BIN || 'target/debug/consolegate');
const ARTIFACTS = path.join(REPO, 'tests/artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const NOVNC_DIR = process.env.E2E_NOVNC_DIR || path.join(REPO, 'web/node_modules/@novnc/novnc');
const VNC_PASSWORD = 'tls-Pw7';

const env = {};

// ------------------------------------------------------------------ set-up helpers

// The layout docs/console-tls.md describes: a console CA; QEMU's server certificate
// (IP SAN, serverAuth); the proxy's client certificate (clientAuth); and a second CA
// that nobody trusts, for the negative cases.
async function makePki(dir) {
  const f = (n) => path.join(dir, n);
  await fsp.writeFile(f('server.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n');
  await fsp.writeFile(f('client.cnf'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'rogue-ca']) {
    await run('openssl', ['req', '-x509', ...ec, '-keyout', f(`${ca}-key.pem`), '-out', f(`${ca}-cert.pem`), '-days', '1',
      '-subj', `/CN=consolegate e2e ${ca}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=keyCertSign,cRLSign']);
  }
  const issue = async (name, ca, cnf, cn) => {
    await run('openssl', ['req', ...ec, '-keyout', f(`${name}-key.pem`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`]);
    await run('openssl', ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}-cert.pem`), '-CAkey', f(`${ca}-key.pem`),
      '-CAcreateserial', '-out', f(`${name}-cert.pem`), '-days', '1', '-extfile', f(cnf)]);
  };
  await issue('server', 'ca', 'server.cnf', '127.0.0.1');
  await issue('client', 'ca', 'client.cnf', 'consolegate');
  // QEMU's x509 directory holds exactly these three names.
  const qemuDir = f('qemu-x509');
  await fsp.mkdir(qemuDir);
  for (const n of ['ca-cert.pem', 'server-cert.pem', 'server-key.pem']) await fsp.copyFile(f(n), path.join(qemuDir, n));
  return { dir, qemuDir, f };
}

async function startQemu(dir, vncOptions, { paused = false, password = true } = {}, extra = []) {
  const port = await freePortIn(5900, 6923, env.usedPorts);
  env.usedPorts.push(port);
  const qmpPath = path.join(dir, `qmp-${port}.sock`);
  const qemu = start(`qemu :${port}`, 'qemu-system-x86_64', [
    '-machine', 'accel=tcg', '-display', 'none', '-nodefaults', '-vga', 'std', '-m', '64',
    ...(paused ? ['-S'] : ['-boot', 'menu=on,splash-time=60000']),
    ...extra,
    '-vnc', `127.0.0.1:${port - 5900}${vncOptions}`,
    '-qmp', `unix:${qmpPath},server,nowait`,
  ]);
  await waitFor('QEMU QMP socket', () => fs.existsSync(qmpPath), { child: qemu });
  await waitFor('QEMU VNC port', () => tcpOpen(port), { child: qemu });
  const qmp = await qmpConnect(qmpPath);
  if (password) await qmp.execute('change-vnc-password', { password: VNC_PASSWORD });
  return { qemu, qmp, port };
}

function httpGet(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

// `consolegate serve` (plain ws://) with the given [backend_tls] flags.
async function startProxy(backendFlags) {
  const port = await freePort();
  const proxy = start(`consolegate serve :${port}`, BIN, [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--admin-listen', 'off',
    '--allow-plain',
    '--trust', env.keyDir,
    '--allow-port', '5900-6923',
    '--engine-origin', env.engine.origin,
    '--web-dir', path.join(REPO, 'web'),
    '--novnc-dir', NOVNC_DIR,
    ...backendFlags,
  ], { cwd: REPO });
  await waitFor('consolegate serve to answer', async () =>
    (await httpGet(`http://127.0.0.1:${port}/consolegate/config.json`)).status === 200, { child: proxy });
  return { proxy, consoleUrl: `http://127.0.0.1:${port}/console.html` };
}

// The engine: engine.html (shared with console.test.mjs) plus POST /ticket, which signs
// a `tls: vencrypt` ticket for the VNC port named by the scenario.
async function startEngine() {
  const serve = staticHandler({ root: HERE });
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/ticket') {
      const port = env.scenarioPorts[url.searchParams.get('scenario')];
      if (!port) {
        res.writeHead(400).end('unknown scenario');
        return;
      }
      try {
        const ticket = (await run(BIN, ['sign', '--key', env.signingKey, '--host', '127.0.0.1', '--port', String(port),
          '--ttl', '60s', '--tls', 'vencrypt'])).trim();
        res.writeHead(200, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ ticket, password: VNC_PASSWORD, title: 'e2e VeNCrypt VM' }));
      } catch (err) {
        res.writeHead(500).end(String(err));
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
    page: (scenario, consoleUrl) =>
      `${origin}/engine.html?console=${encodeURIComponent(consoleUrl)}&scenario=${scenario}&embed=window`,
  };
}

// ------------------------------------------------------------------ browser helpers

async function openConsole(engineUrl) {
  const page = await env.context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(engineUrl);
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#open-console')]);
  popup.setDefaultTimeout(15000);
  popup.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  if (process.env.E2E_VERBOSE) popup.on('console', (m) => console.error(`[console page] ${m.type()}: ${m.text()}`));
  await popup.waitForLoadState('domcontentloaded');
  return { page, popup };
}

async function waitState(popup, state, timeout = 20000) {
  try {
    await popup.waitForFunction((s) => window.consolegate && window.consolegate.state === s, state, { timeout });
  } catch {
    const now = await popup.evaluate(() => window.consolegate && [window.consolegate.state, window.consolegate.status]).catch(() => null);
    throw new Error(`console page did not reach "${state}" within ${timeout} ms; it is ${JSON.stringify(now)}`);
  }
}

// How much of noVNC's canvas is not background, and in how many colours.
function canvasStats(popup) {
  return popup.evaluate(() => {
    const canvas = document.querySelector('#screen canvas');
    if (!canvas || !canvas.width) return null;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
      if (colours.size < 64) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    return { width: canvas.width, height: canvas.height, lit, colours: colours.size };
  });
}

// ------------------------------------------------------------------ set-up and tear-down

before(async () => {
  assert.ok(fs.existsSync(BIN), `consolegate binary not found at ${BIN}: run \`cargo build\` first`);
  assert.ok(fs.existsSync(path.join(NOVNC_DIR, 'core/rfb.js')), `noVNC not found in ${NOVNC_DIR}`);
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  env.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'consolegate-e2e-vencrypt-'));
  env.usedPorts = [];
  env.pki = await makePki(env.dir);
  const f = env.pki.f;

  env.keyDir = path.join(env.dir, 'keys');
  await fsp.mkdir(env.keyDir);
  await run(BIN, ['keygen', '--out-dir', env.keyDir, '--name', 'engine']);
  env.signingKey = path.join(env.keyDir, 'engine.key');

  // The secure console: only VeNCrypt X509Vnc, a client certificate required.
  const tlsCreds = ['-object', `tls-creds-x509,id=tls0,dir=${env.pki.qemuDir},endpoint=server,verify-peer=yes`];
  env.secure = await startQemu(env.dir, ',tls-creds=tls0,password=on', {}, tlsCreds);
  // A console without TLS, for a ticket that wrongly says vencrypt.
  env.plain = await startQemu(env.dir, ',password=on', { paused: true });
  env.scenarioPorts = { secure: env.secure.port, plain: env.plain.port };

  env.engine = await startEngine();
  const client = ['--backend-client-cert', f('client-cert.pem'), '--backend-client-key', f('client-key.pem')];
  env.proxies = {
    good: await startProxy(['--backend-ca', f('ca-cert.pem'), ...client]),
    wrongCa: await startProxy(['--backend-ca', f('rogue-ca-cert.pem'), ...client]),
    noClientCert: await startProxy(['--backend-ca', f('ca-cert.pem')]),
    noBackendTls: await startProxy([]),
  };

  env.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  env.context = await env.browser.newContext({ viewport: { width: 1024, height: 700 } });
});

after(async () => {
  await env.browser?.close().catch(() => {});
  env.secure?.qmp.close();
  env.plain?.qmp.close();
  env.engine?.server.close();
  await stopAll();
  if (env.dir) await fsp.rm(env.dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

test('VeNCrypt X509Vnc with a client certificate: the browser shows QEMU\'s framebuffer and keys reach the VM; the VNC password passes through', { timeout: 90000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('secure', env.proxies.good.consoleUrl));
  await waitState(popup, 'connected');
  assert.equal(await popup.textContent('#status'), 'Connected');
  const stats = await waitFor('a non-blank framebuffer', async () => {
    const s = await canvasStats(popup);
    return s && s.lit > 200 && s.colours >= 2 ? s : null;
  });
  assert.ok(stats.width >= 640 && stats.height >= 400, `framebuffer ${stats.width}x${stats.height}`);
  // SeaBIOS waits at "Press ESC for boot menu": Escape typed in the browser travels
  // inside the proxy's TLS session and the boot menu appears.
  await popup.click('#screen canvas');
  await popup.keyboard.press('Escape');
  await waitFor('the boot menu after Escape', async () => (await canvasStats(popup)).lit > stats.lit + 200, { timeoutMs: 10000 });
  await popup.screenshot({ path: path.join(ARTIFACTS, 'console-vencrypt.png') });
  await popup.close();
  await page.close();
});

for (const [name, proxy, scenario, expected] of [
  ['the console server\'s certificate is not signed by the proxy\'s console CA', 'wrongCa', 'secure',
    'The console connection failed: the console server\'s certificate is not trusted (not signed by the proxy\'s console CA).'],
  ['the proxy has no client certificate and QEMU requires one', 'noClientCert', 'secure',
    'The console connection failed: the console server requires a client certificate; the proxy has none ([backend_tls] client_cert).'],
  ['the console server does not offer VeNCrypt', 'good', 'plain',
    'The console connection failed: the console server does not offer VeNCrypt (it offers VNC authentication).'],
  ['the proxy has no console CA at all', 'noBackendTls', 'secure',
    'This console proxy is not set up to reach secure console servers: ask the administrator.'],
]) {
  test(`refused with its reason on the page: ${name}`, { timeout: 60000 }, async () => {
    const { page, popup } = await openConsole(env.engine.page(scenario, env.proxies[proxy].consoleUrl));
    await waitState(popup, 'failed');
    assert.equal(await popup.textContent('#status'), expected);
    if (proxy === 'wrongCa') await popup.screenshot({ path: path.join(ARTIFACTS, 'console-vencrypt-untrusted.png') });
    await popup.close();
    await page.close();
  });
}
