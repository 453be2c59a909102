// Child processes, free ports and bounded waits for the end-to-end test.
import { spawn } from 'node:child_process';
import net from 'node:net';

const children = new Set();

// Last resort: if the test process dies without running its `after` hooks, do not
// leave QEMU or a proxy listening behind.
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
});

// Starts a long-running child; its output is kept (last 64 KiB) for failure messages.
export function start(name, cmd, args, options = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  child.label = name;
  child.output = '';
  const keep = (chunk) => {
    child.output = (child.output + chunk.toString()).slice(-65536);
    if (process.env.E2E_VERBOSE) process.stderr.write(`[${name}] ${chunk}`);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  child.on('error', (err) => { child.output += `\nspawn error: ${err.message}`; });
  children.add(child);
  return child;
}

// Stops a child: SIGTERM, then SIGKILL if it lingers.
export async function stop(child, graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

export async function stopAll() {
  await Promise.all([...children].map((c) => stop(c)));
}

// Runs a short command to completion; rejects with its output on failure or timeout.
export function run(cmd, args, { timeoutMs = 20000, input, ...options } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...options });
    let out = '';
    let err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} timed out`)); }, timeoutMs);
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { err += c; });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err || out}`));
    });
    if (input !== undefined) {
      child.stdin.on('error', () => {}); // a child that exits without reading: its exit code tells
      child.stdin.end(input);
    }
  });
}

function canListen(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

// A port the OS says is free right now.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// A free port in [lo, hi] (VNC displays need 5900+N; the proxy allows 5900-6923).
export async function freePortIn(lo, hi, avoid = []) {
  for (let i = 0; i < 200; i++) {
    const port = lo + Math.floor(Math.random() * (hi - lo + 1));
    if (!avoid.includes(port) && await canListen(port)) return port;
  }
  throw new Error(`no free port in ${lo}-${hi}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `probe` until it returns a truthy value; fails after timeoutMs, or at once if
// `child` exits meanwhile (with its output, which says why).
export async function waitFor(what, probe, { timeoutMs = 15000, intervalMs = 100, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`${child.label} exited while waiting for ${what}:\n${child.output}`);
    }
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${last.message})` : ''}${child ? `\n${child.label} output:\n${child.output}` : ''}`);
}

export function tcpOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}
