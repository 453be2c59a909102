// consolegate console page.
//
// The engine (portal) opens this page, we tell it we are ready, it answers with a
// ticket and the console password by postMessage. Nothing secret ever travels in this
// page's URL, and a message is only believed when it comes from an engine origin the
// proxy's own configuration names (never from anything the URL could say).
//
// The ticket's `kind` picks the client: noVNC for `vnc`, served by the proxy at
// /novnc/ (npm's @novnc/novnc or Debian's novnc); spice-html5 for `spice` (spice.js,
// /spice/); xterm.js for `serial` (serial.js, /xterm/). The SPICE and serial clients
// are loaded only when a ticket asks for them.
import RFB from '/novnc/core/rfb.js';
import KeyTable from '/novnc/core/input/keysym.js';
import keysyms from '/novnc/core/input/keysymdef.js';

const TEXT = {
  waiting: 'Waiting for the portal…',
  asking: 'Asking the portal for a new console link…',
  connecting: 'Connecting…',
  connected: 'Connected',
  disconnected: 'Disconnected.',
  expired: 'This console link has expired: open the console again from the portal.',
  notYetValid: 'This console link is not valid yet: the clocks of the portal and the console proxy disagree.',
  replayed: 'This console link was already used: open the console again from the portal.',
  invalid: 'This console link is not valid: open the console again from the portal.',
  audience: 'This console link is meant for another console proxy.',
  tooLong: 'This console link is valid for longer than this console proxy accepts: ask the administrator.',
  targetNotAllowed: 'This console proxy is not allowed to reach that console server: ask the administrator.',
  revoked: 'Access to this console was revoked: ask the administrator.',
  wrongPassword: 'Wrong VNC password.',
  unreachable: 'The console server is unreachable.',
  proxyUnreachable: 'The console proxy does not answer.',
  serverClosed: 'The console server closed the connection.',
  shuttingDown: 'The console proxy is shutting down: open the console again in a moment.',
  ended: 'The console session was ended by the console proxy.',
  relayError: 'The console connection failed on the console proxy.',
  lost: 'The connection to the console proxy was lost.',
  noAnswer: 'The console server did not answer.',
  unsupported: 'This console type is not supported yet.',
  tlsUnsupported: 'This console proxy is not set up to reach secure console servers: ask the administrator.',
  unknownTls: 'This console link asks for a kind of secure connection this console proxy does not know: ask the administrator.',
  portalGone: 'The portal window is gone: open the console again from the portal.',
  portalSilent: 'The portal did not send a new console link: open the console again from the portal.',
  noConfig: 'The console proxy did not send its configuration: reload the page.',
  wrongKindPort: 'This console proxy does not allow this type of console on that port: ask the administrator.',
  wrongSpicePassword: 'Wrong SPICE password.',
  spiceFailed: 'The SPICE console failed.',
  spiceChannelRefused: 'The console proxy refused part of the SPICE console: ask the administrator (SPICE needs several connections per console link).',
  clientMissing: 'This console proxy has no client for this console type installed: ask the administrator.',
  recordingUnavailable: 'This console session must be recorded, and the console proxy cannot record it now: ask the administrator.',
  recordingUnsupported: 'This console session must be recorded, and this type of console cannot be recorded: ask the administrator.',
};

// The password dialog's question, per console kind.
const PASSWORD_QUESTION = {
  vnc: 'The console asks for its VNC password',
  spice: 'The console asks for its SPICE password',
};

// Bounded waits: a person should never look at "Connecting…" forever.
const CONNECT_GUARD_MS = 20000;
const NEED_TICKET_GUARD_MS = 30000;
const TICKET_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const $ = (id) => document.getElementById(id);

// Storage can be unavailable (blocked in a third-party iframe, disabled by policy):
// a preference is not worth failing the page for.
function loadSetting(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}
function saveSetting(key, value) {
  try { localStorage.setItem(key, value); } catch { /* not remembered, fine */ }
}
const ui = {
  body: document.body,
  title: $('title'),
  status: $('status'),
  screen: $('screen'),
  cad: $('btn-cad'),
  paste: $('btn-paste'),
  scale: $('btn-scale'),
  fullscreen: $('btn-fullscreen'),
  disconnect: $('btn-disconnect'),
  reconnect: $('btn-reconnect'),
  pasteDialog: $('paste-dialog'),
  pasteText: $('paste-text'),
  passwordDialog: $('password-dialog'),
  passwordInput: $('password-input'),
  passwordLabel: $('password-label'),
};

const app = {
  state: 'starting',
  engineOrigins: [],
  engine: null,          // {origin, source}: where the accepted ticket came from
  attempt: null,         // the current connection attempt (one per ticket)
  scale: loadSetting('consolegate.scale') !== 'off',
  needTicketTimer: 0,
  ignored: 0,            // messages refused for their origin (the e2e test reads it)
};

// Read-only view for people debugging in the console and for the end-to-end test.
window.consolegate = {
  get state() { return app.state; },
  get status() { return ui.status.textContent; },
  get rfb() { return app.attempt ? app.attempt.rfb : null; },
  // The running client: {kind, ...}; its `sc` (SPICE) or `term` (serial) for tests.
  get client() { return app.attempt ? app.attempt.client : null; },
  get kind() { return app.attempt ? app.attempt.kind : null; },
  get ignored() { return app.ignored; },
  // The ticket id (not the ticket): tells one ticket from the next, as the logs do.
  get jti() { return app.attempt ? app.attempt.jti : null; },
  get engineOrigins() { return [...app.engineOrigins]; },
};

function setState(state, text, detail) {
  app.state = state;
  ui.body.dataset.state = state;
  ui.status.textContent = text;
  ui.status.title = detail || '';
  const live = state === 'connected';
  const client = app.attempt ? app.attempt.client : null;
  ui.cad.disabled = !(live && client && client.sendCtrlAltDel);
  ui.paste.disabled = !(live && client && client.typeText);
  ui.scale.disabled = Boolean(client && !client.setScale);
  ui.disconnect.disabled = !(live || state === 'connecting');
  ui.reconnect.disabled = !app.engine || live || state === 'connecting' || state === 'asking';
  window.dispatchEvent(new CustomEvent('consolegate:state', { detail: { state, text } }));
}

function fail(text, detail) {
  if (detail) console.warn(`consolegate: ${text} (${detail})`);
  setState('failed', text, detail);
}

// ---------------------------------------------------------------- engine messages

function engineWindows() {
  const wins = [];
  if (window.opener) wins.push(window.opener);
  if (window.parent !== window) wins.push(window.parent);
  return wins;
}

function onMessage(event) {
  const data = event.data;
  // Other scripts (extensions, the engine's own frames) may post too: only our
  // namespaced messages are considered at all.
  if (!data || typeof data !== 'object' || typeof data.type !== 'string'
      || !data.type.startsWith('consolegate:')) return;
  if (!app.engineOrigins.includes(event.origin)) {
    app.ignored += 1;
    console.warn(`consolegate: ignored "${data.type}" from ${event.origin}: not a configured engine origin`);
    return;
  }
  if (!engineWindows().includes(event.source)) {
    app.ignored += 1;
    console.warn(`consolegate: ignored "${data.type}" from a window that did not open or embed this page`);
    return;
  }
  if (data.type === 'consolegate:connect') {
    app.engine = { origin: event.origin, source: event.source };
    clearTimeout(app.needTicketTimer);
    connect(data);
  }
}

function announceReady() {
  // No secret in this message, so any target origin is fine; the answer is checked.
  for (const win of engineWindows()) win.postMessage({ type: 'consolegate:ready' }, '*');
}

function askForTicket() {
  teardown();
  const engine = app.engine;
  if (!engine || engine.source.closed) {
    fail(TEXT.portalGone);
    return;
  }
  setState('asking', TEXT.asking);
  // Never reuse the old ticket: it may be single-use or about to expire.
  engine.source.postMessage({ type: 'consolegate:need-ticket' }, engine.origin);
  clearTimeout(app.needTicketTimer);
  app.needTicketTimer = setTimeout(() => {
    if (app.state === 'asking') fail(TEXT.portalSilent);
  }, NEED_TICKET_GUARD_MS);
}

// ---------------------------------------------------------------- tickets

// The proxy verifies the ticket; the page only peeks at `kind` to pick a client.
function ticketClaims(ticket) {
  try {
    const b64 = ticket.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

// Asks the proxy whether it would accept the ticket. This does not consume a
// single-use ticket; a browser cannot read the status of a refused WebSocket upgrade,
// so this is how the page learns *why* a ticket would be refused.
async function checkTicket(ticket) {
  try {
    const res = await fetch('/consolegate/check', {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: ticket,
      cache: 'no-store',
    });
    if (!res.ok) return { ok: false, code: 'http_' + res.status, reason: `HTTP ${res.status}` };
    return await res.json();
  } catch (err) {
    return { ok: false, code: 'network', reason: String(err) };
  }
}

// The proxy's refusal codes (the `code` of a /consolegate/check answer) and the
// sentence for each. This object is one side of a contract: tests/contract.rs checks
// that every key here is a code the proxy sends (docs/refusal-codes.md lists them).
// Codes without an entry get the generic "not valid" sentence.
const REFUSAL_SENTENCES = {
  expired: 'expired',
  not_yet_valid: 'notYetValid',
  replayed: 'replayed',
  no_audience: 'audience',
  wrong_audience: 'audience',
  lifetime_too_long: 'tooLong',
  target_not_allowed: 'targetNotAllowed',
  port_not_allowed: 'targetNotAllowed',
  port_not_allowed_for_kind: 'wrongKindPort',
  unknown_kind: 'unsupported',
  unknown_tls: 'unknownTls',
  tls_unsupported: 'tlsUnsupported',
  draining: 'shuttingDown',
  revoked: 'revoked',
  jti_required: 'invalid',
  recording_unavailable: 'recordingUnavailable',
  recording_unsupported: 'recordingUnsupported',
};

function sentenceForCheck(check) {
  if (check.code === 'network') return TEXT.proxyUnreachable;
  return TEXT[REFUSAL_SENTENCES[check.code] || 'invalid'];
}

// ---------------------------------------------------------------- connection

function teardown() {
  const attempt = app.attempt;
  app.attempt = null;
  if (!attempt) return;
  attempt.superseded = true;
  clearTimeout(attempt.guard);
  if (ui.passwordDialog.open) ui.passwordDialog.close('cancel');
  try { attempt.client?.disconnect(); } catch { /* already gone */ }
}

async function connect({ ticket, password, title }) {
  teardown();
  if (typeof title === 'string' && title) {
    ui.title.textContent = title;
    document.title = `${title} – Console`;
  }
  if (typeof ticket !== 'string' || !TICKET_RE.test(ticket) || ticket.length > 4096) {
    fail(TEXT.invalid, 'the portal sent something that is not a ticket');
    return;
  }
  const claims = ticketClaims(ticket);
  if (!claims) {
    fail(TEXT.invalid, 'the ticket payload is not JSON');
    return;
  }
  const kind = claims.kind || 'vnc';
  if (!['vnc', 'spice', 'serial'].includes(kind)) {
    fail(TEXT.unsupported, `kind ${kind}`);
    return;
  }

  const attempt = {
    ticket,
    kind,
    client: null,
    jti: typeof claims.jti === 'string' ? claims.jti : null,
    password: typeof password === 'string' ? password : null,
    rfb: null,
    opened: false,
    connected: false,
    sentCredentials: false,
    userDisconnect: false,
    superseded: false,
    failure: null,
    close: null,
    guard: 0,
  };
  app.attempt = attempt;
  setState('connecting', TEXT.connecting);

  const check = await checkTicket(ticket);
  if (attempt.superseded) return;
  if (!check.ok) {
    fail(sentenceForCheck(check), check.reason);
    return;
  }
  if (kind === 'vnc') openVnc(attempt);
  else if (kind === 'spice') openSpiceConsole(attempt);
  else openSerialConsole(attempt);
}

function sessionUrl(ticket) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/${ticket}`;
}

// Callbacks the SPICE and serial clients report through; the same states and
// sentences as noVNC's events below.
function clientEvents(attempt) {
  return {
    opened() { attempt.opened = true; },
    closed(close) { attempt.close = close; },
    connected() {
      if (attempt.superseded) return;
      attempt.connected = true;
      clearTimeout(attempt.guard);
      setState('connected', TEXT.connected);
      attempt.client?.focus();
    },
    ended(failure) {
      if (failure && !attempt.failure) attempt.failure = failure;
      onDisconnect(attempt);
    },
  };
}

function startGuard(attempt) {
  attempt.guard = setTimeout(() => {
    if (!attempt.connected && !attempt.superseded && !ui.passwordDialog.open) {
      teardown();
      fail(TEXT.noAnswer);
    }
  }, CONNECT_GUARD_MS);
}

async function loadClient(attempt, path) {
  try {
    return await import(path);
  } catch (err) {
    if (attempt === app.attempt) fail(TEXT.clientMissing, `${path}: ${err.message}`);
    return null;
  }
}

async function openSpiceConsole(attempt) {
  const mod = await loadClient(attempt, './spice.js');
  if (!mod || attempt.superseded) return;
  if (attempt.password === null) {
    // SPICE sends its password as soon as the channel opens: ask first.
    const password = await promptPassword('spice');
    if (attempt.superseded) return;
    if (password === null) {
      teardown();
      setState('disconnected', TEXT.disconnected);
      return;
    }
    attempt.password = password;
  }
  attempt.sentCredentials = true;
  attempt.client = mod.openSpice({
    url: sessionUrl(attempt.ticket),
    password: attempt.password,
    screen: ui.screen,
    scale: app.scale,
    events: clientEvents(attempt),
    text: TEXT,
  });
  startGuard(attempt);
}

async function openSerialConsole(attempt) {
  const mod = await loadClient(attempt, './serial.js');
  if (!mod || attempt.superseded) return;
  attempt.client = await mod.openSerial({
    url: sessionUrl(attempt.ticket),
    screen: ui.screen,
    events: clientEvents(attempt),
  });
  if (attempt.superseded) { attempt.client.disconnect(); return; }
  startGuard(attempt);
}

// Resolves to the typed password, or null when the person cancels.
function promptPassword(kind) {
  return new Promise((resolve) => {
    ui.passwordLabel.textContent = PASSWORD_QUESTION[kind] || PASSWORD_QUESTION.vnc;
    ui.passwordInput.value = '';
    ui.passwordDialog.returnValue = '';
    ui.passwordDialog.onclose = () => {
      const value = ui.passwordDialog.returnValue === 'ok' ? ui.passwordInput.value : null;
      ui.passwordInput.value = '';
      resolve(value);
    };
    ui.passwordDialog.showModal();
  });
}

function openVnc(attempt) {
  const ws = new WebSocket(sessionUrl(attempt.ticket), ['binary']);
  // Registered before noVNC attaches its own handlers, so the close code is known by
  // the time noVNC reports the disconnect.
  ws.addEventListener('open', () => { attempt.opened = true; });
  ws.addEventListener('close', (e) => { attempt.close = { code: e.code, reason: e.reason }; });

  const rfb = new RFB(ui.screen, ws, { shared: true });
  attempt.rfb = rfb;
  attempt.client = {
    kind: 'vnc',
    disconnect: () => rfb.disconnect(),
    focus: () => rfb.focus(),
    sendCtrlAltDel: () => rfb.sendCtrlAltDel(),
    typeText: (text) => typeText(text),
    setScale: (on) => { rfb.scaleViewport = on; },
  };
  rfb.scaleViewport = app.scale;
  rfb.background = '#1e1e1e';

  rfb.addEventListener('credentialsrequired', (e) => {
    const types = e.detail.types || [];
    if (attempt.password !== null && !attempt.sentCredentials && !types.includes('username')) {
      attempt.sentCredentials = true;
      rfb.sendCredentials({ password: attempt.password });
    } else {
      askPassword(attempt, types);
    }
  });
  rfb.addEventListener('securityfailure', (e) => {
    // After a password was sent, a failed security result means the password was wrong.
    attempt.failure = attempt.sentCredentials
      ? { text: TEXT.wrongPassword, detail: e.detail.reason }
      : { text: 'The console server refused the connection' + (e.detail.reason ? `: ${e.detail.reason}` : '.'), detail: '' };
  });
  rfb.addEventListener('connect', () => {
    if (attempt.superseded) return;
    attempt.connected = true;
    clearTimeout(attempt.guard);
    setState('connected', TEXT.connected);
    rfb.focus();
  });
  rfb.addEventListener('desktopname', (e) => {
    if (ui.title.textContent === 'Console' && e.detail.name) ui.title.textContent = e.detail.name;
  });
  rfb.addEventListener('disconnect', (e) => {
    // Let the WebSocket's own close event land first (it carries the code and reason).
    setTimeout(() => onDisconnect(attempt, e.detail), 0);
  });

  startGuard(attempt);
}

function askPassword(attempt, types) {
  ui.passwordLabel.textContent = PASSWORD_QUESTION.vnc;
  ui.passwordInput.value = '';
  ui.passwordDialog.returnValue = '';
  ui.passwordDialog.onclose = () => {
    if (attempt.superseded) return;
    if (ui.passwordDialog.returnValue !== 'ok') {
      teardown();
      setState('disconnected', TEXT.disconnected);
      return;
    }
    attempt.sentCredentials = true;
    const creds = { password: ui.passwordInput.value };
    if (types.includes('username')) creds.username = '';
    attempt.rfb.sendCredentials(creds);
    ui.passwordInput.value = '';
  };
  ui.passwordDialog.showModal();
}

async function onDisconnect(attempt, detail) {
  clearTimeout(attempt.guard);
  if (attempt.superseded || attempt !== app.attempt) return;
  if (attempt.userDisconnect) {
    setState('disconnected', TEXT.disconnected);
    return;
  }
  if (attempt.failure) {
    fail(attempt.failure.text, attempt.failure.detail);
    return;
  }
  const close = attempt.close || { code: 1006, reason: '' };
  const reason = close.reason;
  if (!attempt.opened) {
    // The upgrade was refused or the proxy could not be reached. The ticket checked
    // fine a moment ago, so ask again: it may have expired or been used meanwhile.
    // A single-use ticket is recorded before the proxy connects to the console
    // server, so "replayed" here is most likely our own refused attempt: that and a
    // still-good ticket both mean the console server could not be reached.
    const check = await checkTicket(attempt.ticket);
    if (attempt !== app.attempt) return;
    if (!check.ok && check.code !== 'replayed') {
      fail(sentenceForCheck(check), check.reason);
    } else {
      fail(TEXT.unreachable, `WebSocket closed with ${close.code}`);
    }
    return;
  }
  switch (close.code) {
    case 1000: fail(TEXT.serverClosed, reason); break;
    case 1001: fail(reason ? `The console proxy ended the session: ${reason}.` : TEXT.shuttingDown, reason); break;
    case 1008: fail(reason ? `The console proxy ended the session: ${reason}.` : TEXT.ended, reason); break;
    case 1011: fail(reason ? `The console connection failed: ${reason}.` : TEXT.relayError, reason); break;
    case 1006: fail(TEXT.lost); break;
    default: fail(`The console connection closed (code ${close.code}${reason ? `: ${reason}` : ''}).`);
  }
  if (detail && !detail.clean) console.warn('consolegate: noVNC reported an unclean disconnect');
}

// ---------------------------------------------------------------- toolbar

const SHIFTED_US = new Set('~!@#$%^&*()_+{}|:"<>?');

function keysymFor(ch) {
  if (ch === '\n') return KeyTable.XK_Return;
  if (ch === '\t') return KeyTable.XK_Tab;
  if (ch === '\b') return KeyTable.XK_BackSpace;
  return keysyms.lookup(ch.codePointAt(0));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Types text one key at a time. QEMU (and most VNC servers) map key *symbols* to
// scancodes with their own keymap and do not add Shift themselves, so shifted
// characters get an explicit Shift press, as a US keyboard would. A short pause
// keeps small guest keyboard buffers (BIOS, PS/2) from overflowing.
async function typeText(text) {
  const rfb = window.consolegate.rfb;
  for (const ch of text.replace(/\r\n?/g, '\n')) {
    if (!rfb || app.state !== 'connected') return;
    const keysym = keysymFor(ch);
    const shift = (ch >= 'A' && ch <= 'Z') || SHIFTED_US.has(ch);
    if (shift) rfb.sendKey(KeyTable.XK_Shift_L, 'ShiftLeft', true);
    rfb.sendKey(keysym, null);
    if (shift) rfb.sendKey(KeyTable.XK_Shift_L, 'ShiftLeft', false);
    await sleep(10);
  }
}

function renderScale() {
  ui.scale.textContent = app.scale ? 'Scale: on' : 'Scale: off';
  ui.scale.setAttribute('aria-pressed', String(app.scale));
}

function wireToolbar() {
  ui.cad.addEventListener('click', () => window.consolegate.client?.sendCtrlAltDel?.());
  ui.scale.addEventListener('click', () => {
    app.scale = !app.scale;
    saveSetting('consolegate.scale', app.scale ? 'on' : 'off');
    renderScale();
    window.consolegate.client?.setScale?.(app.scale);
  });
  ui.fullscreen.addEventListener('click', () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen().catch((err) => console.warn('consolegate: full screen refused', err));
  });
  document.addEventListener('fullscreenchange', () => {
    ui.fullscreen.textContent = document.fullscreenElement ? 'Leave full screen' : 'Full screen';
  });
  ui.paste.addEventListener('click', () => {
    ui.pasteDialog.returnValue = '';
    ui.pasteDialog.showModal();
    ui.pasteText.focus();
  });
  ui.pasteDialog.addEventListener('close', () => {
    const text = ui.pasteText.value;
    const client = window.consolegate.client;
    if (ui.pasteDialog.returnValue === 'type' && text) {
      ui.pasteText.value = '';
      client?.typeText?.(text);
    }
    client?.focus();
  });
  ui.disconnect.addEventListener('click', () => {
    const attempt = app.attempt;
    if (!attempt) return;
    attempt.userDisconnect = true;
    if (attempt.client) attempt.client.disconnect();
    else { teardown(); setState('disconnected', TEXT.disconnected); }
  });
  ui.reconnect.addEventListener('click', askForTicket);
  renderScale();
}

// ---------------------------------------------------------------- start

async function loadConfig() {
  const res = await fetch('/consolegate/config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const config = await res.json();
  const origins = Array.isArray(config.engine_origins) ? config.engine_origins : [];
  // Compare as the browser spells origins (no trailing slash, lower-case host).
  return origins.flatMap((o) => {
    try { return [new URL(o).origin]; } catch { return []; }
  });
}

async function main() {
  wireToolbar();
  setState('starting', TEXT.waiting);
  try {
    app.engineOrigins = await loadConfig();
  } catch (err) {
    fail(TEXT.noConfig, String(err));
    return;
  }
  window.addEventListener('message', onMessage);
  setState('waiting', TEXT.waiting);
  if (engineWindows().length === 0) {
    ui.status.title = 'Open the console from the portal: this page gets its console link from there.';
  }
  announceReady();
}

main();
