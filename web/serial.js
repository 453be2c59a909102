// Serial console client for the console page: xterm.js, served by the proxy at
// /xterm/ (npm's @xterm directory: xterm/ and addon-fit/).
//
// The WebSocket carries the serial line's bytes both ways, unchanged: keystrokes go
// up as UTF-8, output comes down and is written to the terminal as bytes. A TCP
// serial port has no way to learn the terminal's size, so resizing only reflows the
// terminal here (the guest's `stty rows/cols` is the person's business).
import { Terminal } from '/xterm/xterm/lib/xterm.mjs';
import { FitAddon } from '/xterm/addon-fit/lib/addon-fit.mjs';

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

// Opens a serial session. `events`: opened(), connected(), closed({code, reason}),
// ended(failure|null) once.
export async function openSerial({ url, screen, events }) {
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
  });
  const fitAddon = new FitAddon();
  term.loadAddon(fitAddon);
  term.open(area);
  const fit = () => { try { fitAddon.fit(); } catch { /* not visible yet */ } };
  fit();
  const resize = new ResizeObserver(fit);
  resize.observe(screen);

  const ws = new WebSocket(url, ['binary']);
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
  term.onData(send);
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
    // Pasted text goes to the line as typed, with Enter as the carriage return a
    // terminal sends.
    typeText(text) { send(text.replace(/\r?\n/g, '\r')); },
  };
}
