// consolegate console page.
//
// The engine (portal) opens this page, we tell it we are ready, it answers with a
// ticket and the console password by postMessage. Nothing secret ever travels in this
// page's URL, and a message is only believed when it comes from an engine origin the
// proxy's own configuration names (never from anything the URL could say).
//
// The ticket's `kind` picks the client, loaded on demand: noVNC for `vnc` (vnc.js,
// /novnc/), spice-html5 for `spice` (spice.js, /spice/), xterm.js for `serial`
// (serial.js, /xterm/). Every client reports the same events, so the states, the
// sentences and the reconnect logic below are shared.
//
// Messages to the engine: `consolegate:ready` (loaded), `consolegate:need-ticket`
// (Reconnect pressed, or an automatic reconnect after the connection to the proxy
// dropped), `consolegate:closed` {code, reason, refusal, retry, sentence} whenever a
// session ends or a connection attempt fails.
import { t, setLanguage, language, pickLanguage, translateDocument, LANGUAGES, CATALOGUE } from './i18n.js';
import { MODIFIERS, NAMED, COMBOS, ctrlAltF, functionKey, describeChars, LAYOUTS } from './keys.js';

// Bounded waits: a person should never look at "Connecting…" or "Waiting…" forever.
const CONNECT_GUARD_MS = 20000;
const NEED_TICKET_GUARD_MS = 15000;
const WAIT_GUARD_MS = 4000;
const PROBE_TIMEOUT_MS = 4000;
// Automatic reconnects after the connection to the proxy dropped: the delay before
// each attempt, in seconds (about two minutes in all).
const RETRY_DELAYS_S = [1, 2, 4, 8, 15, 30, 30, 30];
const NOTICE_MS = 6000;
const TICKET_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

// Close reasons the proxy sends that have a sentence of their own (src/relay.rs).
const MAX_DURATION_REASON = 'session reached its maximum duration';
const IDLE_REASON = 'session idle for too long';
const PING_REASON = 'browser stopped answering pings';
const SHUTDOWN_REASON = 'proxy is shutting down';

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
  toolbar: $('toolbar'),
  title: $('title'),
  status: $('status'),
  held: $('held-keys'),
  viewOnly: $('view-only'),
  timer: $('session-timer'),
  screen: $('screen'),
  osk: $('btn-osk'),
  oskInput: $('osk-input'),
  cad: $('btn-cad'),
  keys: $('btn-keys'),
  keysPanel: $('keys-panel'),
  more: $('btn-more'),
  morePanel: $('toolbar-more'),
  paste: $('btn-paste'),
  screenshot: $('btn-screenshot'),
  scale: $('btn-scale'),
  fullscreen: $('btn-fullscreen'),
  disconnect: $('btn-disconnect'),
  reconnect: $('btn-reconnect'),
  lang: $('lang'),
  panel: $('panel'),
  panelText: $('panel-text'),
  panelDetail: $('panel-detail'),
  panelRetry: $('panel-retry'),
  panelReconnect: $('panel-reconnect'),
  panelCancel: $('panel-cancel'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $('notice-close'),
  pasteDialog: $('paste-dialog'),
  pasteText: $('paste-text'),
  pasteHint: $('paste-hint'),
  pasteSend: $('paste-send'),
  pasteClipboard: $('paste-clipboard'),
  pasteCancel: $('paste-cancel'),
  layout: $('layout'),
  layoutRow: $('layout-row'),
  vmClipboard: $('vm-clipboard'),
  vmClipboardText: $('vm-clipboard-text'),
  vmClipboardCopy: $('vm-clipboard-copy'),
  passwordDialog: $('password-dialog'),
  passwordInput: $('password-input'),
  passwordLabel: $('password-label'),
  passwordCancel: $('password-cancel'),
};

const app = {
  state: 'starting',
  title: null,           // the VM's name: the portal's `title`, else the desktop name
  status: { key: 'waiting', params: {} },   // the toolbar's short status
  sentence: null,        // {key, params}: the panel's sentence, when something is wrong
  detail: '',            // the panel's second line: technical, for the administrator
  engineOrigins: [],
  maxDurationS: null,    // limits.max_duration of the proxy, from its config.json
  engine: null,          // {origin, source}: where the accepted ticket came from
  attempt: null,         // the current connection attempt (one per ticket)
  retry: null,           // {attempt, due, timer}: automatic reconnecting
  asking: 0,             // sequence number of the current ticket request
  scale: loadSetting('consolegate.scale') !== 'off',
  layout: LAYOUTS[loadSetting('consolegate.layout')] ? loadSetting('consolegate.layout') : 'us',
  languageChoice: LANGUAGES.includes(loadSetting('consolegate.lang')) ? loadSetting('consolegate.lang') : null,
  portalLanguage: null,
  needTicketTimer: 0,
  waitTimer: 0,
  waited: false,         // the wait guard ran out
  ignored: 0,            // messages refused (the e2e test reads it)
  refusedOrigins: [],    // origins whose messages were refused, for the sentence
  held: new Set(),       // sticky modifiers down
  pageSending: false,    // the page itself is sending keys: no sticky release
  notice: null,          // {key, params, sticky}
  noticeTimer: 0,
  session: null,         // {end, warnBefore, timer}: the session's time limit
  vmClipboard: '',
  keyboardLocked: false,
  oskActive: false,
};

// Read-only view for people debugging in the console and for the end-to-end tests.
window.consolegate = {
  get state() { return app.state; },
  // The sentence when something is wrong, else the toolbar's status.
  get status() { return app.sentence ? t(app.sentence.key, app.sentence.params) : t(app.status.key, app.status.params); },
  get detail() { return app.detail; },
  get rfb() { return app.attempt?.client?.rfb ?? null; },
  // The running client: {kind, ...}; its `sc` (SPICE) or `term` (serial) for tests.
  get client() { return app.attempt ? app.attempt.client : null; },
  get kind() { return app.attempt ? app.attempt.kind : null; },
  // The ticket says `view`: the proxy forwards none of this page's input.
  get viewOnly() { return Boolean(app.attempt && app.attempt.view); },
  get ignored() { return app.ignored; },
  // The ticket id (not the ticket): tells one ticket from the next, as the logs do.
  get jti() { return app.attempt ? app.attempt.jti : null; },
  get engineOrigins() { return [...app.engineOrigins]; },
  get language() { return language(); },
  get held() { return [...app.held]; },
  get keyboardLocked() { return app.keyboardLocked; },
  get retry() { return app.retry ? { attempt: app.retry.attempt, max: RETRY_DELAYS_S.length } : null; },
  get notice() { return app.notice ? t(app.notice.key, app.notice.params) : null; },
  get compact() { return ui.body.dataset.compact === 'true'; },
};

// ---------------------------------------------------------------- rendering

function client() {
  return app.attempt ? app.attempt.client : null;
}

function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (s >= 3600 && s % 3600 === 0) return t('durationHours', { n: s / 3600 });
  if (s >= 60 && s % 60 === 0) return t('durationMinutes', { n: s / 60 });
  if (s >= 60) return `${t('durationMinutes', { n: Math.floor(s / 60) })} ${t('durationSeconds', { n: s % 60 })}`;
  return t('durationSeconds', { n: s });
}

function formatClock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

// Everything on screen follows from `app`: a language switch is one render().
function render() {
  const state = app.state;
  ui.body.dataset.state = state;
  const live = state === 'connected';
  const c = client();

  let status = t(app.status.key, app.status.params);
  if (state === 'reconnecting' && app.retry) {
    const seconds = Math.max(0, Math.ceil((app.retry.due - Date.now()) / 1000));
    status = t('reconnectingIn', { seconds });
  }
  ui.status.textContent = status;
  ui.status.title = app.sentence ? t(app.sentence.key, app.sentence.params) : '';

  // The panel: what is wrong, why, and the way out.
  ui.panel.hidden = !app.sentence;
  if (app.sentence) {
    ui.panelText.textContent = t(app.sentence.key, app.sentence.params);
    ui.panelDetail.textContent = typeof app.detail === 'object' && app.detail ? t(app.detail.key, app.detail.params) : (app.detail || '');
    if (state === 'reconnecting' && app.retry) {
      const seconds = Math.max(0, Math.ceil((app.retry.due - Date.now()) / 1000));
      ui.panelRetry.textContent = t('retryLine', { seconds, attempt: app.retry.attempt, max: RETRY_DELAYS_S.length });
      ui.panelReconnect.textContent = t('retryNow');
      ui.panelReconnect.hidden = false;
      ui.panelCancel.hidden = false;
    } else {
      ui.panelRetry.textContent = '';
      ui.panelReconnect.textContent = t('reconnect');
      ui.panelReconnect.hidden = !app.engine;
      ui.panelCancel.hidden = true;
    }
  }

  // Buttons that act on a console are there while one is open (the failure panel then
  // has the toolbar's room for the status). A view-only ticket's session takes no
  // input: the proxy drops it whatever the page does; the page says so and offers none.
  const view = Boolean(app.attempt && app.attempt.view);
  const input = live && c && !view;
  ui.viewOnly.hidden = !view;
  for (const b of [ui.cad, ui.keys, ui.paste, ui.screenshot]) b.hidden = !c;
  ui.cad.disabled = !(input && c.keys && c.keys.combos);
  ui.keys.disabled = !(input && c.keys);
  ui.paste.disabled = !(input && c.typeText);
  ui.screenshot.disabled = !(live && c && c.screenshot);
  ui.screenshot.title = t(c && c.kind === 'serial' ? 'screenshotTextTitle' : 'screenshotTitle');
  ui.scale.disabled = Boolean(c && !c.setScale);
  ui.scale.textContent = t(app.scale ? 'scaleOn' : 'scaleOff');
  ui.scale.setAttribute('aria-pressed', String(app.scale));
  ui.disconnect.disabled = !(live || state === 'connecting');
  ui.reconnect.disabled = !app.engine || live || state === 'connecting' || state === 'asking';
  // One of the two, to keep the toolbar short.
  ui.disconnect.hidden = !(live || state === 'connecting');
  ui.reconnect.hidden = !ui.disconnect.hidden;
  ui.osk.disabled = !input;

  // Full screen in a cross-origin iframe needs the portal's allow="fullscreen".
  ui.fullscreen.disabled = !document.fullscreenEnabled;
  ui.fullscreen.textContent = t(document.fullscreenElement ? 'fullscreenLeave' : 'fullscreen');
  ui.fullscreen.title = t(document.fullscreenEnabled ? 'fullscreenTitle' : 'fullscreenBlocked');

  renderKeysPanel();
  ui.held.hidden = app.held.size === 0;
  ui.held.textContent = t('held', { keys: [...app.held].map((m) => t(MODIFIERS[m].label)).join('+') });
  renderNotice();
  fitToolbar();
}

function setState(state, statusKey, { sentence = null, detail = '' } = {}) {
  app.state = state;
  app.status = { key: statusKey, params: {} };
  app.sentence = sentence;
  app.detail = detail;
  if (state !== 'connected') closeMenus();
  render();
  window.dispatchEvent(new CustomEvent('consolegate:state', { detail: { state, text: window.consolegate.status } }));
}

// The person disconnected (or cancelled the password): the panel offers Reconnect.
function disconnected() {
  setState('disconnected', 'disconnected', { sentence: { key: 'disconnected', params: {} } });
}

// A failure: the panel shows the sentence (and the Reconnect button when a portal can
// give a new ticket). `closed`: what to tell the engine ({code, reason, refusal}).
function fail(key, params = {}, detail = '', closed = null) {
  if (detail) console.warn(`consolegate: ${t(key, params)} (${typeof detail === 'object' ? t(detail.key, detail.params) : detail})`);
  stopRetry();
  setState('failed', 'notConnected', { sentence: { key, params }, detail });
  if (closed) notifyClosed({ ...closed, retry: false });
}

function notifyClosed({ code = 1006, reason = '', refusal = null, retry = false }) {
  const engine = app.engine;
  if (!engine || engine.source.closed) return;
  engine.source.postMessage({
    type: 'consolegate:closed', code, reason, refusal, retry, sentence: window.consolegate.status,
  }, engine.origin);
}

function showNotice(key, params = {}, { sticky = false, kind = 'info' } = {}) {
  clearTimeout(app.noticeTimer);
  app.notice = { key, params, sticky, kind };
  if (!sticky) app.noticeTimer = setTimeout(hideNotice, NOTICE_MS);
  renderNotice();
}

function hideNotice() {
  clearTimeout(app.noticeTimer);
  app.notice = null;
  renderNotice();
}

function renderNotice() {
  ui.notice.hidden = !app.notice;
  if (app.notice) ui.noticeText.textContent = t(app.notice.key, app.notice.params);
}

// The toolbar is one row: when its buttons do not fit, the less used ones move into
// the ☰ menu (body[data-compact]).
function fitToolbar() {
  ui.body.dataset.compact = 'false';
  const overflow = ui.toolbar.scrollWidth > ui.toolbar.clientWidth + 1;
  ui.body.dataset.compact = String(overflow);
  if (!overflow) setMenu(ui.more, ui.morePanel, false);
}

// ---------------------------------------------------------------- language

function applyLanguage() {
  const wanted = app.languageChoice ? [app.languageChoice] : [app.portalLanguage, ...(navigator.languages || [navigator.language])];
  setLanguage(pickLanguage(wanted));
  translateDocument();
  ui.lang.value = language();
  renderTitle();
  render();
}

function renderTitle() {
  const title = app.title || null;
  ui.title.textContent = title || t('console');
  document.title = title ? t('documentTitle', { title }) : t('console');
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
    if (!app.refusedOrigins.includes(event.origin)) app.refusedOrigins.push(event.origin);
    console.warn(`consolegate: ignored "${data.type}" from ${event.origin}: not a configured engine origin`);
    if (app.waited) explainWaiting();
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
    clearTimeout(app.waitTimer);
    if (typeof data.lang === 'string' && data.lang !== app.portalLanguage) {
      app.portalLanguage = data.lang;
      applyLanguage();
    }
    connect(data);
  }
}

function announceReady() {
  // No secret in this message, so any target origin is fine; the answer is checked.
  for (const win of engineWindows()) win.postMessage({ type: 'consolegate:ready' }, '*');
}

function referrerOrigin() {
  try { return new URL(document.referrer).origin; } catch { return null; }
}

// Still waiting for the portal after WAIT_GUARD_MS: say why, in a sentence.
function explainWaiting() {
  if (app.engine || !['waiting', 'failed'].includes(app.state)) return;
  const allowed = app.engineOrigins.join(', ') || t('noneAllowed');
  if (app.refusedOrigins.length) {
    const origin = app.refusedOrigins[app.refusedOrigins.length - 1];
    fail('originRefused', { origin }, { key: 'originRefusedDetail', params: { allowed } });
  } else if (engineWindows().length === 0) {
    fail('noPortal');
  } else {
    fail('portalNoAnswer', {}, { key: 'portalNoAnswerDetail', params: { opener: referrerOrigin() || '?', allowed } });
  }
}

// Is the proxy (which serves this page) there? Asked before asking the portal for a
// ticket the proxy could not take, and to say which side failed.
async function probeProxy() {
  try {
    const res = await fetch('/consolegate/config.json', { cache: 'no-store', signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    return res.ok;
  } catch {
    return false;
  }
}

// Asks the engine for a new ticket (Reconnect, or an automatic reconnect).
async function askForTicket() {
  teardown();
  const engine = app.engine;
  if (!engine || engine.source.closed) {
    fail('portalGone');
    return;
  }
  const ask = ++app.asking;
  const current = () => ask === app.asking && app.state === 'asking';
  setState('asking', 'asking', app.retry ? { sentence: app.sentence, detail: app.detail } : {});
  // The proxy first: a ticket it cannot take would be wasted (and may be single-use).
  if (!await probeProxy()) {
    if (current()) proxyDown();
    return;
  }
  if (!current()) return;
  // Never reuse the old ticket: it may be single-use or about to expire.
  engine.source.postMessage({ type: 'consolegate:need-ticket' }, engine.origin);
  clearTimeout(app.needTicketTimer);
  app.needTicketTimer = setTimeout(async () => {
    if (!current()) return;
    const up = await probeProxy();
    if (!current()) return;
    if (!up) proxyDown();
    else fail('portalSilent', {}, '', { code: 1006, refusal: 'portal_silent' });
  }, NEED_TICKET_GUARD_MS);
}

// The proxy does not answer: keep trying when reconnecting by ourselves, else say so.
function proxyDown(close = {}) {
  if (app.retry) {
    app.retry.sentence = { key: 'proxyUnreachable', params: {} };
    scheduleRetry();
  } else {
    fail('proxyUnreachable', {}, '', { code: close.code || 1006, reason: close.reason || '', refusal: 'network' });
  }
}

// ---------------------------------------------------------------- automatic reconnect

// The connection to the proxy dropped (or the proxy is draining): reconnect by
// ourselves with growing delays, each time with a fresh ticket from the engine.
function startRetry(key, close) {
  if (!app.retry) app.retry = { attempt: 0, due: 0, timer: 0 };
  app.retry.sentence = { key, params: {} };
  app.retry.detail = close.reason ? `${close.code}: ${close.reason}` : '';
  scheduleRetry();
  notifyClosed({ ...close, retry: Boolean(app.retry) });
}

function scheduleRetry() {
  const r = app.retry;
  clearInterval(r.timer);
  if (r.attempt >= RETRY_DELAYS_S.length) {
    const attempts = r.attempt;
    app.retry = null;
    fail('gaveUp', { attempts }, '', { code: 1006, refusal: 'network' });
    return;
  }
  r.due = Date.now() + RETRY_DELAYS_S[r.attempt] * 1000;
  r.attempt += 1;
  setState('reconnecting', 'reconnectingNow', { sentence: r.sentence, detail: r.detail });
  r.timer = setInterval(() => {
    if (app.retry !== r) { clearInterval(r.timer); return; }
    if (Date.now() >= r.due) {
      clearInterval(r.timer);
      askForTicket();
    } else {
      render();
    }
  }, 250);
}

function stopRetry() {
  if (!app.retry) return;
  clearInterval(app.retry.timer);
  app.retry = null;
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
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS * 2),
    });
    if (!res.ok) return { ok: false, code: 'http_' + res.status, reason: `HTTP ${res.status}` };
    return await res.json();
  } catch (err) {
    return { ok: false, code: 'network', reason: String(err) };
  }
}

// The proxy's refusal codes (the `code` of a /consolegate/check answer) and the
// catalogue key (i18n.js) of the sentence for each. This object is one side of a
// contract: a test checks that every key here is a code the proxy sends
// (docs/refusal-codes.md lists them). Codes without an entry get the generic "not
// valid" sentence; `network` (the proxy did not answer) is the page's own.
const REFUSAL_SENTENCES = {
  expired: 'expired',
  not_yet_valid: 'notYetValid',
  replayed: 'replayed',
  no_audience: 'audience',
  wrong_audience: 'audience',
  lifetime_too_long: 'tooLong',
  target_not_allowed: 'targetNotAllowed',
  target_is_proxy: 'targetNotAllowed',
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
  view_unsupported: 'viewUnsupported',
};

function sentenceForCheck(check) {
  if (check.code === 'network') return 'proxyUnreachable';
  return REFUSAL_SENTENCES[check.code] || 'invalid';
}

// ---------------------------------------------------------------- connection

// Where a client connects, and with which WebSocket subprotocols: the one place that
// says how the ticket travels. In a subprotocol, `ticket.<ticket>` next to `binary`
// (the proxy answers `binary`), to a path without it: the ticket appears in no URL,
// so no balancer's access log, proxy log or browser history keeps it (the contract's
// "Where the ticket travels"). VNC and serial pass `protocols` to their WebSocket;
// spice.js makes spice-html5's channels offer them too.
function endpoint(ticket) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return { url: `${scheme}//${location.host}/console`, protocols: ['binary', `ticket.${ticket}`] };
}

function teardown() {
  const attempt = app.attempt;
  app.attempt = null;
  stopSessionTimer();
  releaseHeld({ send: false });
  if (!attempt) return;
  attempt.superseded = true;
  clearTimeout(attempt.guard);
  if (ui.passwordDialog.open) ui.passwordDialog.close('cancel');
  try { attempt.client?.disconnect(); } catch { /* already gone */ }
}

async function connect({ ticket, password, title }) {
  teardown();
  clearTimeout(app.needTicketTimer);
  app.asking += 1;
  if (typeof title === 'string' && title) {
    app.title = title;
    renderTitle();
  }
  if (typeof ticket !== 'string' || !TICKET_RE.test(ticket) || ticket.length > 4096) {
    fail('invalid', {}, { key: 'detailNotTicket', params: {} }, { refusal: 'malformed' });
    return;
  }
  const claims = ticketClaims(ticket);
  if (!claims) {
    fail('invalid', {}, { key: 'detailNotJson', params: {} }, { refusal: 'malformed' });
    return;
  }
  const kind = claims.kind || 'vnc';
  if (!['vnc', 'spice', 'serial'].includes(kind)) {
    fail('unsupported', {}, { key: 'detailKind', params: { kind } }, { refusal: 'unknown_kind' });
    return;
  }

  const attempt = {
    ticket,
    kind,
    // For the toolbar only: the proxy enforces `view` itself.
    view: claims.view === true,
    client: null,
    jti: typeof claims.jti === 'string' ? claims.jti : null,
    password: typeof password === 'string' ? password : null,
    opened: false,
    connected: false,
    userDisconnect: false,
    superseded: false,
    failure: null,
    close: null,
    guard: 0,
  };
  app.attempt = attempt;
  // While reconnecting by ourselves, the panel keeps saying why.
  setState('connecting', 'connecting', app.retry ? { sentence: app.sentence, detail: app.detail } : {});

  const check = await checkTicket(ticket);
  if (attempt.superseded) return;
  if (!check.ok) {
    if (check.code === 'network') proxyDown();
    else fail(sentenceForCheck(check), {}, check.reason, { code: 1006, reason: check.reason || '', refusal: check.code });
    return;
  }
  if (kind === 'vnc') openVncConsole(attempt);
  else if (kind === 'spice') openSpiceConsole(attempt);
  else openSerialConsole(attempt);
}

// Callbacks every client reports through.
function clientEvents(attempt) {
  return {
    opened() { attempt.opened = true; },
    closed(close) { attempt.close = close; },
    connected() {
      if (attempt.superseded) return;
      attempt.connected = true;
      clearTimeout(attempt.guard);
      stopRetry();
      setState('connected', 'connected');
      startSessionTimer();
      focusConsole();
    },
    ended(failure) {
      if (failure && !attempt.failure) attempt.failure = failure;
      onDisconnect(attempt);
    },
    askPassword: (kind) => promptPassword(kind),
    passwordCancelled() {
      if (attempt.superseded) return;
      attempt.userDisconnect = true;
      teardown();
      stopRetry();
      disconnected();
      notifyClosed({ code: 1000, reason: 'password prompt cancelled', refusal: 'cancelled' });
    },
    desktopName(name) {
      if (!app.title && name) {
        app.title = name;
        renderTitle();
      }
    },
    clipboard(text) {
      app.vmClipboard = text;
      renderClipboard();
    },
    keyUp(isModifier) {
      if (!isModifier && !app.pageSending && app.held.size) releaseHeld();
    },
  };
}

function startGuard(attempt) {
  attempt.guard = setTimeout(() => {
    if (attempt.connected || attempt.superseded) return;
    // A person typing the password is not a server that does not answer.
    if (ui.passwordDialog.open) { startGuard(attempt); return; }
    teardown();
    fail('noAnswer', {}, '', { code: 1006, refusal: 'no_answer' });
  }, CONNECT_GUARD_MS);
}

async function loadClient(attempt, path) {
  try {
    return await import(path);
  } catch (err) {
    if (attempt === app.attempt) fail('clientMissing', {}, `${path}: ${err.message}`, { refusal: 'client_missing' });
    return null;
  }
}

async function openVncConsole(attempt) {
  const mod = await loadClient(attempt, './vnc.js');
  if (!mod || attempt.superseded) return;
  attempt.client = mod.openVnc({
    endpoint: endpoint(attempt.ticket),
    screen: ui.screen,
    scale: app.scale,
    password: attempt.password,
    viewOnly: attempt.view,
    events: clientEvents(attempt),
  });
  startGuard(attempt);
}

async function openSpiceConsole(attempt) {
  const mod = await loadClient(attempt, './spice.js');
  if (!mod || attempt.superseded) return;
  if (attempt.password === null) {
    // SPICE sends its password as soon as the channel opens: ask first.
    const password = await promptPassword('spice');
    if (attempt.superseded) return;
    if (password === null) {
      clientEvents(attempt).passwordCancelled();
      return;
    }
    attempt.password = password;
  }
  attempt.client = mod.openSpice({
    endpoint: endpoint(attempt.ticket),
    password: attempt.password,
    screen: ui.screen,
    scale: app.scale,
    events: clientEvents(attempt),
  });
  startGuard(attempt);
}

async function openSerialConsole(attempt) {
  const mod = await loadClient(attempt, './serial.js');
  if (!mod || attempt.superseded) return;
  const opened = await mod.openSerial({
    endpoint: endpoint(attempt.ticket),
    screen: ui.screen,
    viewOnly: attempt.view,
    events: clientEvents(attempt),
  });
  if (attempt.superseded) { opened.disconnect(); return; }
  attempt.client = opened;
  if (attempt.connected) render();
  startGuard(attempt);
}

// Resolves to the typed password, or null when the person cancels (Cancel, Escape).
function promptPassword(kind) {
  return new Promise((resolve) => {
    ui.passwordLabel.textContent = t(kind === 'spice' ? 'passwordSpice' : 'passwordVnc');
    ui.passwordInput.value = '';
    ui.passwordDialog.returnValue = '';
    ui.passwordDialog.onclose = () => {
      const value = ui.passwordDialog.returnValue === 'ok' ? ui.passwordInput.value : null;
      ui.passwordInput.value = '';
      resolve(value);
      focusConsole();
    };
    ui.passwordDialog.showModal();
    ui.passwordInput.focus();
  });
}

async function onDisconnect(attempt) {
  clearTimeout(attempt.guard);
  if (attempt.superseded || attempt !== app.attempt) return;
  stopSessionTimer();
  releaseHeld({ send: false });
  const close = attempt.close || { code: 1006, reason: '' };
  const reason = close.reason || '';
  if (attempt.userDisconnect) {
    stopRetry();
    disconnected();
    notifyClosed({ code: 1000, reason: 'disconnected by the user', refusal: 'user' });
    return;
  }
  if (attempt.failure) {
    const f = attempt.failure;
    fail(f.key, f.params, f.detail, { ...close, refusal: f.cause || null });
    return;
  }
  if (!attempt.opened) {
    // The upgrade was refused or the proxy could not be reached. The ticket checked
    // fine a moment ago, so ask again: it may have expired or been used meanwhile.
    // A single-use ticket is recorded before the proxy connects to the console
    // server, so "replayed" here is most likely our own refused attempt: that and a
    // still-good ticket both mean the console server could not be reached.
    const check = await checkTicket(attempt.ticket);
    if (attempt !== app.attempt) return;
    if (check.code === 'network') proxyDown(close);
    else if (!check.ok && check.code !== 'replayed') fail(sentenceForCheck(check), {}, check.reason, { ...close, refusal: check.code });
    else fail('unreachable', {}, { key: 'detailUnreachable', params: {} }, { ...close, refusal: 'unreachable' });
    return;
  }
  const detail = reason ? `${close.code}: ${reason}` : { key: 'detailClosed', params: { code: close.code } };
  switch (close.code) {
    case 1000:
      if (reason === IDLE_REASON) fail('idle', {}, detail, close);
      else fail('serverClosed', {}, reason, close);
      break;
    case 1001:
      // Draining (another proxy behind the balancer may take us) or a lost heartbeat.
      startRetry(reason === PING_REASON ? 'lost' : 'shuttingDownRetry', close);
      break;
    case 1006:
      if (attempt.connected) startRetry('lost', close);
      else fail('lost', {}, detail, close);
      break;
    case 1008:
      if (reason === MAX_DURATION_REASON) {
        if (app.maxDurationS) fail('maxDuration', { limit: formatDuration(app.maxDurationS) }, detail, close);
        else fail('maxDurationUnknown', {}, detail, close);
      } else if (reason) fail('proxyEnded', { reason }, detail, close);
      else fail('ended', {}, detail, close);
      break;
    case 1011:
      if (reason) fail('connectionFailed', { reason }, detail, close);
      else fail('relayError', {}, detail, close);
      break;
    default:
      if (reason) fail('closedCodeReason', { code: close.code, reason }, detail, close);
      else fail('closedCode', { code: close.code }, detail, close);
  }
}

// ---------------------------------------------------------------- session time

// limits.max_duration ends every session: count down the last minutes, and say so
// before it happens (five minutes before, or half the limit when it is shorter).
function startSessionTimer() {
  stopSessionTimer();
  if (!app.maxDurationS) return;
  const limitMs = app.maxDurationS * 1000;
  const session = { end: Date.now() + limitMs, warnBefore: Math.min(300000, limitMs / 2), warned: false, timer: 0 };
  session.timer = setInterval(() => tickSession(session), 250);
  app.session = session;
  tickSession(session);
}

function tickSession(session) {
  if (app.session !== session) return;
  const left = session.end - Date.now();
  const inWarning = left <= session.warnBefore;
  ui.timer.hidden = !inWarning;
  if (!inWarning) return;
  const time = formatClock(left);
  ui.timer.textContent = t('endsIn', { time });
  const params = { time, limit: formatDuration(app.maxDurationS) };
  if (!session.warned) {
    session.warned = true;
    showNotice('sessionEndsIn', params, { sticky: true, kind: 'session' });
  } else if (app.notice && app.notice.kind === 'session') {
    app.notice.params = params;
    renderNotice();
  }
}

function stopSessionTimer() {
  if (!app.session) return;
  clearInterval(app.session.timer);
  app.session = null;
  ui.timer.hidden = true;
  if (app.notice && app.notice.kind === 'session') hideNotice();
}

// ---------------------------------------------------------------- keys

// Keys meant for the console never act on the page: after every button, the console
// has the keyboard again (or the on-screen keyboard's field, on a phone).
function focusConsole() {
  if (ui.pasteDialog.open || ui.passwordDialog.open) return;
  if (app.oskActive) { ui.oskInput.focus({ preventScroll: true }); return; }
  try { client()?.focus(); } catch { /* not ready */ }
}

// Sends keys the page itself presses: sticky modifiers stay down around them.
function pageSend(fn) {
  const c = client();
  if (!c || !c.sendKey || app.state !== 'connected') return;
  app.pageSending = true;
  try { fn(c); } finally { app.pageSending = false; }
}

function pressKey(key) {
  pageSend((c) => { c.sendKey(key.keysym, key.code, true); c.sendKey(key.keysym, key.code, false); });
  releaseHeld();
}

function pressCombo(keys) {
  pageSend((c) => {
    for (const k of keys) c.sendKey(k.keysym, k.code, true);
    for (const k of [...keys].reverse()) c.sendKey(k.keysym, k.code, false);
  });
  releaseHeld();
}

function toggleModifier(name) {
  const m = MODIFIERS[name];
  const down = !app.held.has(name);
  pageSend((c) => c.sendKey(m.keysym, m.code, down));
  if (down) app.held.add(name);
  else app.held.delete(name);
  render();
}

// Lets go of the sticky modifiers (after the next ordinary key, or when the session ends).
function releaseHeld({ send = true } = {}) {
  if (!app.held.size) return;
  const held = [...app.held];
  app.held.clear();
  if (send) pageSend((c) => { for (const name of held.reverse()) c.sendKey(MODIFIERS[name].keysym, MODIFIERS[name].code, false); });
  render();
}

// Alt+SysRq, with Alt left down for the command key that follows (Linux's magic
// SysRq wants Alt held while it is pressed).
function pressSysRq() {
  pageSend((c) => {
    if (!app.held.has('alt')) c.sendKey(MODIFIERS.alt.keysym, MODIFIERS.alt.code, true);
    c.sendKey(NAMED.SysRq.keysym, NAMED.SysRq.code, true);
    c.sendKey(NAMED.SysRq.keysym, NAMED.SysRq.code, false);
  });
  app.held.add('alt');
  render();
}

function buildKeysPanel() {
  for (let n = 1; n <= 12; n++) {
    const f = document.createElement('button');
    f.type = 'button';
    f.className = 'key';
    f.dataset.fkey = String(n);
    f.textContent = `F${n}`;
    $('fkeys').append(f);
    const vt = document.createElement('button');
    vt.type = 'button';
    vt.className = 'key';
    vt.dataset.vt = String(n);
    vt.textContent = `F${n}`;
    vt.title = `Ctrl+Alt+F${n}`;
    $('vt-keys').append(vt);
  }
}

function renderKeysPanel() {
  const keys = client()?.keys;
  for (const b of ui.keysPanel.querySelectorAll('button.key')) {
    let ok = Boolean(keys);
    if (keys && b.dataset.modifier) ok = keys.modifiers.includes(b.dataset.modifier);
    if (keys && (b.dataset.combo || b.dataset.vt)) ok = keys.combos;
    b.disabled = !ok;
    if (keys && !ok && client().kind === 'serial') b.title = t('keyNotOnSerial');
    if (b.dataset.modifier) b.setAttribute('aria-pressed', String(app.held.has(b.dataset.modifier)));
  }
}

function onKeysPanelClick(e) {
  const b = e.target.closest('button.key');
  if (!b || b.disabled) return;
  if (b.dataset.modifier) toggleModifier(b.dataset.modifier);
  else if (b.dataset.key) pressKey(NAMED[b.dataset.key]);
  else if (b.dataset.fkey) pressKey(functionKey(Number(b.dataset.fkey)));
  else if (b.dataset.vt) pressCombo(ctrlAltF(Number(b.dataset.vt)));
  else if (b.dataset.combo === 'sysrq') pressSysRq();
  else if (COMBOS[b.dataset.combo]) pressCombo(COMBOS[b.dataset.combo]);
  focusConsole();
}

// ---------------------------------------------------------------- on-screen keyboard

// Phones show their keyboard for a focused text field: what lands in it is turned
// into key presses (through the guest layout, as "Paste text" does) and removed. The
// field's text is compared before and after each input event, which also covers
// keyboards that compose whole words.
let oskLast = '';
let oskComposing = false;

function oskType(text) {
  const c = client();
  if (!c || !c.typeText || app.state !== 'connected') return;
  c.typeText(text, app.layout, () => app.state === 'connected').then((result) => reportTyped(result));
}

function oskBackspace(count) {
  for (let i = 0; i < count; i++) pressKey(NAMED.BackSpace);
}

function onOskInput() {
  const now = ui.oskInput.value;
  let same = 0;
  while (same < oskLast.length && same < now.length && oskLast[same] === now[same]) same++;
  const removed = [...oskLast.slice(same)].length;
  const added = now.slice(same);
  oskLast = now;
  if (removed) oskBackspace(removed);
  if (added) oskType(added);
  if (!oskComposing && now.length > 64) { ui.oskInput.value = ''; oskLast = ''; }
}

function onOskKeydown(e) {
  // Keys that type nothing go straight to the console (a tablet's hardware keyboard).
  const named = { Enter: 'Return', Backspace: 'BackSpace', Tab: 'Tab', Escape: 'Escape' }[e.key];
  if (!named || e.isComposing || e.keyCode === 229) return;
  e.preventDefault();
  if (named === 'Return') oskType('\n');
  else pressKey(NAMED[named] || { keysym: 0xff0d, code: 'Enter' });
}

function toggleOsk() {
  if (app.oskActive) {
    app.oskActive = false;
    ui.oskInput.blur();
    focusConsole();
  } else {
    app.oskActive = true;
    ui.oskInput.value = '';
    oskLast = '';
    ui.oskInput.focus({ preventScroll: true });
  }
  ui.osk.setAttribute('aria-pressed', String(app.oskActive));
}

// ---------------------------------------------------------------- paste, clipboard, screenshot

function reportTyped(result) {
  if (!result || !result.unsent.length) {
    if (result && result.total > 1) showNotice('typed', { count: result.sent });
    return;
  }
  const chars = describeChars(result.unsent);
  if (result.control) showNotice('typedControl', { sent: result.sent, total: result.total, chars }, { sticky: true });
  else showNotice('typedSome', { sent: result.sent, total: result.total, chars, layout: t(LAYOUTS[app.layout].label) }, { sticky: true });
}

function renderClipboard() {
  ui.vmClipboard.hidden = !app.vmClipboard;
  ui.vmClipboardText.value = app.vmClipboard;
}

function openPaste() {
  const c = client();
  if (!c || !c.typeText) return;
  const scancodes = c.scancodes ? c.scancodes() : false;
  ui.layoutRow.hidden = !scancodes;
  ui.pasteHint.textContent = c.kind === 'serial' ? '' : `${t('pasteHint')} ${t(scancodes ? 'pasteHintLayout' : 'pasteHintKeysyms')}`;
  ui.pasteClipboard.hidden = !c.clipboard;
  ui.layout.value = app.layout;
  renderClipboard();
  ui.pasteDialog.returnValue = '';
  ui.pasteDialog.showModal();
  ui.pasteText.focus();
}

async function onPasteClose() {
  const text = ui.pasteText.value;
  const c = client();
  const action = ui.pasteDialog.returnValue;
  if (text && c && action === 'type') {
    ui.pasteText.value = '';
    reportTyped(await c.typeText(text, app.layout, () => app.state === 'connected' && client() === c));
  } else if (text && c && c.clipboard && action === 'clipboard') {
    ui.pasteText.value = '';
    const result = c.clipboard.send(text);
    if (result.unsent.length) showNotice('clipboardLatin1', { chars: describeChars(result.unsent) }, { sticky: true });
    else showNotice('clipboardSent', { count: result.count });
  }
  focusConsole();
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function takeScreenshot() {
  const c = client();
  if (!c || !c.screenshot) return;
  const shot = await c.screenshot();
  if (!shot) { showNotice('screenshotNone'); return; }
  const pad = (n) => String(n).padStart(2, '0');
  const d = new Date();
  const stamp = `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
  const base = (app.title || 'console').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'console';
  const file = `${base}-${stamp}.${shot.ext}`;
  download(shot.blob, file);
  showNotice('screenshotSaved', { file });
}

// ---------------------------------------------------------------- full screen

async function toggleFullscreen() {
  if (!document.fullscreenEnabled) return;
  try {
    if (document.fullscreenElement) await document.exitFullscreen();
    else await document.documentElement.requestFullscreen({ navigationUI: 'hide' });
  } catch (err) {
    console.warn('consolegate: full screen refused', err);
  }
}

// In full screen, Chromium's Keyboard Lock lets Esc, Alt+Tab and the Windows key
// reach the console instead of the browser and the desktop (top-level pages only).
async function onFullscreenChange() {
  if (document.fullscreenElement) {
    if (window.top === window && navigator.keyboard && navigator.keyboard.lock) {
      try {
        await navigator.keyboard.lock();
        app.keyboardLocked = true;
        showNotice('keyboardLocked');
      } catch (err) {
        console.warn('consolegate: keyboard lock refused', err);
      }
    }
  } else if (app.keyboardLocked) {
    navigator.keyboard.unlock();
    app.keyboardLocked = false;
  }
  render();
  focusConsole();
}

// ---------------------------------------------------------------- toolbar

function setMenu(button, panel, open) {
  button.setAttribute('aria-expanded', String(open));
  if (panel === ui.keysPanel) panel.hidden = !open;
  else panel.dataset.open = String(open);
}

function closeMenus() {
  setMenu(ui.keys, ui.keysPanel, false);
  setMenu(ui.more, ui.morePanel, false);
}

function wireToolbar() {
  // A button clicked with the mouse never takes the focus from the console, so the
  // next key (Enter, Space) goes to the console, not to the button again.
  const keepFocus = (e) => { if (e.target.closest('button')) e.preventDefault(); };
  ui.toolbar.addEventListener('mousedown', keepFocus);
  ui.panel.addEventListener('mousedown', keepFocus);
  ui.notice.addEventListener('mousedown', keepFocus);
  // After any button (mouse, touch or keyboard), the keyboard is the console's again.
  ui.toolbar.addEventListener('click', (e) => {
    if (e.target.closest('button') && e.target.closest('button') !== ui.paste) setTimeout(focusConsole, 0);
  });

  ui.cad.addEventListener('click', () => pressCombo(COMBOS['ctrl-alt-del']));
  ui.keys.addEventListener('click', () => {
    const open = ui.keysPanel.hidden;
    setMenu(ui.more, ui.morePanel, false);
    setMenu(ui.keys, ui.keysPanel, open);
  });
  ui.keysPanel.addEventListener('click', onKeysPanelClick);
  ui.more.addEventListener('click', () => {
    const open = ui.morePanel.dataset.open !== 'true';
    setMenu(ui.keys, ui.keysPanel, false);
    setMenu(ui.more, ui.morePanel, open);
  });
  // The ☰ menu closes after its action; the keys panel stays for the next key.
  ui.morePanel.addEventListener('click', (e) => {
    if (e.target.closest('button')) setMenu(ui.more, ui.morePanel, false);
  });
  // A touch or click on the console closes the menus.
  $('stage').addEventListener('pointerdown', closeMenus);

  ui.scale.addEventListener('click', () => {
    app.scale = !app.scale;
    saveSetting('consolegate.scale', app.scale ? 'on' : 'off');
    client()?.setScale?.(app.scale);
    render();
  });
  ui.fullscreen.addEventListener('click', toggleFullscreen);
  document.addEventListener('fullscreenchange', onFullscreenChange);
  ui.paste.addEventListener('click', openPaste);
  ui.screenshot.addEventListener('click', takeScreenshot);
  ui.disconnect.addEventListener('click', () => {
    const attempt = app.attempt;
    if (!attempt) return;
    attempt.userDisconnect = true;
    if (attempt.client) attempt.client.disconnect();
    else { teardown(); disconnected(); }
  });
  const reconnect = () => { stopRetry(); askForTicket(); };
  ui.reconnect.addEventListener('click', reconnect);
  ui.panelReconnect.addEventListener('click', () => {
    if (app.state === 'reconnecting' && app.retry) {
      clearInterval(app.retry.timer);
      askForTicket();
    } else {
      reconnect();
    }
  });
  ui.panelCancel.addEventListener('click', () => {
    const sentence = app.retry ? app.retry.sentence : { key: 'lost', params: {} };
    fail(sentence.key, sentence.params, app.detail);
  });
  ui.noticeClose.addEventListener('click', () => { hideNotice(); focusConsole(); });

  ui.osk.addEventListener('click', (e) => { e.stopPropagation(); toggleOsk(); });
  ui.oskInput.addEventListener('input', onOskInput);
  ui.oskInput.addEventListener('keydown', onOskKeydown);
  ui.oskInput.addEventListener('compositionstart', () => { oskComposing = true; });
  ui.oskInput.addEventListener('compositionend', () => { oskComposing = false; });
  ui.oskInput.addEventListener('blur', () => {
    // Focus moved to the console or elsewhere: the phone's keyboard is gone.
    setTimeout(() => {
      if (document.activeElement !== ui.oskInput) {
        app.oskActive = false;
        ui.osk.setAttribute('aria-pressed', 'false');
      }
    }, 0);
  });

  // Short codes keep the toolbar short; each option's title is the language's name.
  for (const lang of LANGUAGES) {
    const option = document.createElement('option');
    option.value = lang;
    option.textContent = lang.toUpperCase();
    option.title = CATALOGUE[lang].languageName;
    ui.lang.append(option);
  }
  ui.lang.addEventListener('change', () => {
    app.languageChoice = ui.lang.value;
    saveSetting('consolegate.lang', ui.lang.value);
    applyLanguage();
    focusConsole();
  });

  // Paste dialog: Enter in the text is a new line; Ctrl+Enter types it; Escape cancels.
  ui.pasteCancel.addEventListener('click', () => ui.pasteDialog.close('cancel'));
  ui.pasteText.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      ui.pasteDialog.close('type');
    }
  });
  ui.pasteDialog.addEventListener('close', onPasteClose);
  ui.layout.addEventListener('change', () => {
    app.layout = ui.layout.value;
    saveSetting('consolegate.layout', app.layout);
  });
  ui.vmClipboardCopy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(app.vmClipboard);
      showNotice('copied');
    } catch {
      ui.vmClipboardText.select();
      showNotice('copyFailed');
    }
  });
  // Password dialog: Send is its only submit button, so Enter sends.
  ui.passwordCancel.addEventListener('click', () => ui.passwordDialog.close('cancel'));

  window.addEventListener('resize', fitToolbar);
  buildKeysPanel();
}

// ---------------------------------------------------------------- start

async function loadConfig() {
  const res = await fetch('/consolegate/config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const config = await res.json();
  const origins = Array.isArray(config.engine_origins) ? config.engine_origins : [];
  return {
    // Compare as the browser spells origins (no trailing slash, lower-case host).
    origins: origins.flatMap((o) => {
      try { return [new URL(o).origin]; } catch { return []; }
    }),
    maxDurationS: Number.isFinite(config.max_duration_s) && config.max_duration_s > 0 ? config.max_duration_s : null,
  };
}

async function main() {
  if (navigator.maxTouchPoints > 0) ui.body.classList.add('touch');
  wireToolbar();
  applyLanguage();
  setState('starting', 'waiting');
  try {
    const config = await loadConfig();
    app.engineOrigins = config.origins;
    app.maxDurationS = config.maxDurationS;
  } catch (err) {
    fail('noConfig', {}, String(err));
    return;
  }
  window.addEventListener('message', onMessage);
  setState('waiting', 'waiting');
  if (engineWindows().length === 0) {
    // Nobody can ever send a ticket to this page: say so at once.
    app.waited = true;
    explainWaiting();
    return;
  }
  announceReady();
  app.waitTimer = setTimeout(() => {
    app.waited = true;
    explainWaiting();
  }, WAIT_GUARD_MS);
}

main();
