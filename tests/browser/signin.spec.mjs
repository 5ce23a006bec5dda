// signin.spec.mjs — the console on a server with `[auth] mode = "token"`: the sign-in screen,
// a wrong token, a user's conversation, sign out, and a second user who sees none of the
// first user's conversations. Usage: node tests/browser/signin.spec.mjs <server-url>
// Environment: CHROMIUM, ALICE_TOKEN, BOB_TOKEN. Exits non-zero naming the failed step.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BASE = (process.argv[2] || '').replace(/\/$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const { ALICE_TOKEN, BOB_TOKEN } = process.env;
if (!BASE || !ALICE_TOKEN || !BOB_TOKEN) {
  console.error('usage: ALICE_TOKEN=… BOB_TOKEN=… node signin.spec.mjs <server-url>');
  process.exit(2);
}

let step = 'start';
const errors = [];
const check = (condition, message) => { if (!condition) throw new Error(message); };
const watchdog = setTimeout(() => {
  console.error(`FAIL: the sign-in test took longer than 90 s (at step "${step}")`);
  process.exit(1);
}, 90000);

const userDataDir = mkdtempSync(join(tmpdir(), 'okcvm-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(15000);
page.on('console', (msg) => {
  // The 401s that bring the sign-in screen up are expected; anything else is a fault.
  if (msg.type() === 'error' && !/status of 401/.test(msg.text())) errors.push(msg.text());
});
page.on('pageerror', (error) => errors.push(`uncaught exception: ${error.message}`));

async function signIn(token) {
  await page.locator('#signin-dialog[open]').waitFor();
  await page.fill('#signin-token', token);
  await page.click('#signin-submit');
}

async function run() {
  step = 'a visitor without a token sees the sign-in screen';
  await page.goto(`${BASE}/ui/`);
  await page.locator('#signin-dialog[open]').waitFor();
  check(await page.evaluate(() => document.body.dataset.ready !== 'true'), 'the console started without an identity');

  step = 'a wrong token is refused and the screen stays';
  await signIn('okcvm_wrong-token');
  await page.waitForFunction(() => /not valid/.test(document.querySelector('#signin-status').textContent));
  check(await page.locator('#signin-dialog[open]').count() === 1, 'the sign-in screen closed on a wrong token');

  step = 'alice signs in and talks to the agent';
  await page.fill('#signin-token', ALICE_TOKEN);
  await page.click('#signin-submit');
  await page.waitForSelector('body[data-ready="true"]');
  const label = await page.locator('#client-label').textContent();
  check(label.includes('Signed in as alice'), `the sidebar should name the user, got ${JSON.stringify(label)}`);
  await page.fill('#composer-input', 'ALICE-PRIVATE travel plans');
  await page.press('#composer-input', 'Enter');
  await page.locator('.turn .msg-assistant', { hasText: 'echo: ALICE-PRIVATE travel plans' }).waitFor();
  await page.waitForFunction(() => document.querySelector('.conv-item .title')?.textContent.includes('ALICE-PRIVATE'));
  await page.waitForFunction(() => document.body.dataset.saved !== 'false');

  step = "alice's conversation survives a reload without signing in again";
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  check(await page.locator('#signin-dialog[open]').count() === 0, 'a reload asked for the token again');
  await page.locator('.conv-item', { hasText: 'ALICE-PRIVATE' }).waitFor();

  step = 'sign out brings the sign-in screen back';
  await page.click('#sign-out');
  await page.locator('#signin-dialog[open]').waitFor();

  step = "bob signs in and sees none of alice's conversations";
  await signIn(BOB_TOKEN);
  await page.waitForSelector('body[data-ready="true"]');
  const seen = await page.evaluate(() => document.querySelector('#app').textContent);
  check(!seen.includes('ALICE-PRIVATE'), 'bob sees alice\'s conversation');
  const bobLabel = await page.locator('#client-label').textContent();
  check(bobLabel.includes('Signed in as bob'), `expected bob, got ${JSON.stringify(bobLabel)}`);

  check(errors.length === 0, `the page logged errors:\n  ${errors.join('\n  ')}`);
}

let failed = false;
try {
  await run();
  console.log('PASS: sign-in scenarios passed');
} catch (error) {
  failed = true;
  console.error(`FAIL at step "${step}": ${error.message}`);
  if (errors.length) console.error(`page errors so far:\n  ${errors.join('\n  ')}`);
} finally {
  clearTimeout(watchdog);
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
