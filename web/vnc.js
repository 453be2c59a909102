// VNC client for the console page: noVNC, served by the proxy at /novnc/ (npm's
// @novnc/novnc or Debian's novnc). Loaded when a ticket's kind is `vnc`.
//
// The page creates the WebSocket itself and hands it to noVNC, so the close code and
// reason the proxy sends are known when noVNC reports the disconnect. noVNC brings
// the keyboard, the pointer, touch gestures (tap, drag, two-finger scroll and pinch,
// long press for the right button) and the clipboard; this module adds what the page
// needs on top: a hook after every key sent (sticky modifiers), typing text, the
// clipboard with what could not be sent, and a PNG of the screen.
import RFB from '/novnc/core/rfb.js';
import { isModifierKeysym, typeText } from './keys.js';

// Opens a VNC session. `endpoint`: {url, protocols}. `events`: opened(),
// closed({code, reason}), connected(), ended(failure|null) once, askPassword(kind) →
// Promise<string|null>, passwordCancelled(), desktopName(name), clipboard(text),
// keyUp(isModifier). A failure is {key, params, detail}: a catalogue sentence.
// `viewOnly`: the ticket is a view ticket; noVNC then sends no input (the proxy drops
// any anyway).
export function openVnc({ endpoint, screen, scale, password, viewOnly = false, events }) {
  const ws = new WebSocket(endpoint.url, endpoint.protocols);
  // Registered before noVNC attaches its own handlers, so the close code is known by
  // the time noVNC reports the disconnect.
  ws.addEventListener('open', () => events.opened());
  ws.addEventListener('close', (e) => events.closed({ code: e.code, reason: e.reason }));

  const rfb = new RFB(screen, ws, { shared: true });
  rfb.scaleViewport = scale;
  rfb.viewOnly = Boolean(viewOnly);
  rfb.background = '#1e1e1e';
  let sentCredentials = false;
  let failure = null;

  // Every key noVNC sends (the keyboard's and the page's) passes here; the page
  // releases sticky modifiers after the next ordinary key goes up.
  const sendKey = rfb.sendKey.bind(rfb);
  rfb.sendKey = (keysym, code, down) => {
    sendKey(keysym, code, down);
    if (down === false) events.keyUp(isModifierKeysym(keysym));
  };

  rfb.addEventListener('credentialsrequired', async (e) => {
    const types = e.detail.types || [];
    if (password !== null && !sentCredentials && !types.includes('username')) {
      sentCredentials = true;
      rfb.sendCredentials({ password });
      return;
    }
    const typed = await events.askPassword('vnc');
    if (typed === null) {
      events.passwordCancelled();
      return;
    }
    sentCredentials = true;
    const creds = { password: typed };
    if (types.includes('username')) creds.username = '';
    rfb.sendCredentials(creds);
  });
  rfb.addEventListener('securityfailure', (e) => {
    const reason = e.detail.reason || '';
    // After a password was sent, a failed security result means the password was wrong.
    if (sentCredentials) failure = { key: 'wrongPassword', detail: reason, cause: 'wrong_password' };
    else if (reason) failure = { key: 'serverRefused', params: { reason }, detail: reason, cause: 'refused' };
    else failure = { key: 'serverRefusedNoReason', detail: '', cause: 'refused' };
  });
  rfb.addEventListener('connect', () => events.connected());
  rfb.addEventListener('desktopname', (e) => events.desktopName(e.detail.name));
  rfb.addEventListener('clipboard', (e) => events.clipboard(e.detail.text));
  rfb.addEventListener('disconnect', () => {
    // Let the WebSocket's own close event land first (it carries the code and reason).
    setTimeout(() => events.ended(failure), 0);
  });

  // QEMU announces its extended key events: it then takes scancodes, and the guest's
  // layout decides the character. (noVNC keeps this in a field of its own.)
  const scancodes = () => Boolean(rfb._qemuExtKeyEventSupported);
  // The extended clipboard (UTF-8) where the server offers it; else RFB's Latin-1.
  // (noVNC's own test: the text format, and the notify action.)
  const unicodeClipboard = () => Boolean(rfb._clipboardServerCapabilitiesFormats?.[1]
    && rfb._clipboardServerCapabilitiesActions?.[1 << 27]);

  return {
    kind: 'vnc',
    rfb,
    keys: { modifiers: ['ctrl', 'alt', 'altgr', 'super', 'shift'], combos: true, functionKeys: true },
    disconnect: () => rfb.disconnect(),
    focus: () => rfb.focus({ preventScroll: true }),
    sendKey: (keysym, code, down) => rfb.sendKey(keysym, code, down),
    scancodes,
    typeText: (text, layout, alive) => typeText({ text, layout, alive, scancodes: scancodes(), sendKey: rfb.sendKey }),
    clipboard: {
      // Returns the characters that could not be sent as themselves.
      send(text) {
        const unsent = unicodeClipboard() ? [] : [...text].filter((ch) => ch.codePointAt(0) > 0xff);
        rfb.clipboardPasteFrom(text);
        return { count: [...text].length, unsent };
      },
    },
    // noVNC's canvas holds the framebuffer at its own resolution (noVNC 1.3, Debian's,
    // has no toBlob of its own).
    screenshot: () => new Promise((resolve) => {
      const canvas = screen.querySelector('canvas');
      if (!canvas || !canvas.width || !rfb._fbWidth) { resolve(null); return; }
      canvas.toBlob((blob) => resolve(blob ? { blob, ext: 'png' } : null), 'image/png');
    }),
    setScale: (on) => { rfb.scaleViewport = on; },
  };
}
