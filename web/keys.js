// Keys for the console page: the keysyms and scancodes of the keys the page sends
// itself (extra keys, sticky modifiers), and how text becomes key presses.
//
// A console server takes keys in one of two ways:
//   - keysyms (X11 key symbols): most VNC servers, and the demo. Any character has
//     one (Unicode characters as 0x0100_0000 + code point); the server picks the key.
//   - scancodes: QEMU's VNC (its extended key events) and SPICE. The server presses
//     a physical key and the guest's own keyboard layout decides the character, so
//     typing "ü" means knowing which key makes "ü" on the guest: LAYOUTS below.
// Nothing here touches the page; console.js and the clients call it.

// X11 keysyms (keysymdef.h) the page sends by name.
export const KEYSYM = {
  BackSpace: 0xff08, Tab: 0xff09, Return: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
  Sys_Req: 0xff15, Home: 0xff50, Left: 0xff51, Up: 0xff52, Right: 0xff53, Down: 0xff54,
  Page_Up: 0xff55, Page_Down: 0xff56, End: 0xff57, Insert: 0xff63,
  Shift_L: 0xffe1, Control_L: 0xffe3, Alt_L: 0xffe9, Super_L: 0xffeb,
  ISO_Level3_Shift: 0xfe03, F1: 0xffbe, space: 0x20,
};

// XT (set 1) scancodes by KeyboardEvent.code, as QEMU and SPICE take them; above
// 0xff is an 0xE0-prefixed ("grey") key. The same values as noVNC's xtscancodes.js.
export const SCANCODE = {
  Escape: 0x01, Digit1: 0x02, Digit2: 0x03, Digit3: 0x04, Digit4: 0x05, Digit5: 0x06,
  Digit6: 0x07, Digit7: 0x08, Digit8: 0x09, Digit9: 0x0a, Digit0: 0x0b, Minus: 0x0c,
  Equal: 0x0d, Backspace: 0x0e, Tab: 0x0f, KeyQ: 0x10, KeyW: 0x11, KeyE: 0x12,
  KeyR: 0x13, KeyT: 0x14, KeyY: 0x15, KeyU: 0x16, KeyI: 0x17, KeyO: 0x18, KeyP: 0x19,
  BracketLeft: 0x1a, BracketRight: 0x1b, Enter: 0x1c, ControlLeft: 0x1d, KeyA: 0x1e,
  KeyS: 0x1f, KeyD: 0x20, KeyF: 0x21, KeyG: 0x22, KeyH: 0x23, KeyJ: 0x24, KeyK: 0x25,
  KeyL: 0x26, Semicolon: 0x27, Quote: 0x28, Backquote: 0x29, ShiftLeft: 0x2a,
  Backslash: 0x2b, KeyZ: 0x2c, KeyX: 0x2d, KeyC: 0x2e, KeyV: 0x2f, KeyB: 0x30,
  KeyN: 0x31, KeyM: 0x32, Comma: 0x33, Period: 0x34, Slash: 0x35, ShiftRight: 0x36,
  AltLeft: 0x38, Space: 0x39, CapsLock: 0x3a, F1: 0x3b, F2: 0x3c, F3: 0x3d, F4: 0x3e,
  F5: 0x3f, F6: 0x40, F7: 0x41, F8: 0x42, F9: 0x43, F10: 0x44, PrintScreen: 0x54,
  IntlBackslash: 0x56, F11: 0x57, F12: 0x58, ControlRight: 0xe01d, AltRight: 0xe038,
  Home: 0xe047, ArrowUp: 0xe048, PageUp: 0xe049, ArrowLeft: 0xe04b, ArrowRight: 0xe04d,
  End: 0xe04f, ArrowDown: 0xe050, PageDown: 0xe051, Insert: 0xe052, Delete: 0xe053,
  MetaLeft: 0xe05b,
};

// The sticky modifiers of the keys panel.
export const MODIFIERS = {
  ctrl: { keysym: KEYSYM.Control_L, code: 'ControlLeft', label: 'keyCtrl' },
  alt: { keysym: KEYSYM.Alt_L, code: 'AltLeft', label: 'keyAlt' },
  altgr: { keysym: KEYSYM.ISO_Level3_Shift, code: 'AltRight', label: 'keyAltGr' },
  super: { keysym: KEYSYM.Super_L, code: 'MetaLeft', label: 'keySuper' },
  shift: { keysym: KEYSYM.Shift_L, code: 'ShiftLeft', label: 'keyShift' },
};

const MODIFIER_KEYSYMS = new Set([0xffe1, 0xffe2, 0xffe3, 0xffe4, 0xffe7, 0xffe8, 0xffe9,
  0xffea, 0xffeb, 0xffec, 0xffed, 0xffee, 0xfe03, 0xff7e]);
export const isModifierKeysym = (keysym) => MODIFIER_KEYSYMS.has(keysym);

// Named keys of the keys panel: {keysym, code}.
export const NAMED = {
  Tab: { keysym: KEYSYM.Tab, code: 'Tab' },
  Escape: { keysym: KEYSYM.Escape, code: 'Escape' },
  Delete: { keysym: KEYSYM.Delete, code: 'Delete' },
  BackSpace: { keysym: KEYSYM.BackSpace, code: 'Backspace' },
  // The SysRq key is PrintScreen with Alt held; its scancode is Linux's KEY_SYSRQ.
  SysRq: { keysym: KEYSYM.Sys_Req, code: 'PrintScreen' },
};
export const functionKey = (n) => ({ keysym: KEYSYM.F1 + n - 1, code: `F${n}` });

// The combinations of the keys panel, pressed in order and released in reverse.
export const COMBOS = {
  'ctrl-alt-del': [MODIFIERS.ctrl, MODIFIERS.alt, NAMED.Delete],
  'ctrl-alt-backspace': [MODIFIERS.ctrl, MODIFIERS.alt, NAMED.BackSpace],
};
export const ctrlAltF = (n) => [MODIFIERS.ctrl, MODIFIERS.alt, functionKey(n)];

// The keysym of a typed character: Latin-1 keysyms are their code points, the euro
// sign has its own, every other character is 0x0100_0000 + its code point. Control
// characters other than line ends and tabs have none.
export function keysymForChar(ch) {
  if (ch === '\n') return KEYSYM.Return;
  if (ch === '\t') return KEYSYM.Tab;
  const cp = ch.codePointAt(0);
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  if (cp === 0x20ac) return 0x20ac;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return null;
  return 0x01000000 + cp;
}

// ---------------------------------------------------------------- guest layouts

// Each layout: KeyboardEvent.code → [plain, Shift, AltGr, AltGr+Shift]; a `D(x)`
// entry is a dead key that adds the accent x to the next letter.
const D = (accent) => ({ dead: accent });

const LETTERS = Object.fromEntries('abcdefghijklmnopqrstuvwxyz'.split('').map((c) => [`Key${c.toUpperCase()}`, [c, c.toUpperCase()]]));

const US = {
  ...LETTERS,
  Backquote: ['`', '~'], Digit1: ['1', '!'], Digit2: ['2', '@'], Digit3: ['3', '#'],
  Digit4: ['4', '$'], Digit5: ['5', '%'], Digit6: ['6', '^'], Digit7: ['7', '&'],
  Digit8: ['8', '*'], Digit9: ['9', '('], Digit0: ['0', ')'], Minus: ['-', '_'],
  Equal: ['=', '+'], BracketLeft: ['[', '{'], BracketRight: [']', '}'],
  Backslash: ['\\', '|'], Semicolon: [';', ':'], Quote: ['\'', '"'], Comma: [',', '<'],
  Period: ['.', '>'], Slash: ['/', '?'], Space: [' ', ' '],
};

const DE = {
  ...LETTERS,
  KeyY: ['z', 'Z'], KeyZ: ['y', 'Y'], KeyQ: ['q', 'Q', '@'], KeyE: ['e', 'E', '€'],
  KeyM: ['m', 'M', 'µ'],
  Backquote: [D('^'), '°'], Digit1: ['1', '!'], Digit2: ['2', '"', '²'],
  Digit3: ['3', '§', '³'], Digit4: ['4', '$'], Digit5: ['5', '%'], Digit6: ['6', '&'],
  Digit7: ['7', '/', '{'], Digit8: ['8', '(', '['], Digit9: ['9', ')', ']'],
  Digit0: ['0', '=', '}'], Minus: ['ß', '?', '\\'], Equal: [D('´'), D('`')],
  BracketLeft: ['ü', 'Ü'], BracketRight: ['+', '*', '~'], Semicolon: ['ö', 'Ö'],
  Quote: ['ä', 'Ä'], Backslash: ['#', '\''], IntlBackslash: ['<', '>', '|'],
  Comma: [',', ';'], Period: ['.', ':'], Slash: ['-', '_'], Space: [' ', ' '],
};

const FR = {
  ...LETTERS,
  KeyQ: ['a', 'A'], KeyW: ['z', 'Z'], KeyA: ['q', 'Q'], KeyZ: ['w', 'W'],
  KeyE: ['e', 'E', '€'], KeyM: [',', '?'], Semicolon: ['m', 'M'],
  Backquote: ['²'], Digit1: ['&', '1'], Digit2: ['é', '2', D('~')], Digit3: ['"', '3', '#'],
  Digit4: ['\'', '4', '{'], Digit5: ['(', '5', '['], Digit6: ['-', '6', '|'],
  Digit7: ['è', '7', D('`')], Digit8: ['_', '8', '\\'], Digit9: ['ç', '9', '^'],
  Digit0: ['à', '0', '@'], Minus: [')', '°', ']'], Equal: ['=', '+', '}'],
  BracketLeft: [D('^'), D('¨')], BracketRight: ['$', '£', '¤'], Quote: ['ù', '%'],
  Backslash: ['*', 'µ'], IntlBackslash: ['<', '>'], Comma: [';', '.'],
  Period: [':', '/'], Slash: ['!', '§'], Space: [' ', ' '],
};

// What a dead key followed by a letter makes.
const COMPOSE = {
  '^': { a: 'â', e: 'ê', i: 'î', o: 'ô', u: 'û', A: 'Â', E: 'Ê', I: 'Î', O: 'Ô', U: 'Û' },
  '´': { a: 'á', e: 'é', i: 'í', o: 'ó', u: 'ú', y: 'ý', A: 'Á', E: 'É', I: 'Í', O: 'Ó', U: 'Ú', Y: 'Ý' },
  '`': { a: 'à', e: 'è', i: 'ì', o: 'ò', u: 'ù', A: 'À', E: 'È', I: 'Ì', O: 'Ò', U: 'Ù' },
  '¨': { a: 'ä', e: 'ë', i: 'ï', o: 'ö', u: 'ü', y: 'ÿ', A: 'Ä', E: 'Ë', I: 'Ï', O: 'Ö', U: 'Ü' },
  '~': { a: 'ã', n: 'ñ', o: 'õ', A: 'Ã', N: 'Ñ', O: 'Õ' },
};

export const LAYOUTS = { us: { label: 'layoutUs', keys: US }, de: { label: 'layoutDe', keys: DE }, fr: { label: 'layoutFr', keys: FR } };

// char → [stroke, ...] for one layout; a stroke is {code, shift, altgr}.
const plans = new Map();
function planFor(layoutId) {
  if (plans.has(layoutId)) return plans.get(layoutId);
  const keys = (LAYOUTS[layoutId] || LAYOUTS.us).keys;
  const plan = new Map([['\n', [{ code: 'Enter' }]], ['\t', [{ code: 'Tab' }]]]);
  const dead = [];
  for (const [code, levels] of Object.entries(keys)) {
    levels.forEach((out, level) => {
      const stroke = { code, shift: level % 2 === 1, altgr: level >= 2 };
      if (typeof out === 'object') dead.push([out.dead, stroke]);
      else if (!plan.has(out)) plan.set(out, [stroke]);
    });
  }
  for (const [accent, stroke] of dead) {
    // The accent alone: the dead key, then Space.
    if (!plan.has(accent)) plan.set(accent, [stroke, { code: 'Space' }]);
    for (const [base, made] of Object.entries(COMPOSE[accent] || {})) {
      if (!plan.has(made) && plan.has(base) && plan.get(base).length === 1) {
        plan.set(made, [stroke, plan.get(base)[0]]);
      }
    }
  }
  plans.set(layoutId, plan);
  return plan;
}

// The strokes that type `ch` on the guest layout, or null when it has no key for it.
export function strokesFor(ch, layoutId) {
  return planFor(layoutId).get(ch) || null;
}

// Presses the strokes through a client's sendKey(keysym, code, down).
export function sendStrokes(sendKey, strokes, keysym) {
  for (const s of strokes) {
    if (s.altgr) sendKey(KEYSYM.ISO_Level3_Shift, 'AltRight', true);
    if (s.shift) sendKey(KEYSYM.Shift_L, 'ShiftLeft', true);
    sendKey(keysym || 0, s.code, true);
    sendKey(keysym || 0, s.code, false);
    if (s.shift) sendKey(KEYSYM.Shift_L, 'ShiftLeft', false);
    if (s.altgr) sendKey(KEYSYM.ISO_Level3_Shift, 'AltRight', false);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Types `text` one key at a time through a VNC or SPICE client. `scancodes`: the
// server presses keys (QEMU, SPICE), so each character goes through the guest layout;
// otherwise as its keysym. A short pause keeps small guest keyboard buffers (BIOS,
// PS/2) from overflowing. `alive()` stops typing when the session ends.
// Returns {sent, total, unsent: [characters], control: whether all unsent are control characters}.
export async function typeText({ text, sendKey, scancodes, layout, alive = () => true, pauseMs = 10 }) {
  const chars = [...text.replace(/\r\n?/g, '\n')];
  const unsent = [];
  let sent = 0;
  for (const ch of chars) {
    if (!alive()) break;
    const keysym = keysymForChar(ch);
    if (scancodes) {
      const strokes = strokesFor(ch, layout);
      if (!strokes) { unsent.push(ch); continue; }
      sendStrokes(sendKey, strokes, keysym && strokes.length === 1 ? keysym : 0);
    } else {
      if (keysym === null) { unsent.push(ch); continue; }
      sendKey(keysym, null, true);
      sendKey(keysym, null, false);
    }
    sent += 1;
    await sleep(pauseMs);
  }
  const control = unsent.every((ch) => keysymForChar(ch) === null);
  return { sent, total: chars.length, unsent, control };
}

// How a character the page could not send is named in a sentence.
export function describeChars(chars) {
  const unique = [...new Set(chars)];
  return unique.map((ch) => {
    const cp = ch.codePointAt(0);
    return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) ? `U+${cp.toString(16).toUpperCase().padStart(4, '0')}` : `“${ch}”`;
  }).join(' ');
}
