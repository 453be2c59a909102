// Serial console client for the console page: xterm.js, served by the proxy at
// /xterm/ (npm's @xterm directory: xterm/ and addon-fit/).
//
// The WebSocket carries the serial line's bytes both ways, unchanged: keystrokes go
// up as UTF-8, output comes down and is written to the terminal as bytes. A TCP
// serial port has no way to learn the terminal's size, so resizing only reflows the
// terminal here (the guest's `stty rows/cols` is the person's business).
//
// A serial line carries characters, not keys: the page's extra keys become what a
// VT220 terminal sends (Tab, Esc, F1–F12), a sticky Ctrl turns the next letter into
// its control character, a sticky Alt prefixes Esc. Combinations such as
// Ctrl+Alt+Del have no meaning on a serial line and are not offered.
import { Terminal } from '/xterm/xterm/lib/xterm.mjs';
import { FitAddon } from '/xterm/addon-fit/lib/addon-fit.mjs';
import { KEYSYM } from './keys.js';

// What a VT220 sends for the keys the page offers.
const SEQUENCES = new Map([
  [KEYSYM.Tab, '\t'], [KEYSYM.Escape, '\x1b'], [KEYSYM.Return, '\r'], [KEYSYM.BackSpace, '\x7f'],
  [KEYSYM.Delete, '\x1b[3~'], [KEYSYM.Up, '\x1b[A'], [KEYSYM.Down, '\x1b[B'],
  [KEYSYM.Right, '\x1b[C'], [KEYSYM.Left, '\x1b[D'], [KEYSYM.Home, '\x1b[H'], [KEYSYM.End, '\x1b[F'],
  ...['\x1bOP', '\x1bOQ', '\x1bOR', '\x1bOS', '\x1b[15~', '\x1b[17~', '\x1b[18~', '\x1b[19~',
    '\x1b[20~', '\x1b[21~', '\x1b[23~', '\x1b[24~'].map((seq, i) => [KEYSYM.F1 + i, seq]),
]);

function loadCss(href) {
  if (document.querySelector(`link[href="${href}"]`)) return Promise.resolve();
  return new Promise((resolve) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = href;
    // Without the stylesheet the terminal still works, only looks wrong: go on.
    link.addEventListener('load', resolve);
    link.addEventListener('error', resolve);
    document.head.append(link);
  });
}

// Opens a serial session. `endpoint`: {url, protocols}. `events`: opened(),
// connected(), closed({code, reason}), ended(failure|null) once, keyUp(isModifier).
// `viewOnly`: the ticket is a view ticket; the terminal then takes no typing (the
// proxy drops any anyway).
export async function openSerial({ endpoint, screen, viewOnly = false, events }) {
  await loadCss('/xterm/xterm/css/xterm.css');
  const area = document.createElement('div');
  area.className = 'serial-screen';
  screen.replaceChildren(area);

  const term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    scrollback: 5000,
    fontFamily: 'monospace',
    fontSize: 15,
    theme: { background: '#1e1e1e' },
    disableStdin: Boolean(viewOnly),
  });
  const fitAddon = new FitAddon();
  term.loadAddon(fitAddon);
  term.open(area);
  const fit = () => { try { fitAddon.fit(); } catch { /* not visible yet */ } };
  fit();
  const resize = new ResizeObserver(fit);
  resize.observe(screen);

  const ws = new WebSocket(endpoint.url, endpoint.protocols);
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  let ended = false;
  const end = (failure) => {
    if (ended) return;
    ended = true;
    resize.disconnect();
    term.options.disableStdin = true;
    term.options.cursorBlink = false;
    events.ended(failure);
  };

  ws.addEventListener('open', () => {
    events.opened();
    events.connected();
    term.focus();
  });
  ws.addEventListener('message', (e) => {
    if (e.data instanceof ArrayBuffer) term.write(new Uint8Array(e.data));
    else if (typeof e.data === 'string') term.write(e.data);
  });
  ws.addEventListener('close', (e) => {
    events.closed({ code: e.code, reason: e.reason });
    end(null);
  });
  const send = (text) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text));
  };
  // Sticky Ctrl and Alt from the page's keys panel, applied to the next character.
  const held = { ctrl: false, alt: false };
  const withModifiers = (data) => {
    if (!held.ctrl && !held.alt) return data;
    let out = data;
    if (held.ctrl && data.length === 1) {
      const c = data.toUpperCase().charCodeAt(0);
      if (c >= 0x40 && c <= 0x5f) out = String.fromCharCode(c - 0x40);
      else if (data === ' ') out = '\0';
    }
    if (held.alt) out = `\x1b${out}`;
    return out;
  };
  term.onData((data) => {
    const modified = held.ctrl || held.alt;
    send(withModifiers(data));
    if (modified) events.keyUp(false);
  });
  // Binary input (xterm's onBinary: some mouse reports) as raw bytes.
  term.onBinary((data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
  });

  return {
    kind: 'serial',
    term,
    disconnect() {
      try { ws.close(1000); } catch { /* already closed */ }
      end(null);
    },
    focus() { term.focus(); },
    keys: { modifiers: ['ctrl', 'alt'], combos: false, functionKeys: true },
    // The panel's keys: modifiers are remembered for the next character, other keys
    // send their terminal sequence.
    sendKey(keysym, code, down) {
      if (keysym === KEYSYM.Control_L) { held.ctrl = down; return; }
      if (keysym === KEYSYM.Alt_L) { held.alt = down; return; }
      if (!down) { events.keyUp(false); return; }
      const seq = SEQUENCES.get(keysym);
      if (seq) send(held.alt ? `\x1b${seq}` : seq);
    },
    scancodes: () => false,
    // Pasted text goes to the line as typed, with Enter as the carriage return a
    // terminal sends; every character can be sent.
    async typeText(text) {
      const total = [...text].length;
      send(text.replace(/\r?\n/g, '\r'));
      return { sent: total, total, unsent: [], control: false };
    },
    // The terminal's text, as a file.
    screenshot: async () => {
      const buf = term.buffer.active;
      const lines = [];
      for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
      while (lines.length && !lines[lines.length - 1]) lines.pop();
      return { blob: new Blob([lines.join('\n') + '\n'], { type: 'text/plain' }), ext: 'txt' };
    },
  };
}
