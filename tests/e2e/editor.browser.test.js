// tests/e2e/editor.browser.test.js - the editor page (examples/editor/web)
// in a real browser: Debian's Chromium (/usr/bin/chromium, or
// $LMZ_CHROMIUM) driven by playwright-core, against a real `lmzd --dev`
// (started by tests/integration/editor_e2e.sh, which also kills every
// browser process at exit). No browser is downloaded.
//
// Happy path checked: a new user logs in by email (the page's form, the link
// from the dev outbox DATA/outbox/, the refresh cookie); two tabs open the
// same document; typing in one shows up in the other; the tab that typed
// "teh" lists the spell finding; the other tab's edits come back; a tab
// opened later loads the stored text; the document id lives in the URL
// hash; the dev-mode note is shown; a bare clients/js LmzClient gets its
// token with its default refresh; logging out shows the form again and
// ends the login; "use a dev token" still connects without a login.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { DATA, HTTP } from './lib/harness.js';

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
  page.on('console', (m) => {
    // the logout test's own refresh is refused on purpose
    if (m.type() === 'error' && !/status of 401/.test(m.text())) pageErrors.push(`${page.url()}: console: ${m.text()}`);
  });
  await page.goto(`${HTTP}/#${hash}`);
  await page.waitForSelector('body[data-subscribed="true"][data-state="connected"]');
  return page;
}

// The newest dev-outbox message to `email`: its link (polled, bounded).
async function outboxLink(email, after) {
  const dir = path.join(DATA, 'outbox');
  const deadline = Date.now() + WAIT;
  for (;;) {
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.eml')).sort() : [];
    for (const f of files.reverse()) {
      if (after.has(f)) continue;
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      const link = text.includes(`To: ${email}\r\n`) && text.match(/http:\/\/\S+magic-link\?one_time_token=[A-Za-z0-9_-]{43}/);
      if (link) return link[0];
    }
    assert.ok(Date.now() < deadline, `no mail to ${email} in ${dir}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const outboxNow = () => new Set(fs.existsSync(path.join(DATA, 'outbox')) ? fs.readdirSync(path.join(DATA, 'outbox')) : []);

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

  test('a new user logs in by email: the form, the dev outbox link, the refresh cookie', async () => {
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
    await page.goto(`${HTTP}/#${doc}`);
    await page.waitForSelector('body[data-login="true"] #login-form');
    const email = `e2e-${crypto.randomBytes(3).toString('hex')}@example.com`;
    const before = outboxNow();
    await page.locator('#login-email').fill(email);
    await page.locator('#login-form button').click();
    await page.waitForFunction(() => document.getElementById('login-status').dataset.ok === 'true');
    assert.match(await page.locator('#login-status').textContent(), /^Check your email for the magic link/);
    const link = await outboxLink(email, before);
    await page.goto(link.replace(/^http:\/\/[^/]+/, HTTP)); // 302 to / with the cookie
    await page.waitForSelector('body[data-subscribed="true"][data-state="connected"]');
    assert.match(await page.locator('#instance').textContent(), /^[0-9a-f-]{36}\.[0-9a-f]{8}$/);
    assert.ok(await page.locator('#logout').isVisible());
    await shot(page, 'logged-in');
    await page.close();
  });

  test("clients/js with no token and no refresh option logs in with its default refresh (the cookie)", async () => {
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
    await page.goto(`${HTTP}/style.css`); // same origin, no app running
    const name = await page.evaluate(async (wait) => {
      const { LmzClient } = await import('/lmz-client/index.js');
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve('timed out'), wait);
        const c = new LmzClient({
          onConnectionStateChange: (st) => {
            if (st !== 'connected') return;
            clearTimeout(timer);
            resolve(c.lmz.instanceName);
            c.disconnect();
          },
          onLoginRequired: (e) => resolve(`login required: ${e.message}`),
        });
      });
    }, WAIT);
    assert.match(name, /^[0-9a-f-]{36}\.[0-9a-f]{8}$/);
    await page.close();
  });

  test('two tabs open the same document from the URL hash; the dev note and the state are shown', async () => {
    a = await openTab(doc);
    b = await openTab(doc);
    for (const p of [a, b]) {
      assert.equal(await p.locator('#doc-id').inputValue(), doc);
      assert.equal(await p.locator('#state').textContent(), 'connected');
      assert.equal(await valueOf(p), '');
      assert.equal((await p.locator('#dev-note').textContent()).trim(),
        "dev mode: login links only go to lmzd's log and outbox, and dev tokens are handed out; never enable --dev in production");
      assert.ok(await p.locator('#dev-note').isVisible());
      assert.match(await p.locator('#instance').textContent(), /^[0-9a-f-]{36}\.[0-9a-f]{8}$/);
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

  test('logging out shows the login form and ends the login in every tab', async () => {
    await a.locator('#logout').click();
    await a.waitForSelector('body[data-login="true"] #login-form');
    assert.equal(await a.locator('#login-status').textContent(), 'logged out');
    const status = await b.evaluate(async () => (await fetch('/auth/refresh-token', { method: 'POST' })).status);
    assert.equal(status, 401);
  });

  test('without a login, "use a dev token" still connects', async () => {
    const other = await browser.newContext(); // no cookie
    try {
      const page = await other.newPage();
      page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
      await page.goto(`${HTTP}/#${doc}`);
      await page.locator('#dev-token').click();
      await page.waitForSelector('body[data-subscribed="true"][data-state="connected"]', { timeout: WAIT });
      assert.match(await page.locator('#instance').textContent(), /^dev-[0-9a-f]{12}\.[0-9a-f]{8}$/);
      assert.ok(await page.locator('#logout').isHidden());
    } finally {
      await other.close();
    }
  });

  test('no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
