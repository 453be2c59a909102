// A minimal QMP client (QEMU's JSON monitor) over a unix socket: one command at a time.
import fsp from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { waitFor } from './procs.mjs';

export async function qmpConnect(path, timeoutMs = 5000) {
  const sock = net.connect(path);
  sock.setEncoding('utf8');
  let buffer = '';
  const waiters = [];
  const replies = [];
  sock.on('data', (chunk) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.event) continue; // asynchronous events are not replies
      if (waiters.length) waiters.shift()(msg);
      else replies.push(msg);
    }
  });
  const next = () => new Promise((resolve, reject) => {
    if (replies.length) return resolve(replies.shift());
    const timer = setTimeout(() => reject(new Error('QMP did not answer')), timeoutMs);
    waiters.push((msg) => { clearTimeout(timer); resolve(msg); });
  });
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  const greeting = await next();
  if (!greeting.QMP) throw new Error(`not a QMP greeting: ${JSON.stringify(greeting)}`);
  const execute = async (command, args) => {
    sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    const reply = await next();
    if (reply.error) throw new Error(`QMP ${command}: ${reply.error.desc}`);
    return reply.return;
  };
  await execute('qmp_capabilities');
  return { execute, close: () => sock.destroy() };
}

// QEMU's own idea of its screen size: a screendump's PNG header (dumped into `dir`).
export async function qemuScreenSize(qmp, dir) {
  const file = join(dir, `screendump-${Date.now()}.png`);
  await qmp.execute('screendump', { filename: file, format: 'png' });
  const png = await waitFor('screendump', async () => {
    const b = await fsp.readFile(file);
    return b.length > 24 ? b : null;
  });
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
