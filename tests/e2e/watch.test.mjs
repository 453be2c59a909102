// End-to-end test of live watching in a real browser (Debian's chromium driven by
// playwright-core), through a real `consolegate serve`, against QEMU's VNC server with
// a password and `bc` on a serial line behind socat:
//   - a user's console page and a watcher's (a `view` ticket) open at the same time;
//     the watcher's page says "View only" and offers no input buttons; the keys typed
//     in the watcher's page (also with the page's own guard switched off, as a
//     tampered page would) change nothing on the VM; the same key typed by the user
//     does, and the watcher's canvas shows it; the user's session stays up;
//   - a serial view ticket: the page says "View only", and what is typed reaches
//     nothing.
// Screenshots: tests/artifacts/watch-user.png, watch-watcher.png, watch-serial.png.
//
//   node --test tests/e2e/watch.test.mjs     (from the repository root; `cargo build` first)
//
// Without chromium, QEMU, socat or bc the file's tests are skipped with a SKIPPED line
// (under CI=true they fail).
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { start, stopAll, freePort, freePortIn, waitFor, sleep, tcpOpen } from './lib/procs.mjs';
import { qmpConnect } from './lib/qmp.mjs';
import { startSeaBiosQemu, startBcSerial } from './lib/consoles.mjs';
import { REPO, BIN, ARTIFACTS, NOVNC_DIR, WEB_DIR } from './lib/paths.mjs';
import { httpGet } from './lib/http.mjs';
import { makeSigningKey, sign as signTicket, startEngine } from './lib/engine.mjs';
import { launchBrowser, openConsole as openConsoleIn, waitState, canvasStats } from './lib/page.mjs';
import { testsNeeding } from './lib/tools.mjs';

const test = testsNeeding('watch.test.mjs', ['chromium', 'qemu', 'socat', 'bc']);

const VNC_PASSWORD = 'e2e-Wat1';
const XTERM_DIR = path.join(REPO, 'web/node_modules/@xterm');
// SeaBIOS's boot menu appears on text rows 6 and 7 (16 px rows) after Escape.
const MENU_ROWS = [96, 112];
// How long keys from the watcher get to show an effect they must not have. Not a wait
// for something to happen (that would be a waitFor): a bounded look at the absence of
// a change. QEMU shows a key on SeaBIOS's screen well within this (the user's Escape
// below, waited for, proves the same key does change it).
const QUIET_MS = 3000;

const env = {};

const startQemu = (dir) => startSeaBiosQemu(dir, 'qemu (watch)', VNC_PASSWORD);

const startSerial = () => startBcSerial('socat bc (watch)');

// What the toolbar offers: the badge and the input buttons.
function toolbar(popup) {
  return popup.evaluate(() => {
    const badge = document.getElementById('view-only');
    const disabled = (id) => document.getElementById(id).disabled;
    return {
      viewOnly: window.consolegate.viewOnly,
      badge: badge.hidden ? null : badge.textContent,
      badgeShown: !badge.hidden && badge.getBoundingClientRect().width > 0,
      cad: disabled('btn-cad'),
      keys: disabled('btn-keys'),
      paste: disabled('btn-paste'),
      osk: disabled('btn-osk'),
    };
  });
}

const menuLit = async (popup) => (await canvasStats(popup, MENU_ROWS)).lit;

// The session end line of the proxy's log for a view session: how much input it dropped.
function viewSessionEnds() {
  return [...env.proxy.output.matchAll(/session ended.* view=true input_dropped=(\d+)/g)].map((m) => Number(m[1]));
}

before(async () => {
  if (test.skipped) return;
  assert.ok(fs.existsSync(BIN), `consolegate binary not found at ${BIN}: run \`cargo build\` first`);
  assert.ok(fs.existsSync(path.join(XTERM_DIR, 'xterm/lib/xterm.mjs')), `xterm.js not found in ${XTERM_DIR}: run \`npm ci\` in web/`);
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  env.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'consolegate-watch-'));
  const { keyDir, signingKey } = await makeSigningKey(env.dir);
  const q = await startQemu(env.dir);
  Object.assign(env, { qemu: q.qemu, qmp: q.qmp, vncPort: q.port });
  const s = await startSerial();
  Object.assign(env, { socat: s.socat, serialPort: s.port });
  env.proxyPort = await freePort();
  const sign = (opts) => signTicket({ key: signingKey, ...opts });
  env.engine = await startEngine({
    consoleUrl: `http://127.0.0.1:${env.proxyPort}/console.html`,
    scenarios: {
      user: async () => ({ ticket: await sign({ port: env.vncPort, sub: 'alice' }), password: VNC_PASSWORD, title: 'e2e watched VM' }),
      watch: async () => ({ ticket: await sign({ port: env.vncPort, sub: 'auditor', view: true }), password: VNC_PASSWORD, title: 'e2e watched VM' }),
      'watch-serial': async () => ({ ticket: await sign({ port: env.serialPort, kind: 'serial', sub: 'auditor', view: true }), title: 'e2e watched serial' }),
    },
  });
  env.proxy = start('consolegate serve (watch)', BIN, [
    'serve',
    '--listen', `127.0.0.1:${env.proxyPort}`,
    '--admin-listen', 'off',
    '--allow-plain',
    '--trust', keyDir,
    '--allow-port', String(env.vncPort),
    '--allow-serial-port', String(env.serialPort),
    '--engine-origin', env.engine.origin,
    '--web-dir', WEB_DIR,
    '--novnc-dir', NOVNC_DIR,
    '--xterm-dir', XTERM_DIR,
  ], { cwd: REPO });
  await waitFor('consolegate serve to answer', async () =>
    (await httpGet(`http://127.0.0.1:${env.proxyPort}/consolegate/config.json`)).status === 200,
  { child: env.proxy });
  ({ browser: env.browser, context: env.context } = await launchBrowser());
});

after(async () => {
  await env.browser?.close().catch(() => {});
  env.engine?.server.close();
  env.qmp?.close();
  await stopAll();
  if (env.dir) await fsp.rm(env.dir, { recursive: true, force: true });
});

test('a watcher sees the user\'s screen live, and nothing the watcher types reaches the VM', { timeout: 120000 }, async () => {
  const user = await openConsoleIn(env.context, env.engine.page('user'));
  await waitState(user.popup, 'connected', 20000);
  await waitFor('the SeaBIOS screen on the user\'s page', async () => {
    const s = await canvasStats(user.popup);
    return s && s.lit > 200 ? s : null;
  });

  const watcher = await openConsoleIn(env.context, env.engine.page('watch'));
  await waitState(watcher.popup, 'connected', 20000);
  await waitFor('the SeaBIOS screen on the watcher\'s page', async () => {
    const s = await canvasStats(watcher.popup);
    return s && s.lit > 200 ? s : null;
  });

  // The watcher's page says so and offers no input; the user's offers it all.
  assert.deepEqual(await toolbar(watcher.popup), {
    viewOnly: true, badge: 'View only', badgeShown: true, cad: true, keys: true, paste: true, osk: true,
  });
  assert.deepEqual(await toolbar(user.popup), {
    viewOnly: false, badge: null, badgeShown: false, cad: false, keys: false, paste: false, osk: false,
  });

  assert.equal(await menuLit(user.popup), 0, 'no boot menu yet');
  assert.equal(await menuLit(watcher.popup), 0, 'no boot menu yet');

  // The watcher presses Escape: the page sends nothing (noVNC's viewOnly). Then the
  // page's guard is switched off, as a tampered page would, and Escape, a Ctrl+Alt+Del
  // and a mouse click go out: the proxy drops them.
  await watcher.popup.click('#screen canvas');
  await watcher.popup.keyboard.press('Escape');
  await watcher.popup.evaluate(() => { window.consolegate.rfb.viewOnly = false; });
  await watcher.popup.click('#screen canvas');
  await watcher.popup.keyboard.press('Escape');
  await watcher.popup.evaluate(() => {
    window.consolegate.rfb.sendKey(0xff1b, 'Escape');
    window.consolegate.rfb.sendCtrlAltDel();
  });
  await sleep(QUIET_MS);
  assert.equal(await menuLit(user.popup), 0, 'the watcher\'s keys did not reach the VM');
  assert.equal(await menuLit(watcher.popup), 0, 'the watcher\'s keys did not reach the VM');

  // The user presses the same key: the VM shows its boot menu, on both pages.
  await user.popup.click('#screen canvas');
  await user.popup.keyboard.press('Escape');
  await waitFor('the boot menu on the user\'s page', async () => (await menuLit(user.popup)) > 50, { timeoutMs: 15000 });
  await waitFor('the boot menu on the watcher\'s page', async () => (await menuLit(watcher.popup)) > 50, { timeoutMs: 15000 });
  await user.popup.screenshot({ path: path.join(ARTIFACTS, 'watch-user.png') });
  await watcher.popup.screenshot({ path: path.join(ARTIFACTS, 'watch-watcher.png') });

  // Both sessions are up; the watcher leaves, the user stays.
  assert.equal(await user.popup.evaluate(() => window.consolegate.state), 'connected');
  assert.equal(await watcher.popup.evaluate(() => window.consolegate.state), 'connected');
  await watcher.popup.click('#btn-disconnect');
  await waitState(watcher.popup, 'disconnected', 10000);
  const dropped = await waitFor('the watcher\'s session end in the proxy\'s log', () => viewSessionEnds()[0], { timeoutMs: 10000, child: env.proxy });
  assert.ok(dropped >= 4, `the proxy dropped the watcher's input (${dropped} messages)`);
  assert.equal(await user.popup.evaluate(() => window.consolegate.state), 'connected', 'the user\'s session stays up');
  assert.deepEqual(watcher.popup.errors, [], 'no page errors');
  assert.deepEqual(watcher.popup.cspViolations, []);
  await watcher.popup.close();
  await watcher.page.close();
  await user.popup.close();
  await user.page.close();
});

test('a serial view ticket: the page says View only, and typing reaches nothing', { timeout: 60000 }, async () => {
  const ended = viewSessionEnds().length;
  const { page, popup } = await openConsoleIn(env.context, env.engine.page('watch-serial'));
  await waitState(popup, 'connected', 20000);
  const bar = await toolbar(popup);
  assert.equal(bar.badge, 'View only');
  assert.ok(bar.keys && bar.paste && bar.osk, 'no input buttons');
  // xterm.js takes no typing; with that switched off, the proxy drops the bytes and
  // bc (one per connection behind socat) never answers.
  await popup.click('#screen .xterm');
  await popup.keyboard.type('6*7');
  await popup.keyboard.press('Enter');
  await popup.evaluate(() => { window.consolegate.client.term.options.disableStdin = false; });
  await popup.click('#screen .xterm');
  await popup.keyboard.type('6*7');
  await popup.keyboard.press('Enter');
  await sleep(QUIET_MS);
  assert.doesNotMatch(await popup.textContent('#screen .xterm-rows'), /42/, 'bc got no input');
  await popup.screenshot({ path: path.join(ARTIFACTS, 'watch-serial.png') });
  await popup.click('#btn-disconnect');
  await waitState(popup, 'disconnected', 10000);
  await waitFor('the serial view session\'s end in the proxy\'s log', () => viewSessionEnds().length > ended || null, { timeoutMs: 10000, child: env.proxy });
  const serialDropped = viewSessionEnds().at(-1);
  assert.ok(serialDropped >= 4, `the proxy dropped the typed bytes (${serialDropped})`);
  await popup.close();
  await page.close();
});
