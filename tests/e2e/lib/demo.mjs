// The demo console server (`consolegate demo`) as a test console server, and a reader
// for what its picture shows: the keys line, the pointer line and the clipboard line
// are decoded from the browser's canvas with the demo's own font (src/demo/font.rs),
// so a test can assert exactly which keys arrived ("[Ctrl+Alt+Del]ab[Enter]").
import fs from 'node:fs';
import path from 'node:path';
import { BIN, REPO, WEB_DIR } from './paths.mjs';
import { start, freePort, waitFor } from './procs.mjs';

// Positions, scales and colours of the live text: src/demo/picture.rs.
const LINES = {
  keys: [{ x: 127, y: 436 }, { x: 127, y: 466 }].map((p) => ({ ...p, scale: 3, colour: 0xffff7f })),
  pointer: [{ x: 22, y: 500, scale: 2, colour: 0xc0c0c0 }],
  clipboard: [{ x: 152, y: 526, scale: 2, colour: 0xa0e0ff }],
};

// pattern (35 bits as a string of 0/1, row by row) → character, from font.rs.
function loadFont() {
  const source = fs.readFileSync(path.join(REPO, 'src/demo/font.rs'), 'utf8');
  const font = new Map();
  const rows = (text) => [...text.matchAll(/0b([01]{5})/g)].map((m) => m[1]).join('');
  const ascii = source.slice(source.indexOf('const GLYPHS'), source.indexOf('const EXTRA'));
  let code = 0x20;
  for (const line of ascii.split('\n')) {
    if (/^\s*\[0b/.test(line)) font.set(rows(line), String.fromCodePoint(code++));
  }
  const extra = source.slice(source.indexOf('const EXTRA'), source.indexOf('#[cfg(test)]'));
  for (const m of extra.matchAll(/\('(.)', \[([^\]]+)\]\)/gu)) font.set(rows(m[2]), m[1]);
  if (code !== 0x7f || font.size < 120) throw new Error(`could not read the demo font from font.rs (${font.size} glyphs)`);
  return font;
}
const FONT = loadFont();

// Decodes the demo's live text lines from the page's canvas: {keys, pointer, clipboard}.
// The decoding runs in the page, so only the text crosses to the test.
export function readDemo(page) {
  return page.evaluate(([lines, font]) => {
    const canvas = document.querySelector('#screen canvas');
    if (!canvas || canvas.width !== 800) return null;
    const glyphs = new Map(font);
    const image = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const lit = (x, y, colour) => {
      const i = (y * canvas.width + x) * 4;
      return Math.abs(image[i] - (colour >> 16)) + Math.abs(image[i + 1] - ((colour >> 8) & 0xff))
        + Math.abs(image[i + 2] - (colour & 0xff)) < 40;
    };
    const readLine = ({ x, y, scale, colour }) => {
      let text = '';
      for (let left = x; left + 5 * scale <= canvas.width; left += 6 * scale) {
        let bits = '';
        for (let r = 0; r < 7; r++) {
          for (let c = 0; c < 5; c++) bits += lit(left + c * scale + (scale >> 1), y + r * scale + (scale >> 1), colour) ? '1' : '0';
        }
        text += glyphs.get(bits) ?? '\uFFFD';
      }
      return text.replace(/ +$/, '');
    };
    const out = {};
    for (const [name, parts] of Object.entries(lines)) out[name] = parts.map(readLine).join('');
    return out;
  }, [LINES, [...FONT]]);
}

// Waits until the demo's keys line ends with `expected`; says what it shows instead.
export async function waitForKeys(page, expected, timeoutMs = 10000) {
  let last = null;
  try {
    return await waitFor(`the demo to show keys ending "${expected}"`, async () => {
      last = await readDemo(page);
      return last && last.keys.endsWith(expected) ? last : null;
    }, { timeoutMs });
  } catch (err) {
    throw new Error(`${err.message}; the keys line shows ${JSON.stringify(last && last.keys)}`);
  }
}

// `consolegate demo` for its console server: the RFB server's port and VNC password
// are read from what the demo prints. The proxy under test is a separate
// `consolegate serve`, so tests use production settings and their own engine.
export async function startDemoServer() {
  const port = await freePort();
  const proc = start('consolegate demo', BIN, ['demo', '--listen', `127.0.0.1:${port}`, '--web-dir', WEB_DIR], { cwd: REPO });
  const found = await waitFor('the demo to print its console server', () => {
    const rfb = proc.output.match(/demo console server is 127\.0\.0\.1:(\d+)/);
    const password = proc.output.match(/VNC password:\s+(\S+)/);
    return rfb && password ? { rfbPort: Number(rfb[1]), password: password[1] } : null;
  }, { child: proc, timeoutMs: 20000 });
  return { proc, port, base: `http://127.0.0.1:${port}`, ...found };
}
