// The browser side of the end-to-end tests: Debian's chromium via playwright-core,
// and the console page as a person gets to it (from the engine page's button).
import { chromium } from 'playwright-core';
import { CHROMIUM } from './paths.mjs';

// Headless chromium and one context; `extraArgs` are the test file's own flags.
export async function launchBrowser(extraArgs = []) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', ...extraArgs],
  });
  // The caller's `after` only knows the browser once this returns: don't leak it.
  const context = await browser.newContext({ viewport: { width: 1024, height: 700 } })
    .catch(async (err) => { await browser.close().catch(() => {}); throw err; });
  return { browser, context };
}

// Keeps the page's console output; CSP violations and page errors are collected on
// the page (cspViolations, errors) for the tests to assert on.
export function watchConsole(page) {
  page.cspViolations = [];
  page.errors = [];
  page.on('pageerror', (err) => { page.errors.push(err.message); console.error(`page error: ${err.message}`); });
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) page.cspViolations.push(m.text());
    if (process.env.E2E_VERBOSE) console.error(`[console page] ${m.type()}: ${m.text()}`);
  });
}

// Keeps the URL of every WebSocket the page opens (popup.webSocketUrls), as the
// browser's network stack sees it: what a balancer's access log would get.
export function watchWebSockets(page) {
  page.webSocketUrls = [];
  page.on('websocket', (ws) => page.webSocketUrls.push(ws.url()));
}

// A compact JWS (three base64url segments), as a ticket appears in a URL.
const JWS = /[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;

// The WebSocket URLs the page opened that do not have the ticketless form (path
// `/console`, no query, nothing that looks like a ticket): [] when the ticket
// travelled in no URL. Also returns how many URLs there were.
export function urlsWithTickets(page) {
  const bad = page.webSocketUrls.filter((u) => {
    const url = new URL(u);
    return url.pathname !== '/console' || url.search !== '' || JWS.test(u);
  });
  return { bad, count: page.webSocketUrls.length };
}

// Opens the engine page, clicks "Open console" and returns both pages.
export async function openConsole(context, engineUrl) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(engineUrl);
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#open-console')]);
  popup.setDefaultTimeout(15000);
  watchConsole(popup);
  watchWebSockets(popup);
  await popup.waitForLoadState('domcontentloaded');
  return { page, popup };
}

// Clicks a toolbar button; in the compact toolbar (narrow windows) the less used ones
// are in the ☰ menu, opened first as a person would.
export async function clickTool(page, selector) {
  const inMenu = await page.evaluate((sel) => document.body.dataset.compact === 'true'
    && Boolean(document.querySelector(`#toolbar-more ${sel}`)), selector);
  if (inMenu) await page.click('#btn-more');
  await page.click(selector);
}

// Waits for window.consolegate.state; on timeout says where the page is instead.
export async function waitState(popup, state, timeout) {
  try {
    await popup.waitForFunction((s) => window.consolegate && window.consolegate.state === s, state, { timeout });
  } catch {
    const now = await popup.evaluate(() => window.consolegate && [window.consolegate.state, window.consolegate.status]).catch(() => null);
    throw new Error(`console page did not reach "${state}" within ${timeout} ms; it is ${JSON.stringify(now)}`);
  }
}

// What the page says: the sentence of its panel when something is wrong, else the
// toolbar's status ("Connected").
export const statusText = (popup) => popup.evaluate(() => window.consolegate.status);

// The panel's sentence as displayed, or null when the panel is hidden.
export const panelText = (popup) => popup.evaluate(() => {
  const panel = document.getElementById('panel');
  return panel.hidden ? null : document.getElementById('panel-text').textContent;
});

// Reads the console's canvas (noVNC's, or spice-html5's primary surface): its size,
// and how much of it is not background (lit), bright, in how many colours. `rows`
// and `cols` ([from, to) in framebuffer pixels, or fractions of the size when < 1)
// limit it. null until the canvas has a size.
export function canvasStats(popup, rows, cols) {
  return popup.evaluate(([rows, cols]) => {
    const canvas = document.querySelector('#screen canvas');
    if (!canvas || !canvas.width) return null;
    const { width, height } = canvas;
    const at = (v, size) => Math.round(v < 1 ? v * size : v);
    const y0 = rows ? at(rows[0], height) : 0;
    const y1 = rows ? at(rows[1], height) : height;
    const x0 = cols ? at(cols[0], width) : 0;
    const x1 = cols ? at(cols[1], width) : width;
    const data = canvas.getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0).data;
    let lit = 0;
    let bright = 0;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) {
      const sum = data[i] + data[i + 1] + data[i + 2];
      if (sum > 60) lit++;
      if (sum > 450) bright++;
      if (colours.size < 64) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    return { width, height, lit, bright, colours: colours.size };
  }, [rows, cols]);
}
