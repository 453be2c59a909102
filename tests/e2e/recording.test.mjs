// End-to-end test of session recording in a real browser (Debian's chromium driven by
// playwright-core): a `consolegate serve` recording every session, QEMU's VNC server
// and `bc` on a serial line behind socat, the console page, then web/player.html
// replaying what was recorded:
//   - VNC: the player's last frame matches the last frame the live page showed
//     (pixel comparison with a small tolerance), and the file's digest is the one on
//     the session's end log line;
//   - serial: the player (asciinema-player) shows bc's answer.
// Screenshots of both pages go to tests/artifacts/.
//
//   node --test tests/e2e/recording.test.mjs     (from the repository root; `cargo build` first)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { start, stopAll, run, freePort, freePortIn, waitFor, sleep, tcpOpen } from './lib/procs.mjs';
import { qmpConnect } from './lib/qmp.mjs';
import { startSeaBiosQemu, startBcSerial } from './lib/consoles.mjs';
import { REPO, BIN, ARTIFACTS, NOVNC_DIR } from './lib/paths.mjs';
import { httpGet } from './lib/http.mjs';
import { makeSigningKey, sign as signTicket, startEngine } from './lib/engine.mjs';
import { launchBrowser, watchConsole, openConsole as openConsoleIn, waitState, canvasStats } from './lib/page.mjs';

const VNC_PASSWORD = 'e2e-Rec1';
const XTERM_DIR = path.join(REPO, 'web/node_modules/@xterm');
const ASCIINEMA_DIR = path.join(REPO, 'web/node_modules/asciinema-player/dist/bundle');
// A pixel differs when a channel is off by more than this; at most this share of
// pixels may differ (noVNC draws the same bytes the same way: the tolerance only
// absorbs a cursor or a last update racing the capture).
const CHANNEL_TOLERANCE = 8;
const MAX_DIFFERING = 0.005;

const env = {};

const startQemu = (dir) => startSeaBiosQemu(dir, 'qemu (recording)', VNC_PASSWORD);

const startSerial = () => startBcSerial('socat bc (recording)');

// The recordings in the directory, by name.
const recordings = async () => (await fsp.readdir(env.recDir)).filter((n) => /\.(vncrec|cast)$/.test(n)).sort();

// Waits for the session's end log line with its recording and returns { name, sha256 }.
async function endLine(name) {
  return waitFor(`the end log line of ${name}`, () => {
    const m = env.proxy.output.match(new RegExp(`session ended.*recording=${name.replace('.', '\\.')} recording_sha256=([0-9a-f]{64})`));
    return m ? { name, sha256: m[1] } : null;
  }, { timeoutMs: 15000, child: env.proxy });
}

// `consolegate recording verify FILE`: its sha256 line, and it must say intact.
async function verify(file) {
  const out = await run(BIN, ['recording', 'verify', file]);
  assert.match(out, /integrity\s+intact/);
  return out.match(/sha256\s+([0-9a-f]{64})/)[1];
}

// The console canvas's pixels (RGBA), base64, with its size.
function canvasPixels(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#screen canvas');
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let s = '';
    for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
    return { width: c.width, height: c.height, rgba: btoa(s) };
  });
}

function compareFrames(a, b) {
  assert.equal(b.width, a.width, 'same framebuffer width');
  assert.equal(b.height, a.height, 'same framebuffer height');
  const x = Buffer.from(a.rgba, 'base64');
  const y = Buffer.from(b.rgba, 'base64');
  let differing = 0;
  for (let i = 0; i < x.length; i += 4) {
    if (Math.abs(x[i] - y[i]) > CHANNEL_TOLERANCE || Math.abs(x[i + 1] - y[i + 1]) > CHANNEL_TOLERANCE
      || Math.abs(x[i + 2] - y[i + 2]) > CHANNEL_TOLERANCE) differing++;
  }
  return differing / (x.length / 4);
}

// Opens web/player.html from the proxy and loads `file` through its file picker.
async function openPlayer(file) {
  const page = await env.context.newPage();
  page.setDefaultTimeout(20000);
  watchConsole(page);
  await page.goto(`http://127.0.0.1:${env.proxyPort}/player.html`);
  await page.setInputFiles('#file-input', file);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 20000 })
    .catch(async (err) => { throw new Error(`${err.message}; status: ${await page.textContent('#status')}`); });
  return page;
}

async function playToEnd(page) {
  await page.selectOption('#speed', '16');
  await page.click('#btn-play');
  await page.waitForFunction(() => document.body.dataset.state === 'ended', null, { timeout: 30000 })
    .catch(async (err) => { throw new Error(`${err.message}; status: ${await page.textContent('#status')}`); });
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `consolegate binary not found at ${BIN}: run \`cargo build\` first`);
  assert.ok(fs.existsSync(path.join(ASCIINEMA_DIR, 'asciinema-player.min.js')), `asciinema-player not found in ${ASCIINEMA_DIR}: run \`npm ci\` in web/`);
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  env.dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'consolegate-rec-'));
  env.recDir = path.join(env.dir, 'recordings');
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
      vnc: async () => ({ ticket: await sign({ port: env.vncPort, sub: 'auditor-test' }), password: VNC_PASSWORD, title: 'e2e recorded VM' }),
      serial: async () => ({ ticket: await sign({ port: env.serialPort, kind: 'serial', sub: 'auditor-test' }), title: 'e2e recorded serial' }),
    },
  });
  // Policy "all": every session is recorded, whatever its ticket says.
  env.proxy = start('consolegate serve (recording)', BIN, [
    'serve',
    '--listen', `127.0.0.1:${env.proxyPort}`,
    '--admin-listen', 'off',
    '--allow-plain',
    '--trust', keyDir,
    '--allow-port', String(env.vncPort),
    '--allow-serial-port', String(env.serialPort),
    '--engine-origin', env.engine.origin,
    '--web-dir', path.join(REPO, 'web'),
    '--novnc-dir', NOVNC_DIR,
    '--xterm-dir', XTERM_DIR,
    '--asciinema-dir', ASCIINEMA_DIR,
    '--recording-dir', env.recDir,
    '--recording-policy', 'all',
    '--recording-min-free', '0',
  ], { cwd: REPO });
  await waitFor('consolegate serve to answer', async () =>
    (await httpGet(`http://127.0.0.1:${env.proxyPort}/consolegate/config.json`)).status === 200,
  { child: env.proxy });
  ({ browser: env.browser, context: env.context } = await launchBrowser());
});

after(async () => {
  if (env.browser) await env.browser.close().catch(() => {});
  if (env.engine) env.engine.server.close();
  if (env.qmp) env.qmp.close();
  await stopAll();
  if (env.dir) await fsp.rm(env.dir, { recursive: true, force: true });
});

test('a recorded VNC session plays back in player.html and ends on the frame the live page showed', { timeout: 120000 }, async () => {
  const before = await recordings();
  const { page, popup } = await openConsoleIn(env.context, env.engine.page('vnc'));
  await waitState(popup, 'connected', 20000);
  // SeaBIOS's boot menu appears on Escape: the recording holds a change made by input.
  const menuRows = [96, 112];
  await waitFor('the SeaBIOS screen', async () => {
    const s = await canvasStats(popup);
    return s && s.lit > 200 ? s : null;
  });
  await popup.click('#screen canvas');
  await popup.keyboard.press('Escape');
  await waitFor('the boot menu after Escape', async () => (await canvasStats(popup, menuRows)).lit > 50, { timeoutMs: 10000 });
  await sleep(1500); // let the last updates land: the screen is still from here on
  const live = await canvasPixels(popup);
  await popup.screenshot({ path: path.join(ARTIFACTS, 'recording-live-vnc.png') });
  await popup.click('#btn-disconnect');
  await waitState(popup, 'disconnected', 10000);

  const name = await waitFor('the VNC recording', async () =>
    (await recordings()).find((n) => n.endsWith('.vncrec') && !before.includes(n)));
  const logged = await endLine(name);
  const file = path.join(env.recDir, name);
  assert.equal(await verify(file), logged.sha256, 'the file\'s digest is the end log line\'s');

  const player = await openPlayer(file);
  assert.equal(await player.getAttribute('#integrity', 'data-status'), 'intact');
  assert.equal(await player.getAttribute('#integrity', 'data-sha256'), logged.sha256);
  const meta = await player.textContent('#meta-list');
  assert.match(meta, /auditor-test/);
  assert.match(meta, new RegExp(`127\\.0\\.0\\.1:${env.vncPort}`));
  await playToEnd(player);
  await waitFor('noVNC idle', () => player.evaluate(() => true));
  const replayed = await canvasPixels(player);
  await player.screenshot({ path: path.join(ARTIFACTS, 'recording-player-vnc.png') });
  const differing = compareFrames(live, replayed);
  assert.ok(differing <= MAX_DIFFERING, `${(differing * 100).toFixed(2)} % of the pixels differ from the live page's last frame`);

  // Seeking back to the start: the boot menu is not there yet.
  await player.fill('#seek-to', '0:00.2');
  await player.click('#btn-seek');
  await player.waitForFunction(() => document.body.dataset.state === 'paused');
  const early = await player.evaluate(() => Number(document.querySelector('#position').dataset.ms));
  assert.ok(early < 1000, `position after seeking: ${early} ms`);
  assert.deepEqual(player.cspViolations, [], 'the player runs under the proxy\'s CSP without violations');
  assert.deepEqual(player.errors, [], 'no page errors');
  await player.close();
  await popup.close();
  await page.close();
});

test('a recorded serial session plays back bc\'s output in player.html', { timeout: 90000 }, async () => {
  const before = await recordings();
  const { page, popup } = await openConsoleIn(env.context, env.engine.page('serial'));
  await waitState(popup, 'connected', 20000);
  await popup.click('#screen .xterm');
  await popup.keyboard.type('2^64');
  await popup.keyboard.press('Enter');
  await waitFor('bc\'s answer', async () =>
    /18446744073709551616/.test(await popup.textContent('#screen .xterm-rows')), { timeoutMs: 15000 });
  await popup.screenshot({ path: path.join(ARTIFACTS, 'recording-live-serial.png') });
  await popup.click('#btn-disconnect');
  await waitState(popup, 'disconnected', 10000);

  const name = await waitFor('the serial recording', async () =>
    (await recordings()).find((n) => n.endsWith('.cast') && !before.includes(n)));
  const logged = await endLine(name);
  const file = path.join(env.recDir, name);
  assert.equal(await verify(file), logged.sha256);

  const player = await openPlayer(file);
  assert.equal(await player.getAttribute('#integrity', 'data-status'), 'intact');
  await playToEnd(player);
  const shown = await waitFor('bc\'s answer in the player', async () => {
    const text = await player.textContent('#screen');
    return /18446744073709551616/.test(text) ? text : null;
  }, { timeoutMs: 10000 }).catch(async (err) => { throw new Error(`${err.message}; player shows: ${await player.textContent('#screen')}`); });
  assert.match(shown, /2\^64/);
  await player.screenshot({ path: path.join(ARTIFACTS, 'recording-player-serial.png') });
  assert.deepEqual(player.cspViolations, [], 'asciinema-player runs under the player\'s CSP');
  assert.deepEqual(player.errors, [], 'no page errors');
  await player.close();
  await popup.close();
  await page.close();
});

test('the player refuses a file that is not a recording and flags a changed byte', { timeout: 60000 }, async () => {
  const name = (await recordings()).find((n) => n.endsWith('.cast'));
  assert.ok(name, 'a recording from the serial test');
  const bytes = await fsp.readFile(path.join(env.recDir, name));
  const altered = path.join(env.dir, 'altered.cast');
  const text = bytes.toString('utf8').replace('18446744073709551616', '18446744073709551617');
  await fsp.writeFile(altered, text);
  const player = await openPlayer(altered);
  assert.equal(await player.getAttribute('#integrity', 'data-status'), 'altered');
  const junk = path.join(env.dir, 'junk.vncrec');
  await fsp.writeFile(junk, 'not a recording');
  await player.setInputFiles('#file-input', junk);
  await player.waitForFunction(() => document.body.dataset.state === 'error');
  assert.match(await player.textContent('#status'), /not a consolegate recording/);
  await player.close();
});
