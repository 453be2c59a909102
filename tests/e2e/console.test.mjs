// End-to-end test of the console page in a real browser (Debian's chromium driven by
// playwright-core), through a real `consolegate serve` with TLS, against QEMU's own
// VNC server with a password, with the engine page on a different origin.
//
//   node --test tests/e2e/            (from the repository root; `cargo build` first)
//
// CONSOLEGATE_BIN overrides the binary (default target/debug/consolegate);
// E2E_VERBOSE=1 echoes the children's output. Without chromium, QEMU or openssl the
// file's tests are skipped with a SKIPPED line (under CI=true they fail).
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { start, stop, stopAll, run, freePort, freePortIn, waitFor, tcpOpen } from './lib/procs.mjs';
import { startSeaBiosQemu } from './lib/consoles.mjs';
import { qmpConnect, qemuScreenSize } from './lib/qmp.mjs';
import { REPO, BIN, ARTIFACTS, NOVNC_DIR, WEB_DIR } from './lib/paths.mjs';
import { httpGet, httpsGet } from './lib/http.mjs';
import { makeSigningKey, sign as signTicket, startEngine as startEngineWith } from './lib/engine.mjs';
import { launchBrowser, watchConsole, openConsole as openConsoleIn, waitState as waitStateFor, statusText, panelText, canvasStats, clickTool, urlsWithTickets } from './lib/page.mjs';
import { waitForKeys } from './lib/demo.mjs';
import { testsNeeding } from './lib/tools.mjs';

const test = testsNeeding('console.test.mjs', ['chromium', 'qemu', 'openssl']);

const VNC_PASSWORD = 'e2e-Pw7';   // QEMU's VNC auth uses at most 8 characters

const TEXT = {
  waiting: 'Waiting for the portal…',
  expired: 'This console link has expired: open the console again from the portal.',
  wrongPassword: 'Wrong VNC password.',
  unreachable: 'The console server is unreachable.',
  wrongKindPort: 'This console proxy does not allow this type of console on that port: ask the administrator.',
};

const env = {};      // everything `before` sets up, for the tests and `after`

// ------------------------------------------------------------------ set-up helpers

async function makeTls(dir) {
  const ext = path.join(dir, 'ext.cnf');
  await fsp.writeFile(ext, 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n');
  const f = (n) => path.join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=consolegate e2e test CA']);
  await run('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1']);
  await run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-out', f('server.crt'), '-days', '1', '-extfile', ext]);
  // Chromium trusts exactly this certificate's key (SPKI pin), nothing else.
  const der = await run('sh', ['-c', `openssl x509 -in '${f('server.crt')}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`]);
  return { cert: f('server.crt'), key: f('server.key'), ca: f('ca.crt'), spki: der.trim() };
}

const startQemu = (dir) => startSeaBiosQemu(dir, 'qemu', VNC_PASSWORD);

const sign = (opts) => signTicket({ key: env.signingKey, ...opts });

// The engine: a page on its own origin plus POST /ticket, which signs with the CLI.
function startEngine(consoleUrl) {
  return startEngineWith({
    consoleUrl,
    scenarios: {
      good: async () => ({ ticket: await sign({ port: env.vncPort }), password: VNC_PASSWORD, title: 'e2e VM' }),
      alice: async () => ({ ticket: await sign({ port: env.vncPort, sub: 'alice' }), password: VNC_PASSWORD, title: 'e2e VM' }),
      'wrong-password': async () => ({ ticket: await sign({ port: env.vncPort }), password: 'wrong!', title: 'e2e VM' }),
      expired: async () => {
        // Valid for 1 s and handed over once it ran out (the proxy runs with --leeway 0).
        const ticket = await sign({ port: env.vncPort, ttl: '1s' });
        const exp = JSON.parse(Buffer.from(ticket.split('.')[1], 'base64url')).exp;
        await waitFor('the ticket to expire', () => Date.now() / 1000 >= exp + 1, { timeoutMs: 5000 });
        return { ticket, password: VNC_PASSWORD, title: 'e2e VM' };
      },
      unreachable: async () => ({ ticket: await sign({ port: env.deadPort }), password: VNC_PASSWORD, title: 'e2e VM' }),
      'serial-on-vnc-port': async () => ({ ticket: await sign({ port: env.vncPort, kind: 'serial' }), title: 'e2e VM' }),
    },
  });
}

// `consolegate serve` with TLS on `port`, trusting the test's key and engine origin.
async function startProxy(port, extra = []) {
  const proxy = start(`consolegate serve :${port}`, BIN, [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    // Several proxies run at once: no fixed admin port unless a test asks for one.
    ...(extra.includes('--admin-listen') ? [] : ['--admin-listen', 'off']),
    '--tls-cert', env.tls.cert, '--tls-key', env.tls.key,
    '--trust', env.keyDir,
    '--allow-port', String(env.vncPort), '--allow-port', String(env.deadPort),
    '--engine-origin', env.engine.origin,
    '--leeway', '0',
    '--web-dir', WEB_DIR,
    '--novnc-dir', NOVNC_DIR,
    ...extra,
  ], { cwd: REPO });
  const ca = await fsp.readFile(env.tls.ca);
  await waitFor('consolegate serve to answer', async () =>
    (await httpsGet(`https://127.0.0.1:${port}/consolegate/config.json`, ca)).status === 200,
  { child: proxy });
  return proxy;
}

// ------------------------------------------------------------------ browser helpers

const openConsole = (engineUrl) => openConsoleIn(env.context, engineUrl);
const waitState = (popup, state, timeout = 15000) => waitStateFor(popup, state, timeout);

// ------------------------------------------------------------------ set-up and tear-down

before(async () => {
  if (test.skipped) return;
  assert.ok(fs.existsSync(BIN), `consolegate binary not found at ${BIN}: run \`cargo build\` first or set CONSOLEGATE_BIN`);
  assert.ok(fs.existsSync(path.join(NOVNC_DIR, 'core/rfb.js')),
    `noVNC not found in ${NOVNC_DIR}: run \`npm ci\` in web/`);
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  env.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'consolegate-e2e-'));

  env.tls = await makeTls(env.dir);
  const { keyDir, signingKey } = await makeSigningKey(env.dir);
  env.signingKey = signingKey;

  const q = await startQemu(env.dir);
  Object.assign(env, { qemu: q.qemu, qmp: q.qmp, vncPort: q.port });
  // An allowed port nobody listens on, for the "unreachable" sentence.
  env.deadPort = await freePortIn(5900, 6923, [env.vncPort]);

  env.proxyPort = await freePort();
  env.consoleUrl = `https://127.0.0.1:${env.proxyPort}/console.html`;
  env.engine = await startEngine(env.consoleUrl);
  env.evil = await startEngine(env.consoleUrl);  // a second origin the proxy does not trust

  env.keyDir = keyDir;
  env.proxy = await startProxy(env.proxyPort);

  ({ browser: env.browser, context: env.context } = await launchBrowser(
    ['--disable-quic', `--ignore-certificate-errors-spki-list=${env.tls.spki}`]));
});

after(async () => {
  await env.browser?.close().catch(() => {});
  env.qmp?.close();
  for (const e of [env.engine, env.evil]) e?.server.close();
  await stopAll();
  if (env.dir) await fsp.rm(env.dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

test('a trusted engine opens the QEMU console through the proxy; a key and pasted text reach the VM', { timeout: 90000 }, async () => {
  const { popup } = await openConsole(env.engine.page('good'));
  await waitState(popup, 'connected');
  assert.equal(await statusText(popup), 'Connected');
  assert.equal(await popup.textContent('#title'), 'e2e VM');
  // Nothing secret in the console page's URL.
  assert.equal(popup.url(), env.consoleUrl);

  const size = await qemuScreenSize(env.qmp, env.dir);
  const stats = await waitFor('a non-blank framebuffer', async () => {
    const s = await canvasStats(popup);
    return s && s.lit > 200 && s.colours >= 2 ? s : null;
  });
  assert.equal(stats.width, size.width, 'canvas width is QEMU\'s framebuffer width');
  assert.equal(stats.height, size.height, 'canvas height is QEMU\'s framebuffer height');

  // SeaBIOS is at "Press ESC for boot menu"; text rows are 16 px. The boot menu's
  // first entry lands on row 6, blank until Escape is pressed in the browser.
  const menuRows = [96, 112];
  assert.ok(size.height === 400, `expected the 720x400 text mode, got ${size.width}x${size.height}`);
  assert.equal((await canvasStats(popup, menuRows)).lit, 0, 'boot menu row is blank before the key');
  await popup.click('#screen canvas');
  await popup.keyboard.press('Escape');
  await waitFor('the boot menu after Escape', async () => (await canvasStats(popup, menuRows)).lit > 50, { timeoutMs: 10000 });

  await popup.screenshot({ path: path.join(ARTIFACTS, 'console-qemu.png') });

  // The toolbar's "Paste text" types keys one by one: "1" picks the menu's first
  // entry and SeaBIOS prints "Booting from Hard Disk..." on row 8.
  const bootRows = [128, 144];
  assert.equal((await canvasStats(popup, bootRows)).lit, 0, 'row 8 is blank before the paste');
  await popup.click('#btn-paste');
  await popup.fill('#paste-text', '1');
  await popup.click('#paste-send');
  await waitFor('SeaBIOS booting after the pasted "1"', async () => (await canvasStats(popup, bootRows)).lit > 50, { timeoutMs: 10000 });
  assert.deepEqual(popup.cspViolations, [], 'the page runs under the proxy\'s CSP without violations');
  // The ticket travelled in a subprotocol: the WebSocket's URL holds none.
  const urls = urlsWithTickets(popup);
  assert.equal(urls.count, 1, 'one WebSocket for the VNC session');
  assert.deepEqual(urls.bad, [], 'the VNC WebSocket carried the ticket in no URL');
  await popup.close();
});

test('paste into QEMU (which takes scancodes) presses the keys of the chosen guest layout, and says what it cannot type', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('good'));
  await waitState(popup, 'connected');
  assert.equal(await popup.evaluate(() => window.consolegate.client.scancodes()), true, 'QEMU announces its extended key events');
  // Record what the page sends (the VM is in SeaBIOS: it shows no typed text).
  await popup.evaluate(() => {
    const rfb = window.consolegate.rfb;
    const send = rfb.sendKey;
    window.sentKeys = [];
    rfb.sendKey = (keysym, code, down) => { if (down) window.sentKeys.push(code); send(keysym, code, down); };
  });
  const paste = async (text, layout) => {
    await popup.evaluate(() => { window.sentKeys = []; });
    await clickTool(popup, '#btn-paste');
    await popup.selectOption('#layout', layout);
    await popup.fill('#paste-text', text);
    await popup.click('#paste-send');
    return waitFor('the keys to be sent', async () => {
      const notice = await popup.evaluate(() => window.consolegate.notice);
      return notice ? { notice, keys: await popup.evaluate(() => window.sentKeys) } : null;
    });
  };
  // German: z is where US has y; ü has its own key; € is AltGr+E.
  const de = await paste('zü€', 'de');
  assert.deepEqual(de.keys, ['KeyY', 'BracketLeft', 'AltRight', 'KeyE']);
  assert.equal(de.notice, 'Typed 3 characters.');
  // US has no key for ü or €: nothing is sent for them, and the page says so.
  await popup.click('#notice-close');
  const us = await paste('aü€', 'us');
  assert.deepEqual(us.keys, ['KeyA']);
  assert.equal(us.notice, 'Typed 1 of 3 characters. Not sent: “ü” “€” (the English (US) keyboard layout has no key for them; pick the guest\'s layout under “Paste text”).');
  await popup.screenshot({ path: path.join(ARTIFACTS, 'console-qemu-paste-unsent.png') });
  await popup.close();
  await page.close();
});

test('the console also works in an iframe on the engine page (frame-ancestors)', { timeout: 60000 }, async () => {
  const page = await env.context.newPage();
  page.setDefaultTimeout(15000);
  watchConsole(page);
  await page.goto(env.engine.page('good', 'iframe'));
  await page.click('#open-console');
  const frame = await waitFor('the console iframe', async () =>
    page.frames().find((f) => f.url() === env.consoleUrl));
  await frame.waitForFunction(() => window.consolegate && window.consolegate.state === 'connected', null, { timeout: 15000 })
    .catch(async (err) => {
      const seen = await frame.evaluate(() => window.consolegate && [window.consolegate.state, window.consolegate.status]).catch((e) => e.message);
      const log = await page.evaluate(() => window.engineLog);
      throw new Error(`iframe console did not connect: ${JSON.stringify(seen)}; engine log ${JSON.stringify(log)}`);
    });
  assert.equal(await frame.textContent('#status'), 'Connected');
  assert.deepEqual(page.cspViolations, []);
  await page.close();
});

test('disconnect, then reconnect asks the engine for a new ticket', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('good'));
  await waitState(popup, 'connected');
  const firstJti = await popup.evaluate(() => window.consolegate.jti);
  await popup.click('#btn-disconnect');
  await waitState(popup, 'disconnected');
  await popup.click('#btn-reconnect');
  await waitState(popup, 'connected');
  const secondJti = await popup.evaluate(() => window.consolegate.jti);
  assert.ok(firstJti && secondJti, 'tickets carry a jti');
  assert.notEqual(secondJti, firstJti, 'the reconnect used a fresh ticket');
  const log = await page.evaluate(() => window.engineLog);
  assert.deepEqual(log, ['got consolegate:ready', 'sent connect', 'got consolegate:closed', 'got consolegate:need-ticket', 'sent connect']);
  // The engine heard why the first session ended.
  const [closed] = await page.evaluate(() => window.closedMessages);
  assert.deepEqual({ code: closed.code, refusal: closed.refusal, retry: closed.retry, sentence: closed.sentence },
    { code: 1000, refusal: 'user', retry: false, sentence: 'Disconnected.' });
  await popup.close();
  await page.close();
});

test('a connect message from an untrusted origin is ignored, and the page says whose', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.evil.page('good'));
  await page.waitForFunction(() => window.engineLog.includes('sent connect'), null, { timeout: 15000 });
  await popup.waitForFunction(() => window.consolegate.ignored >= 1, null, { timeout: 5000 });
  assert.equal(await popup.evaluate(() => window.consolegate.state), 'waiting', 'nothing started');
  await waitState(popup, 'failed', 10000);
  assert.equal(await panelText(popup), `${env.evil.origin} tried to open this console, but it is not an allowed portal of this console proxy: open the console from the portal, or ask the administrator to allow ${env.evil.origin}.`);
  assert.equal(await popup.$('#screen canvas'), null, 'no VNC client was started');
  await popup.close();
  await page.close();
});

test('an expired ticket shows the expiry sentence', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('expired'));
  await waitState(popup, 'failed');
  assert.equal(await statusText(popup), TEXT.expired);
  await popup.close();
  await page.close();
});

test('a wrong VNC password shows its sentence', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('wrong-password'));
  await waitState(popup, 'failed');
  assert.equal(await statusText(popup), TEXT.wrongPassword);
  await popup.close();
  await page.close();
});

test('a console server that does not listen shows "unreachable"', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('unreachable'));
  await waitState(popup, 'failed');
  assert.equal(await statusText(popup), TEXT.unreachable);
  await popup.close();
  await page.close();
});

test('a serial ticket for the VNC port is refused with its own sentence (per-kind ports)', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('serial-on-vnc-port'));
  await waitState(popup, 'failed');
  assert.equal(await statusText(popup), TEXT.wrongKindPort);
  await popup.close();
  await page.close();
});

test('a session the proxy ends shows its reason: maximum duration (1008) ends it, shutdown (1001) reconnects by itself', { timeout: 60000 }, async () => {
  for (const [extra, stopIt, state, expected, retry] of [
    [['--max-duration', '2s'], null, 'failed',
      'The session reached the longest time this console proxy allows (2 s): reconnect to start a new one.', false],
    [['--grace', '1s'], (proxy) => proxy.kill('SIGTERM'), 'reconnecting', 'The console proxy is shutting down.', true],
  ]) {
    const port = await freePort();
    const proxy = await startProxy(port, extra);
    try {
      const { page, popup } = await openConsole(env.engine.page('good', 'window', `https://127.0.0.1:${port}/console.html`));
      await waitState(popup, 'connected');
      if (stopIt) stopIt(proxy);
      await waitState(popup, state, 15000);
      assert.equal(await statusText(popup), expected);
      assert.equal(await popup.isEnabled('#btn-reconnect'), true, 'reconnect is offered');
      const [closed] = await page.evaluate(() => window.closedMessages);
      assert.deepEqual([closed.code, closed.retry], [retry ? 1001 : 1008, retry]);
      await popup.close();
      await page.close();
    } finally {
      await stop(proxy);
    }
  }
});

test('an operator killing a user\'s sessions by sub shows the reason on that user\'s console page', { timeout: 60000 }, async () => {
  const port = await freePort();
  const adminPort = await freePort();
  const tokenFile = path.join(env.keyDir, 'admin.token');
  const token = crypto.randomBytes(24).toString('hex');
  await fsp.writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const proxy = await startProxy(port, ['--admin-listen', `127.0.0.1:${adminPort}`, '--admin-token-file', tokenFile]);
  try {
    const { page, popup } = await openConsole(env.engine.page('alice', 'window', `https://127.0.0.1:${port}/console.html`));
    await waitState(popup, 'connected');
    const answer = await new Promise((resolve, reject) => {
      const body = JSON.stringify({ sub: 'alice', reason: 'access revoked by the operator' });
      const req = http.request({
        host: '127.0.0.1', port: adminPort, path: '/sessions/kill', method: 'POST', timeout: 5000,
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      }, (res) => {
        let text = '';
        res.on('data', (c) => { text += c; });
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end(body);
    });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(JSON.parse(answer.text), { killed: 1 });
    await waitState(popup, 'failed', 15000);
    assert.equal(await statusText(popup), 'The console proxy ended the session: access revoked by the operator.');
    await popup.close();
    await page.close();
  } finally {
    await stop(proxy);
  }
});

test('consolegate demo: the demo engine page opens the built-in test pattern and keys reach it', { timeout: 90000 }, async () => {
  const port = await freePort();
  const demo = start('consolegate demo', BIN, ['demo', '--listen', `127.0.0.1:${port}`, '--web-dir', WEB_DIR], { cwd: REPO });
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor('consolegate demo to answer', async () => (await httpGet(`${base}/consolegate/config.json`)).status === 200, { child: demo });
    const page = await env.context.newPage();
    page.setDefaultTimeout(15000);
    await page.goto(`${base}/`);
    await page.click('a[href="engine-demo.html"]');
    await page.waitForURL(`${base}/engine-demo.html`);
    const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#open-console')]);
    popup.setDefaultTimeout(15000);
    await waitState(popup, 'connected');
    const stats = await waitFor('the demo test pattern', async () => {
      const s = await canvasStats(popup);
      return s && s.lit > 1000 && s.colours >= 4 ? s : null;
    });
    assert.ok(stats.width >= 320 && stats.height >= 200, `demo framebuffer ${stats.width}x${stats.height}`);
    // The demo server draws the keys it receives: named keys and combinations too.
    await popup.click('#screen canvas');
    await popup.keyboard.type('hello');
    await popup.keyboard.press('Tab');
    await popup.keyboard.press('Control+Alt+F2');
    await popup.keyboard.press('Escape');
    await waitForKeys(popup, 'hello[Tab][Ctrl+Alt+F2][Esc]').catch(async (err) => {
      await popup.screenshot({ path: path.join(ARTIFACTS, 'console-demo-failed.png') });
      throw err;
    });
    await popup.screenshot({ path: path.join(ARTIFACTS, 'console-demo.png') });
    await popup.close();
    await page.close();
  } finally {
    await stop(demo);
  }
});
