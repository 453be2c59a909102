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
    assert.equal(await panelText(popup), 'Disconnected.');
    await shot(popup, 'disconnected');
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

// ------------------------------------------------------------------ what console users expect

test('the keys panel sends Tab, Esc, function keys, Ctrl+Alt+F2, Ctrl+Alt+Backspace, Alt+SysRq and sticky modifiers to the server', { timeout: 60000 }, async () => {
  const { page, popup } = await connected();
  await popup.click('#screen canvas');
  await popup.click('#btn-keys');
  await shot(popup, 'keys-panel');
  const key = (selector) => popup.click(`#keys-panel ${selector}`);
  await key('[data-key="Tab"]');
  await key('[data-key="Escape"]');
  await key('[data-vt="2"]');
  await key('[data-combo="ctrl-alt-backspace"]');
  await key('[data-fkey="5"]');
  await waitForKeys(popup, '[Tab][Esc][Ctrl+Alt+F2][Ctrl+Alt+BackSpace][F5]');
  // A sticky Ctrl holds for the next key typed on the keyboard, then lets go.
  await key('[data-modifier="ctrl"]');
  assert.deepEqual(await popup.evaluate(() => window.consolegate.held), ['ctrl']);
  assert.equal(await popup.textContent('#held-keys'), 'Held: Ctrl');
  await popup.keyboard.press('c');
  await popup.keyboard.press('d');
  await waitForKeys(popup, '[Ctrl+c]d');
  assert.deepEqual(await popup.evaluate(() => window.consolegate.held), []);
  // Alt+SysRq keeps Alt for the command key; the Windows key alone reaches the VM.
  await key('[data-combo="sysrq"]');
  await popup.keyboard.press('h');
  await key('[data-modifier="super"]');
  await key('[data-modifier="super"]');
  await waitForKeys(popup, '[Ctrl+c]d[Alt+SysRq][Alt+h][Super]');
  // Two sticky modifiers and a panel key: Ctrl+Shift+Tab.
  await key('[data-modifier="ctrl"]');
  await key('[data-modifier="shift"]');
  await key('[data-key="Tab"]');
  await waitForKeys(popup, '[Super][Ctrl+Shift+Tab]');
  assert.equal(await popup.evaluate(() => document.activeElement.tagName), 'CANVAS', 'the console keeps the keyboard');
  await shot(popup, 'keys-sent');
  assert.deepEqual(popup.cspViolations, [], 'no CSP violations');
  assert.deepEqual(popup.errors, [], 'no page errors');
  await closeAll(popup, page);
});

test('paste types ü and € on a server that takes keysyms; the clipboard says what Latin-1 cannot carry', { timeout: 60000 }, async () => {
  const { page, popup } = await connected();
  await clickTool(popup, '#btn-paste');
  assert.equal(await popup.isVisible('#layout-row'), false, 'no layout to choose: the server maps characters itself');
  await popup.fill('#paste-text', 'Grüße, 5 €! ✓');
  await shot(popup, 'paste-dialog');
  await popup.click('#paste-send');
  // ✓ is not in the demo's font: it shows its code point, which proves it arrived.
  await waitForKeys(popup, 'Grüße, 5 €! [U+2713]');
  await waitFor('the typed notice', async () => (await popup.evaluate(() => window.consolegate.notice)) === 'Typed 13 characters.');

  await clickTool(popup, '#btn-paste');
  await popup.fill('#paste-text', 'Grüße €');
  await popup.click('#paste-clipboard');
  await waitFor('the clipboard text on the demo screen', async () => (await readDemo(popup)).clipboard === 'Grüße ?');
  assert.equal(await popup.evaluate(() => window.consolegate.notice),
    'Sent to the console\'s clipboard, except “€”: this console server\'s clipboard takes only Latin-1 characters, so they arrive as “?”.');
  await shot(popup, 'clipboard-latin1');
  await closeAll(popup, page);
});

test('Screenshot downloads a PNG of the console at its own resolution', { timeout: 60000 }, async () => {
  const { page, popup } = await connected();
  const [download] = await Promise.all([popup.waitForEvent('download'), clickTool(popup, '#btn-screenshot')]);
  assert.match(download.suggestedFilename(), /^demo-VM-\d{8}-\d{6}\.png$/);
  const file = path.join(ARTIFACTS, 'page-screenshot-download.png');
  await download.saveAs(file);
  const png = await fsp.readFile(file);
  assert.equal(png.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'a PNG file');
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [800, 600], 'the demo framebuffer size');
  await closeAll(popup, page);
});

test('the page speaks the browser\'s language (German, French, English), the portal\'s, and the one picked in the toolbar', { timeout: 90000 }, async () => {
  const expected = {
    'de-DE': ['de', 'Text einfügen', 'Diese Seite bekommt ihren Konsolen-Link vom Portal, und kein Portal hat sie geöffnet: Öffnen Sie die Konsole aus dem Portal.'],
    'fr-FR': ['fr', 'Coller du texte', 'Cette page reçoit son lien de console du portail, et aucun portail ne l\'a ouverte : ouvrez la console depuis le portail.'],
    'en-US': ['en', 'Paste text', 'This page gets its console link from the portal, and no portal opened it: open the console from the portal.'],
  };
  for (const [locale, [lang, paste, sentence]] of Object.entries(expected)) {
    const context = await env.browser.newContext({ locale, viewport: { width: 1024, height: 700 } });
    try {
      const popup = await context.newPage();
      watchConsole(popup);
      await popup.goto(env.consoleUrl);
      await waitState(popup, 'failed', 8000);
      assert.equal(await popup.getAttribute('html', 'lang'), lang, locale);
      assert.equal(await popup.textContent('#btn-paste'), paste, locale);
      assert.equal(await panelText(popup), sentence, locale);
      await shot(popup, `language-${lang}`);
      if (lang === 'de') {
        // Connected, in German; then the person picks French in the toolbar.
        const { page: engine, popup: console2 } = await openConsole(env.engine.page('good'), context);
        await waitState(console2, 'connected');
        assert.equal(await console2.textContent('#status'), 'Verbunden');
        await shot(console2, 'language-de-connected');
        await console2.selectOption('#lang', 'fr');
        assert.equal(await console2.textContent('#status'), 'Connecté');
        await shot(console2, 'language-fr-connected');
        assert.equal(await console2.textContent('#btn-fullscreen'), 'Plein écran');
        assert.equal(await console2.evaluate(() => document.activeElement.tagName), 'CANVAS', 'the console has the keyboard back');
        await closeAll(console2, engine);
      }
      await closeAll(popup);
    } finally {
      await context.close();
    }
  }
  // A portal may say which language its user reads (the connect message's `lang`).
  const { page, popup } = await openConsole(env.engine.page('good', 'window', env.consoleUrl, { lang: 'fr' }));
  await waitState(popup, 'connected');
  assert.equal(await popup.textContent('#status'), 'Connecté');
  await closeAll(popup, page);
});

test('a phone (390 px, touch): the toolbar fits in one row, ☰ holds the rest, the on-screen keyboard types, a tap moves the pointer', { timeout: 90000 }, async () => {
  const context = await env.browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
  try {
    const { page, popup } = await openConsole(env.engine.page('good'), context);
    await waitState(popup, 'connected');
    await waitFor('the demo picture', async () => (await readDemo(popup)) !== null);
    assert.equal(await popup.evaluate(() => window.consolegate.compact), true, 'compact toolbar');
    const toolbar = await popup.locator('#toolbar').boundingBox();
    const button = await popup.locator('#btn-keys').boundingBox();
    assert.ok(toolbar.height < button.height * 1.6, `one row: toolbar ${toolbar.height} px, a button ${button.height} px`);
    assert.ok(toolbar.width <= 390, `toolbar within the screen (${toolbar.width} px)`);
    assert.equal(await popup.evaluate(() => document.getElementById('toolbar').scrollWidth <= document.getElementById('toolbar').clientWidth), true, 'nothing hangs out of the row');
    for (const id of ['#btn-osk', '#btn-keys', '#btn-more']) assert.ok(await popup.isVisible(id), `${id} visible`);
    assert.equal(await popup.isVisible('#btn-paste'), false, 'Paste text is in the ☰ menu');
    await shot(popup, 'phone-collapsed');
    await popup.tap('#btn-more');
    assert.ok(await popup.isVisible('#btn-paste'), 'the ☰ menu shows the rest');
    await shot(popup, 'phone-menu');
    await popup.tap('#btn-more');
    // The keys panel fits the phone's width; its keys are big enough for a finger.
    await popup.tap('#btn-keys');
    const keysPanel = await popup.locator('#keys-panel').boundingBox();
    assert.ok(keysPanel.x >= 0 && keysPanel.x + keysPanel.width <= 390, `keys panel within the screen (${JSON.stringify(keysPanel)})`);
    const tab = await popup.locator('#keys-panel [data-key="Tab"]').boundingBox();
    assert.ok(tab.height >= 30, `a key is ${tab.height} px high`);
    await popup.tap('#keys-panel [data-vt="1"]');
    await waitForKeys(popup, '[Ctrl+Alt+F1]');
    await shot(popup, 'phone-keys');
    await popup.tap('#btn-keys');

    // The on-screen keyboard: a phone's keyboard types into the hidden field.
    await popup.tap('#btn-osk');
    assert.equal(await popup.evaluate(() => document.activeElement.id), 'osk-input');
    await popup.keyboard.insertText('hi ü');
    await waitForKeys(popup, 'hi ü');
    await popup.keyboard.insertText('x');
    await popup.keyboard.press('Backspace');
    await popup.keyboard.press('Enter');
    await waitForKeys(popup, '[Ctrl+Alt+F1]hi ü[Enter]');

    // noVNC's touch gestures: a tap is a click where the finger was.
    const canvas = await popup.locator('#screen canvas').boundingBox();
    await popup.touchscreen.tap(canvas.x + canvas.width * 0.25, canvas.y + canvas.height * 0.5);
    const pointer = await waitFor('the demo to show the tapped position', async () => {
      const m = (await readDemo(popup)).pointer.match(/^pointer (\d+),(\d+) buttons/);
      return m ? [Number(m[1]), Number(m[2])] : null;
    });
    assert.ok(Math.abs(pointer[0] - 200) <= 4 && Math.abs(pointer[1] - 300) <= 4, `tap at 200,300 in the framebuffer, got ${pointer}`);
    await shot(popup, 'phone-typed');
    assert.deepEqual(popup.cspViolations, [], 'no CSP violations');
    assert.deepEqual(popup.errors, [], 'no page errors');
    await closeAll(popup, page);
  } finally {
    await context.close();
  }
});

test('the page warns before limits.max_duration ends the session, then says why it ended', { timeout: 60000 }, async () => {
  const port = await freePort();
  const proxy = await startProxy(port, ['--max-duration', '6s']);
  try {
    const config = JSON.parse((await httpGet(`http://127.0.0.1:${port}/consolegate/config.json`)).body);
    assert.equal(config.max_duration_s, 6);
    const { page, popup } = await openConsole(env.engine.page('good', 'window', `http://127.0.0.1:${port}/console.html`));
    await waitState(popup, 'connected');
    const warned = await waitFor('the warning', async () => {
      const notice = await popup.evaluate(() => window.consolegate.notice);
      return notice && notice.startsWith('This session ends in') ? notice : null;
    }, { timeoutMs: 8000 });
    assert.match(warned, /^This session ends in 0:0[1-3]: this console proxy allows sessions of at most 6 s\. Reconnect afterwards to go on\.$/);
    assert.equal(await popup.evaluate(() => window.consolegate.state), 'connected', 'warned before the end');
    assert.match(await popup.textContent('#session-timer'), /^Ends in 0:0\d$/);
    await shot(popup, 'session-ending');
    await waitState(popup, 'failed', 10000);
    assert.equal(await panelText(popup), 'The session reached the longest time this console proxy allows (6 s): reconnect to start a new one.');
    await closeAll(popup, page);
  } finally {
    await stop(proxy);
  }
});

test('full screen locks the keyboard (Keyboard Lock), so Esc, Alt+Tab and the Windows key go to the console', { timeout: 60000 }, async () => {
  const { page, popup } = await connected();
  await clickTool(popup, '#btn-fullscreen');
  await popup.waitForFunction(() => document.fullscreenElement && window.consolegate.keyboardLocked, null, { timeout: 5000 });
  assert.equal(await popup.textContent('#btn-fullscreen'), 'Leave full screen');
  assert.match(await popup.evaluate(() => window.consolegate.notice), /^Full screen: Esc, Alt\+Tab and the Windows key now go to the console/);
  await popup.click('#screen canvas');
  await popup.keyboard.press('Meta');
  await popup.keyboard.press('Escape');
  await waitForKeys(popup, '[Super][Esc]');
  await shot(popup, 'fullscreen');
  await clickTool(popup, '#btn-fullscreen');
  await popup.waitForFunction(() => !document.fullscreenElement && !window.consolegate.keyboardLocked, null, { timeout: 5000 });
  await closeAll(popup, page);
});
