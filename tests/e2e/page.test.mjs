// End-to-end tests of the console page itself in a real browser (Debian's chromium
// driven by playwright-core): what a person does with it and what they see. The
// console server is the demo's RFB server (`consolegate demo`), which draws the keys,
// pointer and clipboard text it receives, so a test reads back exactly what arrived
// (lib/demo.mjs). The proxy is a plain `consolegate serve` with the test's own key and
// engine page on another origin, as in production.
//
//   node --test tests/e2e/page.test.mjs      (from the repository root; `cargo build` first)
//
// Screenshots of each state land in tests/artifacts/page-*.png.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { start, stop, stopAll, freePort, waitFor } from './lib/procs.mjs';
import { REPO, BIN, ARTIFACTS, NOVNC_DIR, WEB_DIR } from './lib/paths.mjs';
import { httpGet } from './lib/http.mjs';
import { makeSigningKey, sign as signTicket, startEngine } from './lib/engine.mjs';
import { launchBrowser, watchConsole, openConsole as openConsoleIn, waitState as waitStateFor, statusText, panelText, clickTool } from './lib/page.mjs';
import { readDemo, waitForKeys, startDemoServer } from './lib/demo.mjs';
import { testsNeeding } from './lib/tools.mjs';

const test = testsNeeding('page.test.mjs', ['chromium']);
const env = {};
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `page-${name}.png`) });

// ------------------------------------------------------------------ set-up

const sign = (opts) => signTicket({ key: env.signingKey, port: env.demo.rfbPort, ...opts });

// `consolegate serve` on `port` (plain ws:// on loopback) for the demo's console server.
async function startProxy(port, extra = []) {
  const proxy = start(`consolegate serve :${port}`, BIN, [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--admin-listen', 'off',
    '--allow-plain',
    '--trust', env.keyDir,
    '--allow-port', String(env.demo.rfbPort),
    '--engine-origin', env.engine.origin,
    '--web-dir', WEB_DIR,
    '--novnc-dir', NOVNC_DIR,
    ...extra,
  ], { cwd: REPO });
  await waitFor('consolegate serve to answer', async () =>
    (await httpGet(`http://127.0.0.1:${port}/consolegate/config.json`)).status === 200,
  { child: proxy });
  return proxy;
}

before(async () => {
  if (test.skipped) return;
  assert.ok(fs.existsSync(BIN), `consolegate binary not found at ${BIN}: run \`cargo build\` first or set CONSOLEGATE_BIN`);
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  env.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'consolegate-page-'));
  const { keyDir, signingKey } = await makeSigningKey(env.dir);
  Object.assign(env, { keyDir, signingKey });
  env.demo = await startDemoServer();

  env.proxyPort = await freePort();
  env.consoleUrl = `http://127.0.0.1:${env.proxyPort}/console.html`;
  env.engine = await startEngine({
    consoleUrl: env.consoleUrl,
    scenarios: {
      good: async () => ({ ticket: await sign({}), password: env.demo.password, title: 'demo VM' }),
      'no-password': async () => ({ ticket: await sign({}), title: 'demo VM' }),
      'dead-port': async () => ({ ticket: await sign({ port: env.deadPort }), password: 'x', title: 'demo VM' }),
    },
  });
  env.deadPort = await freePort();
  env.proxy = await startProxy(env.proxyPort, ['--allow-port', String(env.deadPort)]);
  ({ browser: env.browser, context: env.context } = await launchBrowser(['--disable-quic']));
});

after(async () => {
  await env.browser?.close().catch(() => {});
  env.engine?.server.close();
  await stopAll();
  if (env.dir) await fsp.rm(env.dir, { recursive: true, force: true });
});

const openConsole = (url, context = env.context) => openConsoleIn(context, url);
const waitState = (popup, state, timeout = 15000) => waitStateFor(popup, state, timeout);

// Opens the console for `scenario` and waits until the demo's picture is there.
async function connected(scenario = 'good', extra) {
  const { page, popup } = await openConsole(env.engine.page(scenario, 'window', env.consoleUrl, extra));
  await waitState(popup, 'connected');
  await waitFor('the demo picture', async () => (await readDemo(popup)) !== null);
  return { page, popup };
}

async function closeAll(...pages) {
  for (const p of pages) await p?.close().catch(() => {});
}

// ------------------------------------------------------------------ bugs

test('bug 1: Enter in the password prompt sends the password (Escape cancels)', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('no-password'));
  await popup.waitForSelector('#password-dialog[open]');
  await shot(popup, 'password-prompt');
  await popup.fill('#password-input', env.demo.password);
  await popup.press('#password-input', 'Enter');
  await waitState(popup, 'connected');
  assert.equal(await statusText(popup), 'Connected');
  await closeAll(popup, page);

  const second = await openConsole(env.engine.page('no-password'));
  await second.popup.waitForSelector('#password-dialog[open]');
  await second.popup.keyboard.press('Escape');
  await waitState(second.popup, 'disconnected');
  await closeAll(second.popup, second.page);
});

test('bug 2: after a toolbar button the keyboard is the console\'s: keys typed after Ctrl+Alt+Del reach the VM, Enter does not press the button again', { timeout: 60000 }, async () => {
  const { page, popup } = await connected();
  await popup.click('#screen canvas');
  await popup.click('#btn-cad');
  await popup.keyboard.type('ab');
  await popup.keyboard.press('Enter');
  await waitForKeys(popup, '[Ctrl+Alt+Del]ab[Enter]');
  const keys = (await readDemo(popup)).keys;
  assert.equal(keys.split('[Ctrl+Alt+Del]').length - 1, 1, `one Ctrl+Alt+Del, not two: ${keys}`);

  // Scale: Space must go to the console, not toggle scaling again.
  const scaleBefore = await popup.getAttribute('#btn-scale', 'aria-pressed');
  await popup.click('#btn-scale');
  const scaleAfter = await popup.getAttribute('#btn-scale', 'aria-pressed');
  assert.notEqual(scaleAfter, scaleBefore, 'the click toggled scaling');
  await popup.keyboard.type(' x');
  await waitForKeys(popup, '[Enter] x');
  assert.equal(await popup.getAttribute('#btn-scale', 'aria-pressed'), scaleAfter, 'Space did not toggle scaling again');
  assert.equal(await popup.evaluate(() => document.activeElement.tagName), 'CANVAS');
  await popup.click('#btn-scale');
  await closeAll(popup, page);
});

test('bug 3: a page opened without a portal says so instead of waiting forever', { timeout: 30000 }, async () => {
  const popup = await env.context.newPage();
  watchConsole(popup);
  await popup.goto(env.consoleUrl);
  await waitState(popup, 'failed', 8000);
  assert.match(await panelText(popup), /no portal opened it/);
  await shot(popup, 'no-portal');
  await closeAll(popup);
});

test('bug 3: a portal whose origin is not allowed (localhost vs 127.0.0.1) is named in a sentence', { timeout: 30000 }, async () => {
  // The same engine, reached as http://localhost: another origin, not in engine_origins.
  const { page, popup } = await openConsole(env.engine.page('good', 'window', env.consoleUrl, { host: 'localhost' }));
  const origin = `http://localhost:${env.engine.port}`;
  await waitState(popup, 'failed', 10000);
  const sentence = await panelText(popup);
  assert.match(sentence, new RegExp(`^${origin.replace(/[.]/g, '\\.')} tried to open this console, but it is not an allowed portal`));
  assert.match(await popup.textContent('#panel-detail'), new RegExp(`Allowed portals \\(web.engine_origins\\): ${env.engine.origin}`));
  assert.equal(await popup.isVisible('#panel-reconnect'), false, 'no Reconnect: there is no portal to ask');
  assert.equal(await popup.$('#screen canvas'), null, 'no console client was started');
  await shot(popup, 'origin-refused');
  await closeAll(popup, page);
});

test('bug 4: a failure is a centred panel with the sentence and a Reconnect button; the toolbar stays one row', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole(env.engine.page('dead-port'));
  await waitState(popup, 'failed');
  assert.equal(await panelText(popup), 'The console server is unreachable.');
  const stage = await popup.locator('#stage').boundingBox();
  const panel = await popup.locator('#panel').boundingBox();
  const centre = (b) => [b.x + b.width / 2, b.y + b.height / 2];
  const [sx, sy] = centre(stage);
  const [px, py] = centre(panel);
  assert.ok(Math.abs(sx - px) < 2 && Math.abs(sy - py) < 2, `panel centred in the console area (${px},${py} vs ${sx},${sy})`);
  assert.ok(await popup.isVisible('#panel-reconnect'), 'Reconnect in the panel');
  const toolbar = await popup.locator('#toolbar').boundingBox();
  const button = await popup.locator('#btn-fullscreen').boundingBox();
  assert.ok(toolbar.height < button.height * 1.6, `toolbar is one row (${toolbar.height} px, a button is ${button.height} px)`);
  await shot(popup, 'failed-panel');
  // The panel's Reconnect asks the portal for a new ticket.
  await popup.click('#panel-reconnect');
  await waitFor('the engine to be asked again', async () =>
    (await page.evaluate(() => window.engineLog)).filter((l) => l === 'got consolegate:need-ticket').length === 1);
  await waitState(popup, 'failed');
  await closeAll(popup, page);
});

test('bug 5: when the proxy goes away the page says so, tells the portal, and reconnects by itself with a fresh ticket', { timeout: 90000 }, async () => {
  const port = await freePort();
  let proxy = await startProxy(port);
  const consoleUrl = `http://127.0.0.1:${port}/console.html`;
  try {
    const { page, popup } = await openConsole(env.engine.page('good', 'window', consoleUrl));
    await waitState(popup, 'connected');
    const firstJti = await popup.evaluate(() => window.consolegate.jti);

    // The proxy dies (no drain, no close frame): the connection drops.
    proxy.kill('SIGKILL');
    await proxy.exited;
    await waitState(popup, 'reconnecting');
    assert.equal(await panelText(popup), 'The connection to the console proxy was lost.');
    await waitFor('the proxy to be named as the side that fails', async () =>
      (await panelText(popup)) === 'The console proxy does not answer.', { timeoutMs: 10000 });
    assert.match(await popup.textContent('#panel-retry'), /Reconnecting in \d+ s \(attempt \d of 8\)/);
    await shot(popup, 'reconnecting');
    const closed = await page.evaluate(() => window.closedMessages);
    assert.deepEqual(closed[0] && { code: closed[0].code, retry: closed[0].retry }, { code: 1006, retry: true });
    assert.equal(closed[0].sentence, 'The connection to the console proxy was lost.');
    assert.ok(!(await page.evaluate(() => window.engineLog)).includes('got consolegate:need-ticket'),
      'no ticket is asked for while the proxy is down');

    proxy = await startProxy(port);
    await waitState(popup, 'connected', 40000);
    const secondJti = await popup.evaluate(() => window.consolegate.jti);
    assert.ok(firstJti && secondJti && secondJti !== firstJti, 'the reconnect used a fresh ticket');
    assert.equal(await panelText(popup), null, 'the panel is gone once connected');
    await closeAll(popup, page);
  } finally {
    await stop(proxy);
  }
});

test('bug 5: Reconnect while the proxy is down blames the proxy at once, not the portal', { timeout: 60000 }, async () => {
  const port = await freePort();
  let proxy = await startProxy(port);
  const consoleUrl = `http://127.0.0.1:${port}/console.html`;
  try {
    const { page, popup } = await openConsole(env.engine.page('good', 'window', consoleUrl));
    await waitState(popup, 'connected');
    await popup.click('#btn-disconnect');
    await waitState(popup, 'disconnected');
    await stop(proxy);
    const started = Date.now();
    await popup.click('#btn-reconnect');
    await waitState(popup, 'failed', 10000);
    assert.equal(await panelText(popup), 'The console proxy does not answer.');
    assert.ok(Date.now() - started < 10000, 'said within seconds');
    const closed = await page.evaluate(() => window.closedMessages);
    assert.deepEqual(closed.map((c) => [c.refusal, c.retry]), [['user', false], ['network', false]]);
    await closeAll(popup, page);
  } finally {
    await stop(proxy);
  }
});

test('bug 5: the demo\'s own portal page: Reconnect with the proxy down says the proxy does not answer (not "the portal did not send")', { timeout: 60000 }, async () => {
  // In `consolegate demo` the portal page is served by the proxy itself: with the
  // proxy gone, the portal cannot answer either, and the page used to blame it.
  const demo = await startDemoServer();
  try {
    const page = await env.context.newPage();
    await page.goto(`${demo.base}/engine-demo.html`);
    const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#open-console')]);
    watchConsole(popup);
    await waitState(popup, 'connected');
    await clickTool(popup, '#btn-disconnect');
    await waitState(popup, 'disconnected');
    await stop(demo.proc);
    const started = Date.now();
    await clickTool(popup, '#btn-reconnect');
    await waitState(popup, 'failed', 10000);
    assert.equal(await panelText(popup), 'The console proxy does not answer.');
    assert.ok(Date.now() - started < 10000, `said within seconds (${Date.now() - started} ms)`);
    await closeAll(popup, page);
  } finally {
    await stop(demo.proc);
  }
});

test('bug 6: in a cross-origin iframe without allow="fullscreen", Full screen is disabled and says why', { timeout: 60000 }, async () => {
  for (const [allow, enabled] of [[undefined, false], ['fullscreen', true]]) {
    const page = await env.context.newPage();
    watchConsole(page);
    await page.goto(env.engine.page('good', 'iframe', env.consoleUrl, allow ? { allow } : {}));
    await page.click('#open-console');
    const frame = await waitFor('the console iframe', async () => page.frames().find((f) => f.url() === env.consoleUrl));
    await frame.waitForFunction(() => window.consolegate && window.consolegate.state === 'connected', null, { timeout: 15000 });
    assert.equal(await frame.isEnabled('#btn-fullscreen'), enabled, `allow=${allow}`);
    if (!enabled) {
      assert.equal(await frame.getAttribute('#btn-fullscreen', 'title'),
        'Full screen is not allowed here: the portal must embed this page with allow="fullscreen".');
      await shot(page, 'iframe-no-fullscreen');
    }
    await closeAll(page);
  }
});
