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
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { start, stopAll, run, freePort, freePortIn, waitFor, tcpOpen } from './lib/procs.mjs';
import { qmpConnect } from './lib/qmp.mjs';
import { REPO, BIN, ARTIFACTS, NOVNC_DIR, WEB_DIR } from './lib/paths.mjs';
import { httpGet } from './lib/http.mjs';
import { makeSigningKey, sign, startEngine as startEngineWith } from './lib/engine.mjs';
import { launchBrowser, openConsole as openConsoleIn, waitState as waitStateFor, canvasStats, statusText } from './lib/page.mjs';
import { testsNeeding } from './lib/tools.mjs';

const test = testsNeeding('vencrypt.test.mjs', ['chromium', 'qemu', 'openssl']);

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
    '--web-dir', WEB_DIR,
    '--novnc-dir', NOVNC_DIR,
    ...backendFlags,
  ], { cwd: REPO });
  await waitFor('consolegate serve to answer', async () =>
    (await httpGet(`http://127.0.0.1:${port}/consolegate/config.json`)).status === 200, { child: proxy });
  return { proxy, consoleUrl: `http://127.0.0.1:${port}/console.html` };
}

// The engine: engine.html (shared with console.test.mjs) plus POST /ticket, which signs
// a `tls: vencrypt` ticket for the VNC port named by the scenario. Each proxy has its
// own console page, so page() takes it after the scenario.
async function startEngine() {
  const ticketFor = (scenario) => async () => ({
    ticket: await sign({ key: env.signingKey, port: env.scenarioPorts[scenario], tls: 'vencrypt' }),
    password: VNC_PASSWORD,
    title: 'e2e VeNCrypt VM',
  });
  const engine = await startEngineWith({ scenarios: { secure: ticketFor('secure'), plain: ticketFor('plain') } });
  return { ...engine, page: (scenario, consoleUrl) => engine.page(scenario, 'window', consoleUrl) };
}

// ------------------------------------------------------------------ browser helpers

const openConsole = (engineUrl) => openConsoleIn(env.context, engineUrl);
const waitState = (popup, state, timeout = 20000) => waitStateFor(popup, state, timeout);

// ------------------------------------------------------------------ set-up and tear-down

before(async () => {
  if (test.skipped) return;
  assert.ok(fs.existsSync(BIN), `consolegate binary not found at ${BIN}: run \`cargo build\` first`);
  assert.ok(fs.existsSync(path.join(NOVNC_DIR, 'core/rfb.js')), `noVNC not found in ${NOVNC_DIR}`);
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  env.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'consolegate-e2e-vencrypt-'));
  env.usedPorts = [];
  env.pki = await makePki(env.dir);
  const f = env.pki.f;

  ({ keyDir: env.keyDir, signingKey: env.signingKey } = await makeSigningKey(env.dir));

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

  ({ browser: env.browser, context: env.context } = await launchBrowser());
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
    assert.equal(await statusText(popup), expected);
    if (proxy === 'wrongCa') await popup.screenshot({ path: path.join(ARTIFACTS, 'console-vencrypt-untrusted.png') });
    await popup.close();
    await page.close();
  });
}
