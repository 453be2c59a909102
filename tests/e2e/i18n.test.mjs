// The console page's string catalogue (web/i18n.js), checked without a browser: every
// language has every English string with the same {placeholders}, every key the markup
// and the scripts name exists, and every refusal code maps to a sentence.
// (page.test.mjs loads the page in each language in Chromium.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WEB_DIR } from './lib/paths.mjs';

const { CATALOGUE, LANGUAGES, pickLanguage } = await import(path.join(WEB_DIR, 'i18n.js'));
const read = (file) => fs.readFileSync(path.join(WEB_DIR, file), 'utf8');
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('the page speaks English, German and French', () => {
  assert.deepEqual(LANGUAGES, ['en', 'de', 'fr']);
});

test('every language has every string, with the same placeholders, and nothing extra', () => {
  const keys = Object.keys(CATALOGUE.en);
  for (const lang of LANGUAGES) {
    assert.deepEqual(Object.keys(CATALOGUE[lang]).sort(), [...keys].sort(), `${lang}: same keys as English`);
    for (const key of keys) {
      const text = CATALOGUE[lang][key];
      assert.equal(typeof text, 'string', `${lang}.${key}`);
      assert.ok(text.trim().length > 0, `${lang}.${key} is empty`);
      assert.deepEqual(placeholders(text), placeholders(CATALOGUE.en[key]), `${lang}.${key}: placeholders`);
    }
  }
});

test('every key the markup and the scripts use is in the catalogue', () => {
  const used = new Set();
  const html = read('console.html');
  for (const m of html.matchAll(/data-i18n(?:-title|-label)?="(\w+)"/g)) used.add(m[1]);
  for (const file of ['console.js', 'keys.js', 'vnc.js', 'spice.js', 'serial.js']) {
    const js = read(file);
    for (const m of js.matchAll(/\bt\('(\w+)'/g)) used.add(m[1]);
    for (const m of js.matchAll(/\b(?:key: |label: |fail\(|showNotice\(|startRetry\(|setState\('\w+', )'(\w+)'/g)) used.add(m[1]);
  }
  const missing = [...used].filter((k) => !(k in CATALOGUE.en));
  assert.deepEqual(missing, [], 'keys used but not in the catalogue');
  assert.ok(used.size > 40, `found ${used.size} keys in use`);
});

test('every refusal code the page knows maps to a sentence in the catalogue', () => {
  const js = read('console.js');
  const body = js.match(/const REFUSAL_SENTENCES = \{([^}]*)\}/)[1];
  const entries = [...body.matchAll(/(\w+): '(\w+)'/g)];
  assert.ok(entries.length >= 10, 'REFUSAL_SENTENCES parsed');
  for (const [, code, key] of entries) assert.ok(key in CATALOGUE.en, `${code} → ${key}`);
});

test('the language follows the browser\'s list, base language first match, English otherwise', () => {
  assert.equal(pickLanguage(['de-CH', 'en']), 'de');
  assert.equal(pickLanguage(['fr-CA']), 'fr');
  assert.equal(pickLanguage(['pt-BR', 'fr']), 'fr');
  assert.equal(pickLanguage(['ja']), 'en');
  assert.equal(pickLanguage([null, undefined]), 'en');
});
