// tests/e2e/editor.browser.test.js - the editor page (examples/editor/web)
// in a real browser: Debian's Chromium (/usr/bin/chromium, or
// $LMZ_CHROMIUM) driven by playwright-core, against a real `lmzd --dev`
// (started by tests/integration/editor_e2e.sh, which also kills every
// browser process at exit). No browser is downloaded.
//
// Happy path checked: two tabs open the same document; typing in one shows
// up in the other; the tab that typed "teh" lists the spell finding; the
// other tab's edits come back; a tab opened later loads the stored text; the
// document id lives in the URL hash; the dev-mode note is shown.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { HTTP } from './lib/harness.js';

const CHROMIUM = process.env.LMZ_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.LMZ_E2E_SCREENSHOTS; // a folder: screenshots for a person to look at
const WAIT = 15_000; // every wait below is bounded by this

let browser;
let context;
const pageErrors = [];

before(async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-deps.sh`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 60_000,
  });
  context = await browser.newContext();
  context.setDefaultTimeout(WAIT);
});

after(async () => {
  await context?.close().catch(() => {});
  await browser?.close().catch(() => {});
});

async function openTab(hash) {
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`${page.url()}: console: ${m.text()}`); });
  await page.goto(`${HTTP}/#${hash}`);
  await page.waitForSelector('body[data-subscribed="true"][data-state="connected"]');
  return page;
}

const valueOf = (page) => page.locator('#content').inputValue();

async function waitForValue(page, expected) {
  await page.waitForFunction((v) => document.getElementById('content').value === v, expected, { timeout: WAIT });
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

describe('the editor page in Chromium', () => {
  const doc = `doc-e2e-${crypto.randomBytes(3).toString('hex')}`;
  let a;
  let b;

  test('two tabs open the same document from the URL hash; the dev note and the state are shown', async () => {
    a = await openTab(doc);
    b = await openTab(doc);
    for (const p of [a, b]) {
      assert.equal(await p.locator('#doc-id').inputValue(), doc);
      assert.equal(await p.locator('#state').textContent(), 'connected');
      assert.equal(await valueOf(p), '');
      assert.equal((await p.locator('#dev-note').textContent()).trim(),
        'dev mode: this page uses a development token; never enable --dev in production');
      assert.ok(await p.locator('#dev-note').isVisible());
      assert.match(await p.locator('#instance').textContent(), /^dev-[0-9a-f]{12}\.[0-9a-f]{8}$/);
    }
    assert.notEqual(await a.locator('#instance').textContent(), await b.locator('#instance').textContent());
  });

  test('typing in one tab shows up in the other; the typing tab lists the finding for "teh"', async () => {
    await a.locator('#content').pressSequentially('fix teh typo', { delay: 15 });
    await waitForValue(b, 'fix teh typo');
    const finding = a.locator('#findings li[data-word="teh"]');
    await finding.waitFor({ state: 'visible' });
    assert.equal(await finding.textContent(), '“teh” at 4: did you mean “the”');
    assert.ok(await a.locator('#findings-empty').isHidden());
    await a.waitForFunction(() => document.getElementById('save-status').dataset.ok === 'true');
    assert.equal(await b.locator('#findings li').count(), 0, 'findings go to the tab that typed');
    await shot(a, 'tab-a-after-typing');
    await shot(b, 'tab-b-after-update');
  });

  test('edits from the other tab come back, and its own findings follow its edits', async () => {
    await b.locator('#content').press('End');
    await b.locator('#content').pressSequentially(' and teh rest', { delay: 15 });
    await waitForValue(a, 'fix teh typo and teh rest');
    await b.locator('#findings li').nth(1).waitFor({ state: 'visible' });
    assert.deepEqual(await b.locator('#findings li').allTextContents(),
      ['“teh” at 4: did you mean “the”', '“teh” at 17: did you mean “the”']);
    // Correcting the text clears the typing tab's findings.
    await b.locator('#content').fill('fix the typo and the rest');
    await waitForValue(a, 'fix the typo and the rest');
    await b.waitForFunction(() => document.querySelectorAll('#findings li').length === 0 &&
      !document.getElementById('findings-empty').hidden);
  });

  test('a tab opened later loads the stored content; another document is separate', async () => {
    const c = await openTab(doc);
    assert.equal(await valueOf(c), 'fix the typo and the rest');
    const other = `${doc}-other`;
    await c.locator('#doc-id').fill(other);
    await c.locator('#doc-form button').click();
    await c.waitForFunction((id) => location.hash === `#${id}` &&
      document.body.dataset.subscribed === 'true', other);
    assert.equal(await valueOf(c), '');
    await c.locator('#content').pressSequentially('separate', { delay: 10 });
    await c.waitForFunction(() => document.getElementById('save-status').dataset.ok === 'true');
    assert.equal(await valueOf(a), 'fix the typo and the rest');
    await c.close();
  });

  test('a reloaded tab reconnects and shows the document again', async () => {
    await a.reload();
    await a.waitForSelector('body[data-subscribed="true"][data-state="connected"]');
    assert.equal(await valueOf(a), 'fix the typo and the rest');
    await a.locator('#content').fill('after reload');
    await waitForValue(b, 'after reload');
  });

  test('no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
