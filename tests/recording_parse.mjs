// Reads recordings with the player's parser (web/recording.js) and prints what it
// found as one JSON line per file, for tests/recording_contract.rs to compare with
// what the Rust side wrote: `node tests/recording_parse.mjs FILE...`.
import { readFileSync } from 'node:fs';
import {
  parseRecording, verifyRecording, vncPlayback, sha256js, sha256,
} from '../web/recording.js';

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

for (const path of process.argv.slice(2)) {
  const bytes = new Uint8Array(readFileSync(path));
  let out;
  try {
    const parsed = parseRecording(bytes);
    const verdict = await verifyRecording(parsed);
    out = {
      path,
      format: parsed.format,
      meta: parsed.meta,
      duration_ms: parsed.durationMs,
      integrity: verdict.status,
      sha256: verdict.recorded,
      // The JavaScript SHA-256 (used outside secure contexts) agrees with WebCrypto.
      js_sha256_agrees: hex(sha256js(bytes)) === hex(await sha256(bytes)),
    };
    if (parsed.format === 'vnc') {
      const pb = vncPlayback(parsed);
      const down = parsed.records.filter((r) => r.type === 'S');
      out.server_bytes = down.reduce((n, r) => n + r.data.length, 0);
      out.client_bytes = parsed.records.filter((r) => r.type === 'C').reduce((n, r) => n + r.data.length, 0);
      out.withheld = parsed.records.filter((r) => r.type === 'R').reduce((n, r) => n + r.withheld, 0);
      out.playback_bytes = pb.chunks.reduce((n, c) => n + c.data.length, 0);
      out.playback_head = hex(pb.chunks.length ? pb.chunks[0].data.subarray(0, 16) : []);
      out.client_version = pb.clientVersion;
      out.security_type = pb.securityType;
    } else {
      out.output = parsed.events.filter((e) => e[1] === 'o').map((e) => e[2]).join('');
      out.input = parsed.events.filter((e) => e[1] === 'i').map((e) => e[2]).join('');
      out.width = parsed.header.width;
    }
  } catch (e) {
    out = { path, error: e.message };
  }
  console.log(JSON.stringify(out));
}
