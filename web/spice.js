// SPICE client for the console page: spice-html5, served by the proxy at /spice/
// (npm's @spice-project/spice-html5 `src/`, or Debian's /usr/share/spice-html5).
//
// spice-html5 opens one WebSocket per SPICE channel (main, display, inputs, cursor,
// and any others the server lists), all to the same URL, so the same ticket is used
// several times within a moment: the proxy admits that burst for `spice` tickets.
// The password goes into the SPICE link (RSA-encrypted by the client), never a URL.
// spice-html5 opens its WebSockets itself, to the endpoint's URL with only the
// `binary` subprotocol (`new WebSocket(uri, 'binary')` in its spiceconn.js), and has
// no option for others; the ticket travels as a subprotocol (console.js's
// `endpoint`), so while a SPICE session runs, a WebSocket opened to its URL with just
// `binary` offers the session's protocols instead. Nothing else is touched.
//
// SPICE takes scancodes: keys the page sends itself (extra keys, typed text) are
// pressed by KeyboardEvent.code, and text goes through the guest's keyboard layout.
import { SpiceMainConn } from '/spice/main.js';
import { SpiceMiniData, SpiceMsgcKeyDown, SpiceMsgcKeyUp } from '/spice/spicemsg.js';
import { Constants } from '/spice/enums.js';
import { SCANCODE, typeText } from './keys.js';

// AT set-1 scancodes for Ctrl+Alt+Del (the same in spice-html5 0.2 and 0.3).
const SC_CTRL = 0x1d;
const SC_ALT = 0x38;
const SC_DELETE = 0x53;   // keypad Delete, as spice-html5's own sendCtrlAltDel

// The "grey" keys, sent as 0xE0-prefixed scancodes. npm's spice-html5 0.2.1 garbles
// these (arrows, Home, Delete… reach the guest as 3-byte nonsense); 0.3.0 gets them
// right. The page sends them itself, so both versions behave the same.
const EXTENDED_KEYS = new Map([
  [33, 0x49], [34, 0x51], [35, 0x4f], [36, 0x47],          // PgUp PgDn End Home
  [37, 0x4b], [38, 0x48], [39, 0x4d], [40, 0x50],          // Left Up Right Down
  [45, 0x52], [46, 0x53], [111, 0x35],                      // Insert Delete KP/
  [91, 0x5b], [92, 0x5c], [93, 0x5d],                       // Meta Meta Menu
]);

// Error messages spice-html5 reports for a refused password.
const PASSWORD_ERRORS = /Permission denied|Bad password/;

let screenCount = 0;

// The protocols to offer, by URL, of the SPICE sessions running now (one at a time in
// practice: the page ends a session before it opens the next).
const spiceProtocols = new Map();
const NativeWebSocket = globalThis.WebSocket;

// spice-html5's `new WebSocket(uri, 'binary')`, answered with the session's protocols
// (`binary` and `ticket.<ticket>`); every other WebSocket is left as it was asked for.
class SpiceChannelSocket extends NativeWebSocket {
  constructor(url, protocols) {
    const session = protocols === 'binary' ? spiceProtocols.get(String(url)) : undefined;
    super(url, session || protocols);
  }
}
globalThis.WebSocket = SpiceChannelSocket;

const MODIFIER_CODES = new Set(['ShiftLeft', 'ShiftRight', 'ControlLeft', 'ControlRight',
  'AltLeft', 'AltRight', 'MetaLeft', 'MetaRight']);

// Opens a SPICE session. `events`: connected(), ended(failure|null) once,
// opened()/closed({code, reason}) for the main channel's WebSocket, keyUp(isModifier).
// A failure is {key, params, detail}: a catalogue sentence.
export function openSpice({ endpoint, password, screen, scale, events }) {
  const area = document.createElement('div');
  area.id = `spice-screen-${++screenCount}`;
  area.className = 'spice-screen';
  screen.replaceChildren(area);

  let ended = false;
  let stopped = false;
  let scaleOn = scale;
  const end = (failure) => {
    if (ended) return;
    ended = true;
    // Let the main channel's close event land first: it carries the proxy's code.
    setTimeout(() => events.ended(failure), 0);
  };

  spiceProtocols.set(endpoint.url, endpoint.protocols);
  const sc = new SpiceMainConn({
    uri: endpoint.url,
    password: password || '',
    screen_id: area.id,
    onsuccess: () => {
      if (!stopped) events.connected();
      watchChannels();
    },
    onerror: (e) => {
      if (stopped) return;
      const message = e && e.message ? e.message : '';
      if (PASSWORD_ERRORS.test(message)) end({ key: 'wrongSpicePassword', detail: message, cause: 'wrong_password' });
      else if (message && !/^Unexpected close|^Connection refused/.test(message)) {
        end({ key: 'spiceFailed', detail: message });
      } else end(null);
    },
  });
  // Created synchronously by the constructor: these run after spice-html5's own.
  sc.ws.addEventListener('open', () => events.opened());
  sc.ws.addEventListener('close', (e) => {
    events.closed({ code: e.code, reason: e.reason });
    if (!stopped) end(null);
  });

  // The other channels' WebSockets are spice-html5's; when one the console cannot do
  // without (display, inputs) closes, the session is over even if main stays up.
  let watch = 0;
  function watchChannels() {
    let tries = 0;
    watch = setInterval(() => {
      tries += 1;
      for (const name of ['display', 'inputs']) {
        const ch = sc[name];
        if (ch && ch.ws && !ch.ws.consolegateWatched) {
          ch.ws.consolegateWatched = true;
          ch.ws.addEventListener('close', (e) => {
            if (stopped || ended) return;
            events.closed({ code: e.code, reason: e.reason });
            end(e.code === 1006 && !ch.ws.consolegateOpened
              ? { key: 'spiceChannelRefused', detail: `${name} channel` } : null);
            stop();
          });
          ch.ws.addEventListener('open', () => { ch.ws.consolegateOpened = true; });
          if (ch.ws.readyState === WebSocket.OPEN) ch.ws.consolegateOpened = true;
        }
      }
      if ((sc.display && sc.inputs) || tries > 100) clearInterval(watch);
    }, 100);
  }

  // Scaling: the canvas keeps the guest's resolution; a CSS transform (set through
  // the CSSOM, which the CSP allows) fits it into the window. Mouse positions stay
  // right because spice-html5 reads offsetX/offsetY, which are in canvas pixels.
  function fit() {
    const canvas = area.querySelector('canvas');
    if (!canvas) return;
    const f = scaleOn
      ? Math.min(screen.clientWidth / canvas.width, screen.clientHeight / canvas.height)
      : 1;
    canvas.style.transformOrigin = '0 0';
    canvas.style.transform = f > 0 && f !== 1 ? `scale(${f})` : '';
  }
  const resize = new ResizeObserver(fit);
  resize.observe(screen);
  const mutations = new MutationObserver(fit);
  mutations.observe(area, { childList: true });

  // [down, scancode] pairs; `extended` ones get the 0xE0 prefix byte.
  function sendScancodes(codes, extended = false) {
    const inputs = sc.inputs;
    if (!inputs || inputs.state !== 'ready') return;
    for (const [down, code] of codes) {
      const key = down ? new SpiceMsgcKeyDown() : new SpiceMsgcKeyUp();
      const byte = down ? code : (0x80 | code);
      key.code = extended ? (0xe0 | (byte << 8)) : byte;
      const msg = new SpiceMiniData();
      msg.build_msg(down ? Constants.SPICE_MSGC_INPUTS_KEY_DOWN : Constants.SPICE_MSGC_INPUTS_KEY_UP, key);
      inputs.send_msg(msg);
    }
  }

  // Capture phase on the canvas's parent: runs before spice-html5's own handlers.
  const onKey = (e) => {
    const code = EXTENDED_KEYS.get(e.keyCode);
    if (code === undefined || (e.location === 3 && e.keyCode !== 111)) return;   // keypad digits
    e.preventDefault();
    e.stopPropagation();
    sendScancodes([[e.type === 'keydown', code]], true);
  };
  area.addEventListener('keydown', onKey, true);
  area.addEventListener('keyup', onKey, true);
  // After spice-html5 (or the handler above) sent a key up: sticky modifiers go up
  // after the next ordinary key.
  area.addEventListener('keyup', (e) => setTimeout(() => events.keyUp(MODIFIER_CODES.has(e.code)), 0), true);

  // A key by KeyboardEvent.code, as the page sends it (extra keys, typed text).
  function sendKey(keysym, code, down) {
    const sc = SCANCODE[code];
    if (sc === undefined) return;
    sendScancodes([[down, sc & 0xff]], sc > 0xff);
    if (!down) events.keyUp(MODIFIER_CODES.has(code));
  }

  function stop() {
    if (stopped) return;
    stopped = true;
    if (spiceProtocols.get(endpoint.url) === endpoint.protocols) spiceProtocols.delete(endpoint.url);
    clearInterval(watch);
    resize.disconnect();
    mutations.disconnect();
    try { sc.stop(); } catch { /* already closed */ }
  }

  return {
    kind: 'spice',
    sc,
    keys: { modifiers: ['ctrl', 'alt', 'altgr', 'super', 'shift'], combos: true, functionKeys: true },
    sendKey,
    scancodes: () => true,
    typeText: (text, layout, alive) => typeText({ text, layout, alive, scancodes: true, sendKey }),
    screenshot: () => new Promise((resolve) => {
      const canvas = area.querySelector('canvas');
      if (!canvas || !canvas.width) { resolve(null); return; }
      canvas.toBlob((blob) => resolve(blob ? { blob, ext: 'png' } : null), 'image/png');
    }),
    disconnect() {
      const wasStopped = stopped;
      stop();
      if (!wasStopped) end(null);
    },
    focus() { area.querySelector('canvas')?.focus(); },
    sendCtrlAltDel() {
      sendScancodes([[true, SC_CTRL], [true, SC_ALT], [true, SC_DELETE],
        [false, SC_DELETE], [false, SC_ALT], [false, SC_CTRL]]);
    },
    setScale(on) { scaleOn = on; fit(); },
  };
}
