// The console servers the browser tests run against, started the same way everywhere.
import fs from 'node:fs';
import path from 'node:path';
import { start, freePort, freePortIn, waitFor, tcpOpen } from './procs.mjs';
import { qmpConnect } from './qmp.mjs';

// QEMU's VNC with a password, inside the default target policy's ports, with a QMP
// socket. SeaBIOS waits 60 s at "Press ESC for boot menu": a key that reaches the VM
// then visibly changes the screen (Escape opens the boot menu).
export async function startSeaBiosQemu(dir, name, password) {
  const port = await freePortIn(5900, 6923);
  const qmpPath = path.join(dir, 'qmp.sock');
  const qemu = start(name, 'qemu-system-x86_64', [
    '-machine', 'accel=tcg', '-display', 'none', '-nodefaults', '-vga', 'std', '-m', '64',
    '-vnc', `127.0.0.1:${port - 5900},password=on`,
    '-qmp', `unix:${qmpPath},server,nowait`,
    '-boot', 'menu=on,splash-time=60000',
  ]);
  await waitFor('QEMU QMP socket', () => fs.existsSync(qmpPath), { child: qemu });
  await waitFor('QEMU VNC port', () => tcpOpen(port), { child: qemu });
  const qmp = await qmpConnect(qmpPath);
  await qmp.execute('change-vnc-password', { password });
  return { qemu, qmp, port };
}

// `bc` on a pty behind a TCP listener; fork: each connection gets its own bc (the
// readiness probe is one).
export async function startBcSerial(name) {
  const port = await freePort();
  const socat = start(name, 'socat', [
    `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, 'EXEC:bc -q,pty,stderr,setsid,sane',
  ]);
  await waitFor('socat listening', () => tcpOpen(port), { child: socat });
  return { socat, port };
}
