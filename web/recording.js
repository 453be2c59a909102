// consolegate recordings in the browser: parsing, integrity check, and the RFB
// stream the player feeds noVNC. No DOM, no dependencies: the player page imports it,
// and tests/recording_parse.mjs runs it under node against files the Rust side wrote,
// so the two readers of docs/recording-format.md cannot drift apart.
//
// Two formats (the file's first bytes say which, not its name):
// - VNC (`.vncrec`): a JSON header line starting with VNC_MAGIC, then binary records
//   `type u8 | time u64 BE (µs) | length u32 BE | payload`; types S (server → browser),
//   C (browser → server), R (redaction: u32 bytes withheld), T (trailer: SHA-256 of
//   the whole file but its last 32 bytes).
// - asciicast v2 (`.cast`): the session's metadata under the header's `consolegate`
//   key; the last line `[<end>, "sha256", "<hex>"]`, the SHA-256 of the file but its
//   last 67 bytes (the hex digits, `"]` and the newline).

export const VNC_MAGIC = '{"format":"consolegate-rfb","version":1,';
const RECORD_HEADER = 13;
const MAX_PAYLOAD = 1 << 20;
const CAST_TRAILER_CODE = 'sha256';

export class RecordingError extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: false });

function startsWith(bytes, text) {
  if (bytes.length < text.length) return false;
  for (let i = 0; i < text.length; i++) {
    if (bytes[i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Parses a recording. `buffer` is an ArrayBuffer or Uint8Array with the whole file.
// Returns { format, header, meta, durationMs, trailer, ... } (see each parser).
export function parseRecording(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (startsWith(bytes, VNC_MAGIC)) return parseVnc(bytes);
  if (bytes[0] === 0x7b /* { */) return parseCast(bytes);
  throw new RecordingError('This is not a consolegate recording (neither its VNC format nor an asciicast).');
}

// VNC: records are { type: 'S' | 'C' | 'R', t (ms), data (Uint8Array) | withheld }.
export function parseVnc(bytes) {
  const nl = bytes.indexOf(0x0a);
  if (nl < 0) throw new RecordingError('The recording ends inside its header.');
  let header;
  try {
    header = JSON.parse(utf8.decode(bytes.subarray(0, nl)));
  } catch (e) {
    throw new RecordingError(`The recording's header is not valid JSON: ${e.message}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records = [];
  let trailer = null;
  let pos = nl + 1;
  let last = 0;
  while (pos < bytes.length) {
    if (trailer) throw new RecordingError(`Data after the trailer at byte ${pos}.`);
    if (pos + RECORD_HEADER > bytes.length) throw new RecordingError(`The file ends inside the record at byte ${pos}.`);
    const type = String.fromCharCode(bytes[pos]);
    const us = Number(view.getBigUint64(pos + 1));
    const len = view.getUint32(pos + 9);
    if (len > MAX_PAYLOAD) throw new RecordingError(`The record at byte ${pos} claims ${len} bytes.`);
    if (pos + RECORD_HEADER + len > bytes.length) throw new RecordingError(`The file ends inside the record at byte ${pos}.`);
    if (us < last) throw new RecordingError(`The record at byte ${pos} goes back in time.`);
    last = us;
    const data = bytes.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + len);
    const t = us / 1000;
    switch (type) {
      case 'S':
      case 'C':
        records.push({ type, t, data });
        break;
      case 'R':
        if (len !== 4) throw new RecordingError(`Malformed redaction record at byte ${pos}.`);
        records.push({ type, t, withheld: view.getUint32(pos + RECORD_HEADER) });
        break;
      case 'T':
        if (len !== 32) throw new RecordingError(`Malformed trailer at byte ${pos}.`);
        trailer = { t, sha256: hex(data), covered: pos + RECORD_HEADER };
        break;
      default:
        throw new RecordingError(`Unknown record type ${bytes[pos]} at byte ${pos}.`);
    }
    pos += RECORD_HEADER + len;
  }
  const durationMs = trailer ? trailer.t : (records.length ? records[records.length - 1].t : 0);
  return { format: 'vnc', header, meta: header, records, trailer, durationMs, bytes };
}

// asciicast: events are [t (seconds), code, data] as in the file; `text` is the file
// as asciinema-player reads it (it skips the trailer, whose code it does not know).
export function parseCast(bytes) {
  const text = utf8.decode(bytes);
  const lines = text.split('\n');
  let header;
  try {
    header = JSON.parse(lines[0]);
  } catch (e) {
    throw new RecordingError(`The recording's header is not valid JSON: ${e.message}`);
  }
  if (header.version !== 2) throw new RecordingError('This asciicast is not version 2.');
  const events = [];
  let trailer = null;
  let offset = new TextEncoder().encode(lines[0]).length + 1;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const lineBytes = new TextEncoder().encode(line).length;
    if (line.trim() !== '') {
      if (trailer) throw new RecordingError(`Line ${i + 1} comes after the trailer.`);
      let ev;
      try {
        ev = JSON.parse(line);
      } catch (e) {
        throw new RecordingError(`Line ${i + 1} is not an asciicast event.`);
      }
      if (!Array.isArray(ev) || ev.length !== 3 || typeof ev[0] !== 'number' || typeof ev[1] !== 'string' || typeof ev[2] !== 'string') {
        throw new RecordingError(`Line ${i + 1} is not an asciicast event.`);
      }
      if (ev[1] === CAST_TRAILER_CODE) {
        // The digest covers the line up to its 64 hex digits.
        if (!line.endsWith(`${ev[2]}"]`) || ev[2].length !== 64) throw new RecordingError(`Malformed trailer on line ${i + 1}.`);
        trailer = { t: ev[0] * 1000, sha256: ev[2], covered: offset + lineBytes - 66 };
      } else {
        events.push(ev);
      }
    }
    offset += lineBytes + (i < lines.length - 1 ? 1 : 0);
  }
  const lastEvent = events.length ? events[events.length - 1][0] * 1000 : 0;
  const durationMs = trailer ? trailer.t : lastEvent;
  return { format: 'asciicast', header, meta: header.consolegate || {}, events, trailer, durationMs, text, bytes };
}

// Checks the trailer's digest. Returns { status: 'intact' | 'altered' | 'unfinished',
// recorded, computed }.
export async function verifyRecording(parsed) {
  if (!parsed.trailer) return { status: 'unfinished', recorded: null, computed: null };
  const computed = hex(await sha256(parsed.bytes.subarray(0, parsed.trailer.covered)));
  const recorded = parsed.trailer.sha256;
  return { status: computed === recorded ? 'intact' : 'altered', recorded, computed };
}

// SHA-256 with WebCrypto where the page is a secure context, else in JavaScript
// (a proxy on plain http on a LAN still lets the operator check a file).
export async function sha256(bytes) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (subtle) return new Uint8Array(await subtle.digest('SHA-256', bytes));
  return sha256js(bytes);
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256js(data) {
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const len = data.length;
  const padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[len] = 0x80;
  const bits = new DataView(padded.buffer);
  bits.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
  bits.setUint32(padded.length - 4, (len << 3) >>> 0);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = bits.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15], b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) ov.setUint32(i * 4, h[i]);
  return out;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// The server → browser stream as the player feeds it to noVNC, as { t, data } chunks.
//
// noVNC in the player replays the handshake against the recorded server bytes, and
// must make the choices the recorded browser made: the server's version line is
// replaced by the one the recorded browser sent (so both speak the same RFB
// version), and an RFB 3.7/3.8 list of security types by the one type the recorded
// browser chose. noVNC then answers VNC authentication with a dummy password and
// reads the recorded SecurityResult; what it sends back goes nowhere.
export function vncPlayback(parsed) {
  let client = new Uint8Array(0);
  for (const r of parsed.records) {
    if (r.type === 'C' && client.length < 13) client = concat(client, r.data);
    if (r.type === 'R') break; // the choice is always before the response
  }
  const chunks = [];
  let head = new Uint8Array(0);
  let headT = 0;
  let done = false;
  let securityType = null;
  for (const r of parsed.records) {
    if (r.type !== 'S') continue;
    if (done) {
      chunks.push({ t: r.t, data: r.data });
      continue;
    }
    head = concat(head, r.data);
    headT = r.t;
    const rewritten = rewriteHead(head, client);
    if (rewritten) {
      chunks.push({ t: headT, data: rewritten.data });
      securityType = rewritten.securityType;
      done = true;
    }
  }
  if (!done && head.length) chunks.push({ t: headT, data: head });
  const clientVersion = client.length >= 12 ? utf8.decode(client.subarray(0, 12)).trim() : null;
  return { chunks, clientVersion, securityType };
}

function rewriteHead(head, client) {
  if (head.length < 12) return null;
  const version = client.length >= 12 ? client.subarray(0, 12) : head.subarray(0, 12);
  const minor = parseInt(utf8.decode(version.subarray(8, 11)), 10);
  if (minor < 7) {
    // RFB 3.3: the server names the type itself.
    const type = head.length >= 16 ? new DataView(head.buffer, head.byteOffset + 12, 4).getUint32(0) : null;
    return { data: concat(version, head.subarray(12)), securityType: type };
  }
  if (head.length < 13) return null;
  const n = head[12];
  if (n === 0) return { data: concat(version, head.subarray(12)), securityType: 0 };
  if (head.length < 13 + n) return null;
  const chosen = client.length >= 13 ? client[12] : head[13];
  return {
    data: concat(concat(version, new Uint8Array([1, chosen])), head.subarray(13 + n)),
    securityType: chosen,
  };
}

// "m:ss" or "h:mm:ss" for a time in milliseconds.
export function formatTime(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

// Parses "90", "1:30", "1:02:03" (seconds, m:ss, h:mm:ss) to milliseconds, or null.
export function parseTime(text) {
  const parts = String(text).trim().split(':');
  if (parts.length > 3 || parts.some((p) => !/^\d+(\.\d+)?$/.test(p))) return null;
  return parts.reduce((acc, p) => acc * 60 + Number(p), 0) * 1000;
}
