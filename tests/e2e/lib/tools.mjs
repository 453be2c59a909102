// What the end-to-end tests need on the machine (Debian's chromium, QEMU, socat…).
// A missing tool skips that file's tests with a visible SKIPPED line; under CI=true it
// fails instead, so a CI machine that lost a package cannot pass by skipping.
import fs from 'node:fs';
import path from 'node:path';
import { test as nodeTest } from 'node:test';
import { CHROMIUM } from './paths.mjs';

function onPath(cmd) {
  return (process.env.PATH || '').split(path.delimiter).some((dir) => {
    try { fs.accessSync(path.join(dir, cmd), fs.constants.X_OK); return true; } catch { return false; }
  });
}

const CHECKS = {
  chromium: () => fs.existsSync(CHROMIUM) || `${CHROMIUM} not found (set CHROMIUM)`,
  qemu: () => onPath('qemu-system-x86_64') || 'qemu-system-x86_64 not found',
  socat: () => onPath('socat') || 'socat not found',
  bc: () => onPath('bc') || 'bc not found',
  openssl: () => onPath('openssl') || 'openssl not found',
};

// Returns node:test's `test`, skipping every test of the file when a tool is missing
// (then `.skipped` is the reason, for the file's `before` to do nothing).
export function testsNeeding(file, tools) {
  const missing = tools.map((t) => CHECKS[t]()).filter((r) => r !== true);
  if (!missing.length) return nodeTest;
  const reason = missing.join('; ');
  if (process.env.CI === 'true') {
    nodeTest(`${file}: required tools are installed`, () => {
      throw new Error(`${reason} (CI=true: a missing tool fails instead of skipping)`);
    });
  } else {
    console.log(`SKIPPED: ${file}: ${reason}`);
  }
  const skipping = (name, options, fn) => nodeTest(name, { ...options, skip: reason }, fn);
  skipping.skipped = reason;
  return skipping;
}
