// End-to-end test of the SPICE and serial consoles in a real browser (Debian's
// chromium driven by playwright-core), through a real `consolegate serve` with
// single-use tickets and per-kind ports:
//   - SPICE: QEMU's own SPICE server with a password, shown by spice-html5;
//   - serial: `bc` on a pty behind socat's TCP listener (any TCP serial console
//     looks the same to the proxy), shown by xterm.js;
//   - a serial ticket naming the SPICE port is refused with its own sentence.
//
//   node --test tests/e2e/kinds.test.mjs     (from the repository root; `cargo build` first)
//
// E2E_SPICE_DIR=/usr/share/spice-html5 runs the SPICE test on Debian's spice-html5.
// Without chromium, QEMU, socat or bc the file's tests are skipped with a SKIPPED
// line (under CI=true they fail).
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { start, stopAll, freePort, freePortIn, waitFor, tcpOpen } from './lib/procs.mjs';
import { startBcSerial } from './lib/consoles.mjs';
import { qmpConnect, qemuScreenSize } from './lib/qmp.mjs';
import { REPO, BIN, ARTIFACTS, WEB_DIR } from './lib/paths.mjs';
import { httpGet } from './lib/http.mjs';
import { makeSigningKey, sign as signTicket, startEngine as startEngineWith } from './lib/engine.mjs';
import { launchBrowser, openConsole as openConsoleIn, waitState as waitStateFor, statusText, canvasStats as spiceCanvasStats, urlsWithTickets } from './lib/page.mjs';
import { testsNeeding } from './lib/tools.mjs';

const test = testsNeeding('kinds.test.mjs', ['chromium', 'qemu', 'socat', 'bc']);

const SPICE_DIR = process.env.E2E_SPICE_DIR || path.join(REPO, 'web/node_modules/@spice-project/spice-html5/src');
const XTERM_DIR = path.join(REPO, 'web/node_modules/@xterm');
const SPICE_PASSWORD = 'e2e-spice-Pw';

const TEXT = {
  wrongKindPort: 'This console proxy does not allow this type of console on that port: ask the administrator.',
  wrongSpicePassword: 'Wrong SPICE password.',
  serverClosed: 'The console server closed the connection.',
};

const env = {};

// ------------------------------------------------------------------ set-up helpers

async function startSpiceQemu(dir) {
  const port = await freePortIn(5900, 6923);
  const qmpPath = path.join(dir, 'qmp.sock');
  const qemu = start('qemu (spice)', 'qemu-system-x86_64', [
    '-machine', 'accel=tcg', '-display', 'none', '-nodefaults', '-vga', 'qxl', '-m', '64',
    '-object', `secret,id=spicepw,data=${SPICE_PASSWORD}`,
    '-spice', `port=${port},addr=127.0.0.1,password-secret=spicepw`,
    '-qmp', `unix:${qmpPath},server,nowait`,
    // SeaBIOS waits at "Press ESC for boot menu": a key typed in the browser then
    // visibly changes the screen, which proves input reaches the VM.
    '-boot', 'menu=on,splash-time=60000',
  ]);
  await waitFor('QEMU QMP socket', () => fs.existsSync(qmpPath), { child: qemu });
  await waitFor('QEMU SPICE port', () => tcpOpen(port), { child: qemu });
  const qmp = await qmpConnect(qmpPath);
  return { qemu, qmp, port };
}

const startSerial = () => startBcSerial('socat bc');

const sign = (opts) => signTicket({ key: env.signingKey, ...opts });

// The engine: tests/e2e/engine.html on its own origin plus POST /ticket.
function startEngine(consoleUrl) {
  return startEngineWith({
    consoleUrl,
    scenarios: {
      spice: async () => ({ ticket: await sign({ port: env.spicePort, kind: 'spice' }), password: SPICE_PASSWORD, title: 'e2e SPICE VM' }),
      'spice-no-password': async () => ({ ticket: await sign({ port: env.spicePort, kind: 'spice' }), title: 'e2e SPICE VM' }),
      'spice-wrong-password': async () => ({ ticket: await sign({ port: env.spicePort, kind: 'spice' }), password: 'wrong!', title: 'e2e SPICE VM' }),
      serial: async () => ({ ticket: await sign({ port: env.serialPort, kind: 'serial' }), title: 'e2e serial' }),
      'serial-to-spice-port': async () => ({ ticket: await sign({ port: env.spicePort, kind: 'serial' }), title: 'e2e serial' }),
      'vnc-to-serial-port': async () => ({ ticket: await sign({ port: env.serialPort }), password: 'x', title: 'e2e VM' }),
    },
  });
}

// ------------------------------------------------------------------ browser helpers

const openConsole = (scenario) => openConsoleIn(env.context, env.engine.page(scenario));
const waitState = (popup, state, timeout = 20000) => waitStateFor(popup, state, timeout);

// The serial terminal's lines, as xterm.js holds them.
function terminalLines(popup) {
  return popup.evaluate(() => {
    const term = window.consolegate.client && window.consolegate.client.term;
    if (!term) return null;
    const buf = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
    return lines;
  });
}

// ------------------------------------------------------------------ set-up and tear-down

before(async () => {
  if (test.skipped) return;
  assert.ok(fs.existsSync(BIN), `consolegate binary not found at ${BIN}: run \`cargo build\` first`);
  assert.ok(fs.existsSync(path.join(SPICE_DIR, 'main.js')), `spice-html5 not found in ${SPICE_DIR}: run \`npm ci\` in web/`);
  assert.ok(fs.existsSync(path.join(XTERM_DIR, 'xterm/lib/xterm.mjs')), `xterm.js not found in ${XTERM_DIR}: run \`npm ci\` in web/`);
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  env.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'consolegate-kinds-'));

  const { keyDir, signingKey } = await makeSigningKey(env.dir);
  env.signingKey = signingKey;

  const q = await startSpiceQemu(env.dir);
  Object.assign(env, { qemu: q.qemu, qmp: q.qmp, spicePort: q.port });
  const s = await startSerial();
  Object.assign(env, { socat: s.socat, serialPort: s.port });

  env.proxyPort = await freePort();
  env.consoleUrl = `http://127.0.0.1:${env.proxyPort}/console.html`;
  env.engine = await startEngine(env.consoleUrl);
  // Plain ws:// on loopback (the TLS front is console.test.mjs's); single-use
  // tickets, so the SPICE test proves one ticket opens all of SPICE's channels.
  env.proxy = start('consolegate serve (kinds)', BIN, [
    'serve',
    '--listen', `127.0.0.1:${env.proxyPort}`,
    '--admin-listen', 'off',
    '--allow-plain',
    '--trust', keyDir,
    '--single-use',
    '--allow-spice-port', String(env.spicePort),
    '--allow-serial-port', String(env.serialPort),
    '--engine-origin', env.engine.origin,
    '--web-dir', WEB_DIR,
    '--spice-dir', SPICE_DIR,
    '--xterm-dir', XTERM_DIR,
  ], { cwd: REPO });
  await waitFor('consolegate serve to answer', async () =>
    (await httpGet(`http://127.0.0.1:${env.proxyPort}/consolegate/config.json`)).status === 200,
  { child: env.proxy });

  ({ browser: env.browser, context: env.context } = await launchBrowser(['--disable-quic']));
});

after(async () => {
  await env.browser?.close().catch(() => {});
  env.qmp?.close();
  env.engine?.server.close();
  await stopAll();
  if (env.dir) await fsp.rm(env.dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

test('SPICE: one single-use ticket opens every channel; the display shows and a key reaches the VM', { timeout: 120000 }, async () => {
  const { page, popup } = await openConsole('spice');
  await waitState(popup, 'connected');
  assert.equal(await statusText(popup), 'Connected');
  assert.equal(await popup.textContent('#title'), 'e2e SPICE VM');
  assert.equal(popup.url(), env.consoleUrl, 'nothing secret in the URL');

  const size = await qemuScreenSize(env.qmp, env.dir);
  const stats = await waitFor('a non-blank SPICE display', async () => {
    const st = await spiceCanvasStats(popup);
    return st && st.lit > 200 && st.colours >= 2 ? st : null;
  }, { timeoutMs: 30000 });
  assert.equal(stats.width, size.width, 'canvas width is QEMU\'s');
  assert.equal(stats.height, size.height, 'canvas height is QEMU\'s');

  // SeaBIOS's boot menu appears on text row 6 (16 px rows) after Escape.
  const menuRows = [96, 112];
  assert.equal((await spiceCanvasStats(popup, menuRows)).lit, 0, 'boot menu row is blank before the key');
  await popup.click('#screen canvas');
  await popup.keyboard.press('Escape');
  await waitFor('the boot menu after Escape', async () => (await spiceCanvasStats(popup, menuRows)).lit > 50, { timeoutMs: 15000 });
  await popup.screenshot({ path: path.join(ARTIFACTS, 'console-spice.png') });

  // A grey key (arrow) goes out as the 0xE0-prefixed scancode pair, whichever
  // spice-html5 is installed (npm's 0.2.1 alone would garble it).
  await popup.evaluate(() => {
    const inputs = window.consolegate.client.sc.inputs;
    const send = inputs.send_msg.bind(inputs);
    window.sentKeys = [];
    inputs.send_msg = (msg) => {
      if (msg.type === 101 || msg.type === 102) window.sentKeys.push(new DataView(msg.data).getUint32(0, true));
      return send(msg);
    };
  });
  await popup.keyboard.press('ArrowDown');
  assert.deepEqual(await popup.evaluate(() => window.sentKeys), [0x50e0, 0xd0e0], 'Down: E0 50, then E0 D0');

  // Every channel came through the proxy with the same single-use ticket, which
  // travelled in a subprotocol: no channel's URL holds it.
  const opened = (env.proxy.output.match(/session opened/g) || []).length;
  assert.ok(opened >= 4, `main, display, inputs and cursor channels opened (${opened} sessions)`);
  const urls = urlsWithTickets(popup);
  assert.ok(urls.count >= 4, `every channel's WebSocket was seen (${urls.count})`);
  assert.deepEqual(urls.bad, [], 'no SPICE channel carried the ticket in its URL');
  assert.deepEqual(popup.cspViolations, [], 'no CSP violations');
  assert.deepEqual(popup.errors, [], 'no page errors');
  await popup.click('#btn-disconnect');
  await waitState(popup, 'disconnected');
  await popup.close();
  await page.close();
});

test('SPICE: Enter in the password prompt sends the password; the keys panel sends Ctrl+Alt+F2 as scancodes', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole('spice-no-password');
  await popup.waitForSelector('#password-dialog[open]');
  assert.equal(await popup.textContent('#password-label'), 'The console asks for its SPICE password');
  await popup.fill('#password-input', SPICE_PASSWORD);
  await popup.press('#password-input', 'Enter');
  await waitState(popup, 'connected');
  await waitFor('the SPICE inputs channel', () => popup.evaluate(() => window.consolegate.client.sc.inputs?.state === 'ready'));
  await popup.evaluate(() => {
    const inputs = window.consolegate.client.sc.inputs;
    const send = inputs.send_msg.bind(inputs);
    window.sentKeys = [];
    inputs.send_msg = (msg) => {
      if (msg.type === 101 || msg.type === 102) window.sentKeys.push(new DataView(msg.data).getUint32(0, true));
      return send(msg);
    };
  });
  await popup.click('#btn-keys');
  await popup.click('#keys-panel [data-vt="2"]');
  // Ctrl down, Alt down, F2 down/up, Alt up, Ctrl up (set 1; up = down | 0x80).
  assert.deepEqual(await popup.evaluate(() => window.sentKeys), [0x1d, 0x38, 0x3c, 0xbc, 0xb8, 0x9d]);
  await popup.close();
  await page.close();
});

test('SPICE: a wrong password shows its sentence', { timeout: 60000 }, async () => {
  const { page, popup } = await openConsole('spice-wrong-password');
  await waitState(popup, 'failed');
  assert.equal(await statusText(popup), TEXT.wrongSpicePassword);
  await popup.close();
  await page.close();
});

test('serial: typed input reaches bc, its answer appears in the terminal, the terminal follows the window', { timeout: 90000 }, async () => {
  const { page, popup } = await openConsole('serial');
  await waitState(popup, 'connected');
  assert.equal(await statusText(popup), 'Connected');
  assert.equal(await popup.textContent('#title'), 'e2e serial');
  await popup.click('#screen .xterm');
  await popup.keyboard.type('2+2');
  await popup.keyboard.press('Enter');
  const lines = await waitFor('bc\'s answer in the terminal', async () => {
    const l = await terminalLines(popup);
    return l && l.some((line) => line.trim() === '4') ? l : null;
  }, { timeoutMs: 15000 }).catch(async (err) => {
    throw new Error(`${err.message}; terminal: ${JSON.stringify(await terminalLines(popup))}`);
  });
  assert.ok(lines.some((line) => line.includes('2+2')), 'the typed line is echoed by the pty');
  // What a person sees: the answer is in the terminal's rendered rows too. xterm
  // draws on the next animation frame, so give the renderer a moment to catch up
  // with the buffer (it once lagged under load).
  const rendered = await waitFor('the answer drawn in the terminal', async () => {
    const text = await popup.textContent('#screen .xterm-rows');
    return /2\+2\s*4/.test(text) ? text : null;
  }, { timeoutMs: 5000 }).catch(async () => popup.textContent('#screen .xterm-rows'));
  assert.match(rendered, /2\+2\s*4/);

  // The paste dialog types into the serial line as well.
  await popup.click('#btn-paste');
  await popup.fill('#paste-text', '6*7\n');
  await popup.click('#paste-send');
  await waitFor('bc\'s answer to the pasted line', async () =>
    (await terminalLines(popup)).some((line) => line.trim() === '42'), { timeoutMs: 15000 });
  await popup.screenshot({ path: path.join(ARTIFACTS, 'console-serial.png') });

  const before = await popup.evaluate(() => [window.consolegate.client.term.cols, window.consolegate.client.term.rows]);
  await popup.setViewportSize({ width: 640, height: 420 });
  const after = await waitFor('the terminal to shrink with the window', async () => {
    const now = await popup.evaluate(() => [window.consolegate.client.term.cols, window.consolegate.client.term.rows]);
    return now[0] < before[0] && now[1] < before[1] ? now : null;
  }, { timeoutMs: 15000 });
  assert.ok(after[0] >= 40 && after[1] >= 10, `terminal ${after} in a 640x420 window`);
  const urls = urlsWithTickets(popup);
  assert.equal(urls.count, 1, 'one WebSocket for the serial line');
  assert.deepEqual(urls.bad, [], 'the serial WebSocket carried the ticket in no URL');
  assert.deepEqual(popup.cspViolations, [], 'no CSP violations');
  assert.deepEqual(popup.errors, [], 'no page errors');

  // The keys panel on a serial line: Tab and Esc are offered, Ctrl+Alt+Del is not;
  // a sticky Ctrl turns the next letter into its control character. Ctrl+D ends bc:
  // socat closes the TCP connection, the proxy closes with 1000.
  await popup.click('#btn-keys');
  assert.equal(await popup.isEnabled('#keys-panel [data-key="Tab"]'), true);
  assert.equal(await popup.isEnabled('#keys-panel [data-combo="ctrl-alt-del"]'), false);
  assert.equal(await popup.isEnabled('#btn-cad'), false);
  await popup.click('#keys-panel [data-modifier="ctrl"]');
  assert.deepEqual(await popup.evaluate(() => window.consolegate.held), ['ctrl']);
  await popup.keyboard.type('d');
  await waitState(popup, 'failed');
  assert.equal(await statusText(popup), TEXT.serverClosed);
  await popup.close();
  await page.close();
});

test('a ticket whose kind does not match the port is refused with its own sentence', { timeout: 60000 }, async () => {
  for (const scenario of ['serial-to-spice-port', 'vnc-to-serial-port']) {
    const { page, popup } = await openConsole(scenario);
    await waitState(popup, 'failed');
    assert.equal(await statusText(popup), TEXT.wrongKindPort, scenario);
    const detail = await popup.evaluate(() => window.consolegate.detail);
    assert.match(detail, /is not allowed for (serial|vnc) consoles \(it is allowed for [a-z ]+\)/, scenario);
    await popup.close();
    await page.close();
  }
});
