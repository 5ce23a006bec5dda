// console.spec.mjs — drives the OKCVM web console in Debian's chromium (playwright-core,
// no downloaded browser) against a running server whose model is the scripted mock of
// tests/console.rs. Usage: node tests/browser/console.spec.mjs <server-url>
// Environment: CHROMIUM (browser binary, default /usr/bin/chromium), MOCK_MODEL_URL (the
// mock's /v1 URL, used by the settings scenario), SCREENSHOT (default
// target/console-screenshot.png). Exits non-zero with a message naming the failed step.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const BASE = (process.argv[2] || process.env.OKCVM_URL || '').replace(/\/$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = resolve(process.env.SCREENSHOT || 'target/console-screenshot.png');
const MOCK_MODEL_URL = process.env.MOCK_MODEL_URL || '';
const TIMEOUT = 15000;

if (!BASE) {
  console.error('usage: node console.spec.mjs <server-url>');
  process.exit(2);
}

const started = Date.now();
let step = 'start';
const errors = [];
const log = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);
function check(condition, message) {
  if (!condition) throw new Error(message);
}

const watchdog = setTimeout(() => {
  console.error(`FAIL: the browser test took longer than 120 s (at step "${step}")`);
  process.exit(1);
}, 120000);

/** Errors that belong to the untrusted page in the sandboxed preview, not to the console. */
// The agent page in the preview tries to reach the API; those requests are refused (opaque
// origin, no credentials, not JSON), and the browser logs the refusals. They belong to the
// untrusted page, not to the console, so they are not counted while the preview is open.
let previewOpen = false;
function fromSandboxedPreview(text, where) {
  return /sandboxed and the 'allow-scripts' permission is not set/.test(text) ||
    /Blocked script execution in '[^']*\/api\/session\/workspace\/file/.test(text) ||
    (previewOpen && /Failed to load resource/.test(text) && /\/api\/(conversations|chat)\b/.test(where));
}

const userDataDir = mkdtempSync(join(tmpdir(), 'okcvm-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-sync'],
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(TIMEOUT);
page.on('console', (msg) => {
  if (msg.type() !== 'error') return;
  const text = msg.text();
  const where = msg.location()?.url || '';
  if (fromSandboxedPreview(text, where) || where.includes('/api/session/workspace/file')) return;
  errors.push(`console error: ${text} (${where})`);
});
page.on('pageerror', (error) => errors.push(`uncaught exception: ${error.message}`));

const composer = page.locator('#composer-input');
const lastTurn = () => page.locator('.turn').last();

async function ready() {
  await page.waitForSelector('body[data-ready="true"]');
}

/** Reloads the page once the console has stored everything it holds, then waits for it. */
async function reload() {
  await page.waitForFunction(() => document.body.dataset.saved !== 'false');
  await page.reload();
  await ready();
}

async function idle() {
  await page.waitForFunction(() => document.querySelector('#stop')?.hidden && document.querySelector('#status-pill')?.textContent === 'Idle');
}

async function send(text) {
  await composer.fill(text);
  await composer.press('Enter');
}

async function newConversation() {
  const before = await page.locator('.conv-item').count();
  await page.click('#new-conversation');
  await page.waitForFunction((n) => document.body.dataset.switching === 'false' &&
    document.querySelectorAll('.conv-item').length === n + 1 &&
    document.querySelector('.conv-item')?.classList.contains('active') &&
    document.querySelector('.welcome'), before);
}

async function previewText(name) {
  await page.click('#tab-files');
  const row = page.locator('.tree-file', { hasText: name }).first();
  await row.waitFor();
  await row.locator('button.name').click();
  const pre = page.locator('#preview pre.text-preview');
  await pre.waitFor();
  return pre.textContent();
}

async function run() {
  step = 'open the console';
  await page.goto(`${BASE}/ui/`);
  await ready();
  check(await page.locator('.welcome').count() === 1, 'the first visit should show the welcome screen');
  log('console loaded');

  step = 'send a message and see streamed Markdown';
  await send('Hello **console**');
  await page.waitForFunction(() => document.querySelector('#stop') && !document.querySelector('#stop').hidden || document.querySelector('.turn .meta'));
  await lastTurn().locator('.meta').waitFor();
  await idle();
  const strong = await lastTurn().locator('.msg-assistant .markdown strong').textContent();
  check(strong === 'console', `the echo reply should render **console** as bold, got ${JSON.stringify(strong)}`);
  const meta = await lastTurn().locator('.meta').textContent();
  check(/11 tokens in/.test(meta) && /7 tokens out/.test(meta) && /\d\.\d\d s/.test(meta), `the meta line should show real token counts, got ${JSON.stringify(meta)}`);
  const title = await page.locator('#conv-title').textContent();
  check(title.startsWith('Hello **console**'), `the title should come from the first message, got ${JSON.stringify(title)}`);
  log('streamed reply rendered');

  step = 'a tool call appears in the timeline';
  await send('TOOLDEMO write some notes');
  const tool = lastTurn().locator('details.tool').first();
  await tool.waitFor();
  await page.waitForSelector('.turn:last-child details.tool.success');
  await idle();
  check((await tool.locator('.tool-name').textContent()) === 'mshtools-write_file', 'the timeline should name the tool');
  await lastTurn().locator('.msg-assistant .markdown strong', { hasText: 'notes.md' }).waitFor();
  await page.locator('.tree-file', { hasText: 'notes.md' }).waitFor();
  const strayText = await tool.evaluate((row) => [...row.childNodes]
    .filter((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()).map((n) => n.textContent));
  check(strayText.length === 0, `the tool row should hold no stray text, got ${JSON.stringify(strayText)}`);
  log('tool call shown');

  step = 'the tool call survives a reload';
  await reload();
  const kept = lastTurn().locator('details.tool.success');
  await kept.waitFor();
  await kept.locator('summary').click();
  const args = await kept.locator('.tool-body pre').first().textContent();
  check(args.includes('/mnt/okcomputer/output/notes.md'), `the arguments should survive the reload, got ${args}`);
  check((await page.locator('.turn').count()) === 2, 'both turns should be shown after the reload');
  const notes = await previewText('notes.md');
  check(notes.includes('hello from the tool'), `notes.md preview should show the file, got ${JSON.stringify(notes)}`);
  await page.locator('.turn').first().scrollIntoViewIfNeeded();
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
  log(`tool call kept after reload; screenshot saved to ${SCREENSHOT}`);

  step = 'upload a file and see it in the tree';
  await page.click('#tab-files');
  await page.setInputFiles('#file-input', { name: 'upload-test.txt', mimeType: 'text/plain', buffer: Buffer.from('uploaded by the browser test\n') });
  await page.locator('.tree-file', { hasText: 'upload-test.txt' }).waitFor();
  const limits = await page.locator('#upload-limits').textContent();
  check(/1 of 100 files/.test(limits) && /MB each/.test(limits), `the upload limits should be shown, got ${JSON.stringify(limits)}`);
  log('upload shown in the tree');

  step = 'approve a tool call from its card';
  await send('APPROVEME tidy the drafts');
  const card = lastTurn().locator('details.tool.waiting .approval');
  await card.waitFor();
  const risky = await card.locator('code.cmd-risky').textContent();
  check(risky.includes('rm -rf old-drafts'), `the card should highlight the risky command, got ${JSON.stringify(risky)}`);
  check(/s left/.test(await card.locator('.approval-countdown').textContent()), 'the card should count down');
  check((await card.locator('.approval-reason').textContent()).includes('mshtools-shell'), 'the card should say which rule asked');
  await card.locator('button', { hasText: 'Always for this conversation' }).click();
  await lastTurn().locator('.approval-decided.approved').waitFor();
  await page.waitForSelector('.turn:last-child details.tool.success');
  await idle();
  await reload();
  const decided = await lastTurn().locator('.approval-decided').textContent();
  check(/^Approved by /.test(decided) && decided.includes('remembered'), `the decision should survive a reload, got ${JSON.stringify(decided)}`);
  await page.click('#open-settings');
  const policy = page.locator('#settings-permissions');
  await policy.locator('legend', { hasText: 'Permissions of this conversation' }).waitFor();
  check((await policy.textContent()).includes('mshtools-shell'), 'the settings should list the remembered approval');
  const mcp = await page.locator('#settings-mcp .mcp-server').textContent();
  check(/broken — failed, 0 tools/.test(mcp) && mcp.includes('no-such-server'), `the settings should show the failed MCP server, got ${JSON.stringify(mcp)}`);
  await page.click('#settings-cancel');
  log('approval card answered, decision kept');

  step = 'stop a long turn after a reload (re-attach)';
  await send('SLOWTURN take your time');
  await page.locator('#stop').waitFor({ state: 'visible' });
  await page.waitForTimeout(300);
  await reload();
  await page.locator('#stop').waitFor({ state: 'visible' });
  check((await lastTurn().locator('.thinking').count()) === 1, 'the re-attached turn should show that the agent is working');
  await page.click('#stop');
  await lastTurn().locator('.notice', { hasText: 'Stopped' }).waitFor();
  await idle();
  log('long turn re-attached and stopped');

  step = 'regenerate creates 2/2 and switching back restores the first version\'s file';
  await newConversation();
  await send('FILEV write the version file');
  await lastTurn().locator('.meta').waitFor();
  await idle();
  check((await previewText('version.txt')).trim() === 'version one', 'version 1 should write "version one"');
  await lastTurn().locator('.regen-btn').click();
  await page.waitForFunction(() => document.querySelector('.turn:last-child .version-label')?.textContent === '2/2');
  await lastTurn().locator('.meta').waitFor();
  await idle();
  check((await lastTurn().locator('.msg-assistant .markdown').last().textContent()).includes('second version'), 'version 2 should have the second reply');
  check((await previewText('version.txt')).trim() === 'version two', 'version 2 should write "version two"');
  await lastTurn().locator('.version-prev').click();
  await page.waitForFunction(() => document.querySelector('.turn:last-child .version-label')?.textContent === '1/2');
  await page.locator('.toast', { hasText: 'restored to version 1' }).waitFor();
  check((await previewText('version.txt')).trim() === 'version one', 'switching back to 1/2 should restore "version one"');
  check((await lastTurn().locator('.msg-assistant .markdown').last().textContent()).includes('first version'), '1/2 should show the first reply');
  const remembered = await page.evaluate(async () => {
    const { api } = await import('/ui/api.js');
    const boot = await api('/api/session/boot');
    return boot.vm_history.filter((e) => e.role === 'assistant' && e.content).map((e) => e.content);
  });
  check(remembered.at(-1)?.includes('first version') && !remembered.some((t) => t.includes('second version')),
    `after switching to 1/2 the model should see the first version, it sees ${JSON.stringify(remembered)}`);
  log('versions, snapshot restore and the model history follow a switch');

  step = 'an HTML page the agent wrote is previewed in a sandbox';
  previewOpen = true;
  await page.evaluate(() => {
    window.__frameMessages = [];
    window.addEventListener('message', (e) => window.__frameMessages.push(JSON.stringify(e.data)));
  });
  await send('HTMLPAGE build a page');
  await lastTurn().locator('.meta').waitFor();
  await idle();
  await page.click('#tab-files');
  await page.locator('.tree-file', { hasText: 'page.html' }).locator('button.name').click();
  const frameEl = page.locator('#preview iframe');
  await frameEl.waitFor();
  const sandbox = await frameEl.getAttribute('sandbox');
  check(sandbox === 'allow-scripts', `the preview frame must be sandboxed without allow-same-origin, got ${sandbox}`);
  const src = await frameEl.getAttribute('src');
  check(!src.includes('client_id'), `the preview URL must not carry the client id, got ${src}`);
  const frame = page.frameLocator('#preview iframe');
  await frame.locator('#headline').waitFor();
  check((await frame.locator('#headline').textContent()) === 'Agent page OK', 'the agent page should render in the frame');
  await page.waitForTimeout(800);
  const consoleCookie = await page.evaluate(() => document.cookie);
  check(consoleCookie.includes('okc_client_id='), 'the console should hold its client cookie');
  const frameReport = await frame.locator('#result').textContent();
  check(!frameReport.includes('okc_client_id'), `the page read the console's cookie: ${frameReport}`);
  const messages = await page.evaluate(() => window.__frameMessages);
  for (const message of messages) {
    check(!message.includes('okc_client_id') && !message.includes('"leak"'), `the sandboxed page leaked: ${message}`);
  }
  const boot = await page.evaluate(async () => {
    const id = localStorage.getItem('okc.client_id');
    const conv = localStorage.getItem('okc.conversation_id');
    const r = await fetch('/api/session/boot', { headers: { 'x-okc-client-id': id, 'x-okc-conversation-id': conv } });
    const body = await r.json();
    return JSON.stringify((body.vm_history || []).filter((e) => e.role === 'user'));
  });
  check(!boot.includes('PWNED'), 'the sandboxed page started a turn in the console\'s session');
  log(`HTML preview sandboxed (page reported: ${JSON.stringify(frameReport)}, ${messages.length} messages)`);


  await page.waitForTimeout(300);
  previewOpen = false;
  step = 'settings save without echoing the key';
  await page.click('#open-settings');
  await page.locator('#settings-dialog[open]').waitFor();
  await page.waitForFunction(() => document.querySelector('#settings-status')?.textContent !== 'Loading…');
  const loadStatus = await page.locator('#settings-status').textContent();
  check(!/does not offer settings|Cannot load/.test(loadStatus), `the settings should load: ${loadStatus}`);
  const enabled = page.locator('#cfg-chat-enabled');
  if (!(await enabled.isChecked())) await enabled.check();
  if (MOCK_MODEL_URL) await page.fill('#cfg-chat-base_url', MOCK_MODEL_URL);
  await page.fill('#cfg-chat-model', 'mock-model');
  const secret = 'sk-browser-test-SECRET-4242';
  await page.fill('#cfg-chat-api_key', secret);
  await page.click('#settings-save');
  await page.locator('#settings-status.ok').waitFor();
  check((await page.inputValue('#cfg-chat-api_key')) === '', 'the key field must be empty after saving');
  const placeholder = await page.getAttribute('#cfg-chat-api_key', 'placeholder');
  check(/saved/.test(placeholder), `the key field should say a key is saved, got ${placeholder}`);
  check(!(await page.content()).includes(secret), 'the page shows the saved key');
  const config = await page.evaluate(async () => (await fetch('/api/config')).text());
  check(!config.includes(secret) && /"api_key_present":\s*true/.test(config), `GET /api/config must not return the key: ${config}`);
  await page.click('#settings-cancel');
  await send('after settings');
  await lastTurn().locator('.meta').waitFor();
  await idle();
  log('settings saved, key not echoed, chat still works');

  step = 'conversations: rename, search, switch, delete';
  const first = page.locator('.conv-item').last();
  await first.hover();
  await first.locator('.conv-rename-btn').click();
  await page.fill('.conv-rename', 'Renamed by test');
  await page.press('.conv-rename', 'Enter');
  await page.locator('.conv-item', { hasText: 'Renamed by test' }).waitFor();
  await page.fill('#conv-search', 'renamed');
  check((await page.locator('.conv-item').count()) === 1, 'search should filter by title');
  await page.fill('#conv-search', '');
  await page.locator('.conv-item', { hasText: 'Renamed by test' }).locator('.conv-open').click();
  await page.waitForFunction(() => document.querySelector('#conv-title')?.textContent === 'Renamed by test');
  await page.locator('.turn details.tool').first().waitFor();
  const count = await page.locator('.conv-item').count();
  const victim = page.locator('.conv-item').first();
  await victim.hover();
  await victim.locator('.conv-delete-btn').click();
  await page.click('#confirm-ok');
  await page.waitForFunction((n) => document.querySelectorAll('.conv-item').length === n - 1 && document.body.dataset.switching === 'false', count);
  log('conversations work');

  step = 'editing the first of three messages starts a new version without the later turns';
  await newConversation();
  for (const text of ['KIWI-ONE first question', 'KIWI-TWO second question', 'KIWI-THREE third question']) {
    await send(text);
    await page.waitForFunction((t) => document.querySelector('.turn:last-child .msg-assistant')?.textContent.includes(`echo: ${t}`), text);
    await idle();
  }
  check((await page.locator('.turn').count()) === 3, 'three turns should be shown before the edit');
  const firstTurn = page.locator('.turn').first();
  check((await firstTurn.locator('.edit-btn').count()) === 1, 'the first (not last) message should offer edit');
  check((await firstTurn.locator('.regen-btn').count()) === 0, 'only the last reply offers regenerate');
  await firstTurn.locator('.edit-btn').click();
  const editBox = firstTurn.locator('.edit-box textarea');
  await editBox.waitFor();
  check((await editBox.inputValue()) === 'KIWI-ONE first question', 'the editor should hold the first message');
  await editBox.fill('MANGO-EDITED first question, edited');
  await firstTurn.locator('.edit-save').click();
  await page.waitForFunction(() => document.querySelectorAll('.turn').length === 1 &&
    document.querySelector('.turn .version-label')?.textContent === '2/2');
  await page.locator('.turn .msg-assistant', { hasText: 'echo: MANGO-EDITED first question, edited' }).waitFor();
  await idle();
  const thread = await page.locator('#messages').textContent();
  check(thread.includes('MANGO-EDITED first question, edited'), 'the edited message should be shown');
  check(!/KIWI-(ONE|TWO|THREE)/.test(thread), `the old messages should be gone from the thread, got ${JSON.stringify(thread)}`);
  check((await page.locator('#conv-title').textContent()).startsWith('MANGO-EDITED'), 'editing the first message retitles the conversation');
  await page.locator('.turn').first().locator('.version-prev').click();
  await page.waitForFunction(() => document.querySelectorAll('.turn').length === 3 &&
    document.querySelector('.turn .version-label')?.textContent === '1/2');
  check((await page.locator('.turn').last().textContent()).includes('echo: KIWI-THREE third question'), '1/2 should bring back the later turns');
  await page.locator('.turn').first().locator('.version-next').click();
  await page.waitForFunction(() => document.querySelectorAll('.turn').length === 1 &&
    document.querySelector('.turn .version-label')?.textContent === '2/2');
  await reload();
  await page.waitForFunction(() => document.querySelectorAll('.turn').length === 1 &&
    document.querySelector('.turn .version-label')?.textContent === '2/2');
  log('earlier message edited; later turns kept with the old version');

  step = 'the context gauge, Compact now and the divider it leaves';
  await send('KIWI-FOUR another question');
  await page.waitForFunction(() => document.querySelector('.turn:last-child .msg-assistant')?.textContent.includes('echo: KIWI-FOUR'));
  await idle();
  const gauge = page.locator('#context-gauge');
  await gauge.waitFor({ state: 'visible' });
  const gaugeText = (await gauge.locator('.gauge-text').textContent()).trim();
  check(/^[\d.]+k? \/ [\d.]+k$/.test(gaugeText), `the gauge should show used / window tokens, got ${JSON.stringify(gaugeText)}`);
  await gauge.click();
  await page.locator('#context-dialog[open]').waitFor();
  check(/tokens \(\d+%\), 0 compactions/.test(await page.locator('#context-figures').textContent()), 'the dialog should give the figures');
  await page.fill('#compact-instructions', 'keep FACT-KIWI');
  await page.click('#compact-now');
  const divider = lastTurn().locator('.compaction-divider');
  await divider.waitFor();
  check((await divider.textContent()).includes('the older part is now a summary'), 'the divider should say what happened');
  check(!(await page.locator('#context-dialog').getAttribute('open')), 'the dialog should close once compacted');
  await divider.locator('summary').click();
  await divider.locator('.compaction-body', { hasText: 'Summary of the work so far' }).waitFor();
  await page.waitForFunction(() => /1 compaction\b/.test(document.querySelector('#context-gauge')?.getAttribute('aria-label') || ''));
  await reload();
  await lastTurn().locator('.compaction-divider').waitFor();
  log('context gauge shown; compacted on request; the divider shows the summary and survives a reload');

  step = 'a long conversation made elsewhere loads its older messages at the top, and the oldest can be edited';
  await page.evaluate(async () => {
    const client = localStorage.getItem('okc.client_id');
    for (let i = 1; i <= 30; i += 1) {
      const response = await fetch(`/api/chat?client_id=${client}&conversation_id=history-long`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message: `HISTORY-${i} message number ${i}`, stream: false }),
      });
      if (!response.ok) throw new Error(`turn ${i} answered ${response.status}`);
    }
  });
  await reload();
  await page.locator('.conv-item', { hasText: 'HISTORY-1 message' }).locator('.conv-open').click();
  await page.locator('.load-older').waitFor();
  check(!(await page.locator('#messages').textContent()).includes('HISTORY-1 message'), 'only the newest messages should come first');
  await page.evaluate(() => {
    const thread = document.querySelector('#messages');
    thread.scrollTop = 0;
    thread.dispatchEvent(new Event('scroll'));
  });
  await page.waitForFunction(() => !document.querySelector('.load-older') && document.querySelectorAll('.turn').length === 30);
  const oldest = page.locator('.turn').first();
  check((await oldest.textContent()).includes('HISTORY-1 message number 1'), 'the first message should be loaded');
  await oldest.locator('.edit-btn').click();
  await oldest.locator('.edit-box textarea').fill('HISTORY-1 edited from the top');
  await oldest.locator('.edit-save').click();
  await page.locator('.turn .msg-assistant', { hasText: 'echo: HISTORY-1 edited from the top' }).waitFor();
  await idle();
  log('older messages loaded on scroll; the oldest edited');

  step = 'a deployed site shows in the reply as a sandboxed preview';
  await newConversation();
  await send('DEPLOYSITE publish it');
  await lastTurn().locator('.web-preview iframe').waitFor();
  const site = lastTurn().locator('.web-preview iframe');
  check((await site.getAttribute('sandbox')) === 'allow-scripts', 'the deployed site must be framed without allow-same-origin');
  check(/^\/deploy\/[0-9a-f]{24}\/$/.test(await site.getAttribute('src')), `the frame should load the site's own address, got ${await site.getAttribute('src')}`);
  check((await lastTurn().locator('.web-preview .card-head').textContent()).includes('Stand site'), 'the card should carry the page title');
  await lastTurn().frameLocator('.web-preview iframe').locator('#headline', { hasText: 'Deployed OK' }).waitFor();
  await idle();
  log('deployed site previewed');

  step = 'phone-sized screen';
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the console overflows a phone screen by ${overflow}px`);
  check(await composer.isVisible(), 'the composer should be visible on a phone');
  await page.click('#toggle-sidebar');
  await page.locator('#new-conversation').waitFor({ state: 'visible' });
  await page.keyboard.press('Escape');
  log('phone layout ok');

  check(errors.length === 0, `the page logged errors:\n  ${errors.join('\n  ')}`);
}

let failed = false;
try {
  await run();
  log('PASS: all console scenarios passed');
} catch (error) {
  failed = true;
  console.error(`FAIL at step "${step}": ${error.message}`);
  if (errors.length) console.error(`page errors so far:\n  ${errors.join('\n  ')}`);
  try {
    const seen = await page.evaluate(() => ({
      toasts: [...document.querySelectorAll('.toast')].map((t) => t.textContent),
      status: document.querySelector('#status-pill')?.textContent,
      switching: document.body.dataset.switching,
      conversations: document.querySelectorAll('.conv-item').length,
      thread: document.querySelector('#messages')?.textContent.slice(0, 2000),
    }));
    console.error(`page state: ${JSON.stringify(seen)}`);
  } catch { /* the page may be gone */ }
  try {
    const shot = SCREENSHOT.replace(/\.png$/, '-failure.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.error(`failure screenshot: ${shot}`);
  } catch { /* the page may be gone */ }
} finally {
  clearTimeout(watchdog);
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
