// The benchmark's first-frame step: how long a person waits for the console's first
// picture in a real browser (Debian's chromium via playwright-core) against QEMU's own
// VNC server, through each path:
//
//   consolegate-ws / -wss   the console page, handed its ticket by an engine page on
//                           another origin (tests/e2e's engine), through `consolegate
//                           serve` over ws:// and wss://
//   websockify              noVNC alone (bench/first-frame/floor.html) through
//                           websockify 0.13 with the same ticket (JWT plugin)
//   qemu-websocket          the floor: the same noVNC page straight at QEMU's own
//                           WebSocket port (-vnc ...,websocket=...)
//
// Each load is timed in the page: an init script wraps `WebSocket` and watches the
// noVNC canvas on every animation frame. connect = socket created → open; first frame =
// socket created → first non-blank pixel on the canvas; from page start = navigation
// start → first non-blank pixel. Medians over --loads loads per path, each path in its
// own fresh browser profile, after one warm-up load that is not counted.
//
//   node bench/first-frame.mjs --out FILE --bin target/release/consolegate \
//        --tls-dir DIR (ca.pem, server.pem, server.key) [--loads 20] [--websockify PATH]
//
// bench/run.sh runs it in full runs. Bounded: every wait has a timeout, and every
// process started here is stopped on the way out.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : true]);
  return acc;
}, []));
if (!args.out || !args.bin || !args['tls-dir']) {
  console.error('usage: first-frame.mjs --out FILE --bin CONSOLEGATE --tls-dir DIR [--loads N] [--websockify PATH]');
  process.exit(2);
}
// tests/e2e/lib reads the binary from CONSOLEGATE_BIN when it is first imported.
process.env.CONSOLEGATE_BIN = path.resolve(args.bin);
const LOADS = Number(args.loads || 20);
const BENCH = path.dirname(fileURLToPath(import.meta.url));
const { start, stopAll, run, freePort, freePortIn, waitFor, sleep, tcpOpen } = await import('../tests/e2e/lib/procs.mjs');
const { qmpConnect } = await import('../tests/e2e/lib/qmp.mjs');
const { REPO, BIN, NOVNC_DIR, CHROMIUM } = await import('../tests/e2e/lib/paths.mjs');
const { httpGet, httpsGet } = await import('../tests/e2e/lib/http.mjs');
const { makeSigningKey, sign, startEngine } = await import('../tests/e2e/lib/engine.mjs');
const { staticHandler } = await import('../tests/e2e/lib/static.mjs');
// playwright-core is tests/e2e's dependency: resolve it from there.
const { chromium } = createRequire(path.join(REPO, 'tests/e2e/package.json'))('playwright-core');

const PASSWORD = 'ff-Pw7x';   // QEMU's VNC authentication takes at most 8 characters
const LOAD_TIMEOUT = 20000;

// Runs in every page before its own scripts: times the first WebSocket and the first
// non-blank canvas pixel, in the page's own clock (0 = navigation start).
function timingScript() {
  const Native = window.WebSocket;
  const t = { wsAt: null, openAt: null, frameAt: null };
  window.firstFrame = t;
  const lit = () => {
    const canvas = document.querySelector('canvas');
    if (!canvas || !canvas.width || !canvas.height) return false;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4 * 5) {
      if (data[i] + data[i + 1] + data[i + 2] > 60) return true;
    }
    return false;
  };
  const poll = () => {
    if (lit()) t.frameAt = performance.now();
    else requestAnimationFrame(poll);
  };
  function Timed(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    if (t.wsAt === null) {
      t.wsAt = performance.now();
      ws.addEventListener('open', () => { t.openAt = performance.now(); });
      requestAnimationFrame(poll);
    }
    return ws;
  }
  Timed.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Timed[k] = Native[k];
  window.WebSocket = Timed;
}

async function spkiPin(cert) {
  const out = await run('sh', ['-c', `openssl x509 -in '${cert}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`]);
  return out.trim();
}

const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function main() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cg-first-frame-'));
  const tlsDir = path.resolve(args['tls-dir']);
  const tls = { cert: path.join(tlsDir, 'server.pem'), key: path.join(tlsDir, 'server.key'), ca: path.join(tlsDir, 'ca.pem') };
  const result = { loads: LOADS, browser: '', paths: [] };
  try {
    const { keyDir, signingKey } = await makeSigningKey(dir);

    // QEMU: VNC on a display port, its own WebSocket port beside it, one password.
    const vncPort = await freePortIn(5900, 6923);
    const qemuWsPort = await freePort();
    const qmpPath = path.join(dir, 'qmp.sock');
    const qemu = start('qemu', 'qemu-system-x86_64', [
      '-machine', 'accel=tcg', '-display', 'none', '-nodefaults', '-vga', 'std', '-m', '64',
      '-vnc', `127.0.0.1:${vncPort - 5900},password=on,websocket=127.0.0.1:${qemuWsPort}`,
      '-qmp', `unix:${qmpPath},server,nowait`,
      // SeaBIOS's boot menu prompt keeps a stable text screen for the loads.
      '-boot', 'menu=on,splash-time=60000',
    ]);
    await waitFor('QEMU QMP socket', async () => (await fsp.stat(qmpPath).catch(() => null)) !== null, { child: qemu });
    await waitFor('QEMU VNC port', () => tcpOpen(vncPort), { child: qemu });
    const qmp = await qmpConnect(qmpPath);
    await qmp.execute('change-vnc-password', { password: PASSWORD });

    // The floor page's origin (noVNC from the same node_modules the console page uses).
    const floorServer = http.createServer(staticHandler({ root: path.join(BENCH, 'first-frame'), novnc: NOVNC_DIR }));
    const floorPort = await freePort();
    await new Promise((resolve) => floorServer.listen(floorPort, '127.0.0.1', resolve));
    const floor = (url) => `http://127.0.0.1:${floorPort}/floor.html?url=${encodeURIComponent(url)}&password=${encodeURIComponent(PASSWORD)}`;

    // Tickets signed ahead of each path's loads, so the engine answers at once and no
    // signing runs during a load.
    const tickets = {};
    const signAhead = async (name) => {
      tickets[name] = [];
      for (let i = 0; i <= LOADS; i++) tickets[name].push(await sign({ key: signingKey, port: vncPort, ttl: '300s' }));
    };
    const take = (name) => {
      const ticket = tickets[name].shift();
      if (!ticket) throw new Error(`out of ${name} tickets`);
      return ticket;
    };
    const wsPort = await freePort();
    const wssPort = await freePort();
    const engine = await startEngine({
      consoleUrl: `http://127.0.0.1:${wsPort}/console.html`,
      scenarios: {
        ws: async () => ({ ticket: take('ws'), password: PASSWORD, title: 'first frame' }),
        wss: async () => ({ ticket: take('wss'), password: PASSWORD, title: 'first frame' }),
      },
    });
    const serve = (port, extra) => start(`consolegate :${port}`, BIN, [
      'serve', '--listen', `127.0.0.1:${port}`, '--admin-listen', 'off', '--trust', keyDir,
      '--allow-port', String(vncPort), '--engine-origin', engine.origin,
      '--web-dir', path.join(REPO, 'web'), '--novnc-dir', NOVNC_DIR, '--log-level', 'warn', ...extra,
    ], { cwd: REPO });
    const cgWs = serve(wsPort, ['--allow-plain']);
    const cgWss = serve(wssPort, ['--tls-cert', tls.cert, '--tls-key', tls.key]);
    const ca = await fsp.readFile(tls.ca);
    await waitFor('consolegate ws', async () => (await httpGet(`http://127.0.0.1:${wsPort}/consolegate/config.json`)).status === 200, { child: cgWs });
    await waitFor('consolegate wss', async () => (await httpsGet(`https://127.0.0.1:${wssPort}/consolegate/config.json`, ca)).status === 200, { child: cgWss });

    let wsfyPort = null;
    if (args.websockify && args.websockify !== true) {
      wsfyPort = await freePort();
      const wsfy = start('websockify', args.websockify, ['--token-plugin', 'JWTTokenApi',
        '--token-source', path.join(keyDir, 'engine.pub'), `127.0.0.1:${wsfyPort}`]);
      await waitFor('websockify', () => tcpOpen(wsfyPort), { child: wsfy });
    }

    const pin = await spkiPin(tls.cert);
    const paths = [
      { name: 'consolegate-ws', label: 'consolegate ws (console page)', tickets: 'ws',
        open: (ctx) => viaEngine(ctx, engine.page('ws', 'window', `http://127.0.0.1:${wsPort}/console.html`)) },
      { name: 'consolegate-wss', label: 'consolegate wss (console page)', tickets: 'wss',
        open: (ctx) => viaEngine(ctx, engine.page('wss', 'window', `https://127.0.0.1:${wssPort}/console.html`)) },
      ...(wsfyPort ? [{ name: 'websockify', label: 'websockify ws (noVNC page)', tickets: 'websockify',
        open: (ctx) => direct(ctx, floor(`ws://127.0.0.1:${wsfyPort}/?token=${take('websockify')}`)) }] : []),
      { name: 'qemu-websocket', label: "noVNC straight at QEMU's WebSocket (floor)",
        open: (ctx) => direct(ctx, floor(`ws://127.0.0.1:${qemuWsPort}/`)) },
    ];
    // QEMU's screen must have content before the first load times anything.
    await sleep(2000);
    for (const p of paths) {
      if (p.tickets) await signAhead(p.tickets);
      const profile = await fsp.mkdtemp(path.join(dir, 'profile-'));
      const ctx = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30000,
        viewport: { width: 1024, height: 700 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync',
          `--ignore-certificate-errors-spki-list=${pin}`],
      });
      result.browser ||= `chromium ${ctx.browser()?.version() ?? ''}`.trim();
      await ctx.addInitScript(timingScript);
      const samples = [];
      const errors = [];
      try {
        for (let i = 0; i <= LOADS; i++) {
          try {
            const t = await p.open(ctx);
            if (i > 0) samples.push(t);   // load 0 warms the profile and the servers
          } catch (err) {
            errors.push(err.message.split('\n')[0]);
          }
          for (const page of ctx.pages()) await page.close().catch(() => {});
          await sleep(200);
        }
      } finally {
        await ctx.close().catch(() => {});
      }
      const entry = {
        name: p.name,
        label: p.label,
        ok: samples.length,
        errors,
        connect_ms: median(samples.map((s) => s.openAt - s.wsAt)),
        first_frame_ms: median(samples.map((s) => s.frameAt - s.wsAt)),
        page_first_frame_ms: median(samples.map((s) => s.frameAt)),
      };
      result.paths.push(entry);
      console.error(`${p.name}: ${entry.ok}/${LOADS} loads, connect ${entry.connect_ms?.toFixed(1)} ms, first frame ${entry.first_frame_ms?.toFixed(1)} ms (page ${entry.page_first_frame_ms?.toFixed(1)} ms)${errors.length ? `, ${errors.length} errors: ${errors[0]}` : ''}`);
    }
    engine.server.close();
    floorServer.close();
    qmp.close();
  } finally {
    await fsp.writeFile(args.out, JSON.stringify(result, null, 2));
    await stopAll();
    await fsp.rm(dir, { recursive: true, force: true });
  }
  if (result.paths.some((p) => p.ok === 0)) process.exitCode = 1;
}

// Waits for the page's first frame and returns its timings.
async function timings(page) {
  try {
    await page.waitForFunction(() => window.firstFrame && window.firstFrame.frameAt !== null,
      null, { timeout: LOAD_TIMEOUT, polling: 50 });
  } catch (err) {
    // Say where the page was: the console page's own state, the timings so far.
    const where = await page.evaluate(() => JSON.stringify({
      firstFrame: window.firstFrame ?? null,
      state: window.consolegate?.state ?? null,
      status: document.querySelector('#status')?.textContent ?? null,
      canvas: document.querySelector('canvas') ? [document.querySelector('canvas').width, document.querySelector('canvas').height] : null,
    })).catch((e) => `unreadable: ${e.message}`);
    throw new Error(`no first frame within ${LOAD_TIMEOUT} ms at ${page.url()}: ${where}`);
  }
  return page.evaluate(() => ({ ...window.firstFrame }));
}

// The console page as a person opens it: the engine page's button, a popup, the ticket
// by postMessage.
async function viaEngine(ctx, engineUrl) {
  const page = await ctx.newPage();
  await page.goto(engineUrl, { timeout: LOAD_TIMEOUT });
  const [popup] = await Promise.all([
    page.waitForEvent('popup', { timeout: LOAD_TIMEOUT }),
    page.click('#open-console'),
  ]);
  return timings(popup);
}

async function direct(ctx, url) {
  const page = await ctx.newPage();
  await page.goto(url, { timeout: LOAD_TIMEOUT });
  return timings(page);
}

await main();
