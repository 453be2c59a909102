// Where the end-to-end tests find the repository, the binary under test, the browser
// and noVNC; the same for every test file, so each can be run alone.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// tests/e2e: the engine page (engine.html, engine.js) is served from here.
export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(E2E_DIR, '../..');
// CONSOLEGATE_BIN overrides the binary (default target/debug/consolegate).
export const BIN = path.resolve(REPO, process.env.CONSOLEGATE_BIN || 'target/debug/consolegate');
// Screenshots for people to look at (E2E_ARTIFACTS moves them, e.g. for a run on an older page).
export const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(REPO, 'tests/artifacts');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The console page under test; E2E_WEB_DIR runs the tests against another copy (to
// check that a test fails on the page as it was before a fix).
export const WEB_DIR = process.env.E2E_WEB_DIR || path.join(REPO, 'web');
// E2E_NOVNC_DIR=/usr/share/novnc runs the page on Debian's noVNC package instead.
export const NOVNC_DIR = process.env.E2E_NOVNC_DIR || path.join(REPO, 'web/node_modules/@novnc/novnc');
