// The API UI in headless Chromium (playwright-core), against the real
// server and agent that test_ui.py starts. Each step waits on what the page
// shows, with a timeout; nothing sleeps.
//
// Environment (from test_ui.py): PADDOCK_URL, PADDOCK_ACCESS_KEY,
// PADDOCK_SECRET_KEY, PADDOCK_CA_FILE, PADDOCK_PROJECT_URL (the Default
// project's links.self), PADDOCK_CONTAINER_URL, PADDOCK_SCREENSHOT_DIR
// (optional: where to save docs/ui-*.png).

import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

// playwright-core is web/'s devDependency (web/node_modules).
const { chromium } = createRequire(new URL('../../web/package.json', import.meta.url))('playwright-core');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const URL_ = env('PADDOCK_URL');
const ACCESS = env('PADDOCK_ACCESS_KEY');
const SECRET = env('PADDOCK_SECRET_KEY');
const CA = env('PADDOCK_CA_FILE');
const PROJECT = env('PADDOCK_PROJECT_URL');
const CONTAINER = env('PADDOCK_CONTAINER_URL');
const SHOTS = process.env.PADDOCK_SCREENSHOT_DIR;
const T = 20000;

// Each browser gets an empty --user-data-dir of its own (Playwright passes
// the directory given here as --user-data-dir).
const dirs = [];
async function launch(options = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pdk-chromium-'));
  dirs.push(dir);
  return chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
    // The server's own CA is not in Chromium's store; the Python side checks TLS.
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 900 },
    ...options,
  });
}
const context = await launch();
const page = context.pages()[0] || await context.newPage();
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

let failures = 0;
async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n     ${String(e.stack || e).split('\n').slice(0, 6).join('\n     ')}`);
    if (process.env.PADDOCK_KEEP_TMP) await page.screenshot({ path: join(tmpdir(), `pdk-fail-${name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
  }
}
const shot = async (name, target = page) => { if (SHOTS) await target.screenshot({ path: join(SHOTS, `ui-${name}.png`) }); };
const field = (p, name) => p.locator(`.schema-form .field[data-field="${name}"]`);

await step('sign in with a key kept in sessionStorage', async () => {
  await page.goto(`${URL_}/v1`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: T });
  await page.fill('#access', ACCESS);
  await page.fill('#secret', SECRET);
  await page.click('form.signin button[type=submit]');
  await page.locator('.root-links a', { hasText: 'registrationTokens' }).waitFor({ timeout: T });
  assert.equal(await page.evaluate(() => JSON.parse(sessionStorage.getItem('paddock.key')).access), ACCESS);
  await page.locator('#live.live').filter({ hasText: 'live' }).waitFor({ timeout: T });
});

const tokensUrl = `${PROJECT}/registrationTokens`;
let curl = null;

await step('create a token with the generated form; it turns active live', async () => {
  await page.goto(tokensUrl);
  await page.locator('table.data').waitFor({ timeout: T });
  await page.locator('#live').filter({ hasText: 'live' }).waitFor({ timeout: T });
  await page.evaluate(() => { window.notReloaded = true; });
  await page.click('button[data-action=create]');
  await field(page, 'name').locator('input').fill('ui-token');
  await field(page, 'ttl').locator('input').fill('-1');
  await page.click('.schema-form button[type=submit]');
  await field(page, 'ttl').locator('.field-error').filter({ hasText: 'at least 0' }).waitFor({ timeout: T });
  assert.equal(await page.locator('.response-body').count(), 0, 'nothing was sent');
  await field(page, 'ttl').locator('input').fill('3600');
  await page.click('.schema-form button:text("Show Request")');
  curl = await page.locator('pre.curl').textContent();
  const http = await page.locator('pre.http-request').textContent();
  assert.match(http, /^POST \/v1\/projects\/\w+\/registrationTokens HTTP\/1\.1/);
  assert.ok(!curl.includes(SECRET) && !http.includes(SECRET), 'the secret is elided');
  // Record every state the new row shows, from the moment it appears.
  await page.evaluate(() => {
    window.seenStates = [];
    const record = () => {
      for (const tr of document.querySelectorAll('table.data tbody tr')) {
        if (tr.textContent.includes('ui-token')) {
          const s = tr.querySelector('td[data-col=state]').textContent;
          if (window.seenStates.at(-1) !== s) window.seenStates.push(s);
        }
      }
    };
    new MutationObserver(record).observe(document.querySelector('table.data tbody'), { childList: true, subtree: true, characterData: true });
  });
  await page.click('.schema-form button[type=submit]');
  await page.locator('.request-output .status.ok').filter({ hasText: '201' }).waitFor({ timeout: T });
  await page.waitForFunction(() => window.seenStates?.includes('active'), null, { timeout: T });
  const seen = await page.evaluate(() => window.seenStates);
  assert.equal(seen[0], 'registering', `states seen: ${seen}`);
  assert.equal(seen.at(-1), 'active');
  assert.ok(await page.evaluate(() => window.notReloaded === true), 'the page was not reloaded');
  await shot('collection-create');
});

await step('the curl command from Show Request creates a token too', async () => {
  assert.ok(curl, 'a curl command was shown');
  assert.match(curl, /^curl .*-X POST/);
  const dir = mkdtempSync(join(tmpdir(), 'pdk-curl-'));
  try {
    copyFileSync(CA, join(dir, 'paddock-ca.pem'));
    const out = execFileSync('/bin/sh', ['-c', curl], { cwd: dir, env: { PATH: process.env.PATH, PADDOCK_SECRET_KEY: SECRET }, timeout: T });
    const token = JSON.parse(out.toString());
    assert.equal(token.type, 'registrationToken');
    assert.equal(token.name, 'ui-token');
    assert.equal(token.ttl, 3600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // It shows up in the open page without a reload.
  await page.waitForFunction(() => [...document.querySelectorAll('table.data tbody tr')].filter((tr) => tr.textContent.includes('ui-token')).length >= 2, null, { timeout: T });
});

await step('filters and paging change the table', async () => {
  await page.goto(`${tokensUrl}?sort=name&limit=2`);
  await page.locator('table.data tbody tr').first().waitFor({ timeout: T });
  assert.equal(await page.locator('table.data tbody tr').count(), 2);
  const first = await page.locator('table.data tbody td[data-col=name]').allTextContents();
  await page.click('nav.paging a[rel=next]');
  await page.waitForFunction((names) => {
    const now = [...document.querySelectorAll('table.data tbody td[data-col=name]')].map((td) => td.textContent);
    return now.length && now.every((n) => !names.includes(n));
  }, first, { timeout: T });
  assert.ok(await page.locator('nav.paging a[rel=prev]').count(), 'a previous link on page 2');
  // A filter with a modifier, built from collectionFilters.
  await page.locator('details.filter-box summary').click();
  await page.selectOption('select[name="name.modifier"]', 'prefix');
  await page.fill('input[name="name.value"]', 'page-');
  await page.click('form.filters button[type=submit]');
  await page.waitForURL(/name_prefix=page-/, { timeout: T });
  // Page 2 before the filter held two page- names as well: the count tells
  // the filtered table from it.
  await page.waitForFunction(() => {
    const names = [...document.querySelectorAll('table.data tbody td[data-col=name]')].map((td) => td.textContent);
    const count = document.querySelector('nav.paging .count')?.textContent ?? '';
    return names.length === 2 && names.every((n) => n.startsWith('page-')) && / of 5$/.test(count);
  }, null, { timeout: T });
  assert.match(await page.locator('nav.paging .count').textContent(), /of 5/);
  // Sorting from sortLinks: reverse the order by the header.
  await page.click('th a.sort:has-text("name")');
  await page.waitForURL(/order=desc/, { timeout: T });
  await page.waitForFunction(() => document.querySelector('table.data tbody td[data-col=name]')?.textContent === 'page-4', null, { timeout: T });
});

await step('keyboard: reach Create by Tab, open the form with Enter', async () => {
  await page.goto(tokensUrl);
  await page.locator('table.data').waitFor({ timeout: T });
  let found = false;
  for (let i = 0; i < 40 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement?.dataset?.action === 'create');
  }
  assert.ok(found, 'Create is reachable by Tab');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement?.closest('.schema-form'), null, { timeout: T });
});

await step('container: logs view shows known lines, stdout and stderr apart', async () => {
  await page.goto(CONTAINER);
  await page.locator('button[data-action=logs]').click({ timeout: T });
  await field(page, 'tail').locator('textarea').fill('all');
  await field(page, 'timestamps').locator('input').check();
  await page.click('.schema-form button[type=submit]');
  await page.locator('pre.log .stdout').filter({ hasText: 'hello from stdout 3' }).waitFor({ timeout: T });
  await page.locator('pre.log .stderr').filter({ hasText: 'hello from stderr' }).waitFor({ timeout: T });
  assert.match(await page.locator('pre.log').textContent(), /\d{4}-\d\d-\d\dT[\d:.]+Z hello from stdout 1/);
  await shot('container-logs');
});

await step('a 422 from the server shows against the right field', async () => {
  await page.goto(CONTAINER);
  await page.locator('button[data-action=logs]').click({ timeout: T });
  await field(page, 'tail').locator('textarea').fill('[1, 2]');
  await page.click('.schema-form button[type=submit]');
  await page.locator('.request-output .status.bad').filter({ hasText: '422' }).waitFor({ timeout: T });
  await field(page, 'tail').locator('.field-error').filter({ hasText: 'InvalidOption' }).waitFor({ timeout: T });
  assert.equal(await field(page, 'tail').locator('textarea').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('.schema-form .field.invalid').count(), 1);
});

await step('container: the terminal runs echo hi', async () => {
  await page.goto(CONTAINER);
  await page.locator('button[data-action=execute]').click({ timeout: T });
  await field(page, 'command').locator('textarea').fill('sh');
  await page.click('.schema-form button[type=submit]');
  await page.locator('.term-box .xterm').waitFor({ timeout: T });
  await page.locator('.stream-status').filter({ hasText: 'open' }).waitFor({ timeout: T });
  await page.locator('.term-box').click();
  await page.keyboard.type('echo hi\n');
  await page.waitForFunction(() => {
    const b = window.paddockTerminal?.buffer.active;
    if (!b) return false;
    for (let i = 0; i < b.length; i++) if (b.getLine(i)?.translateToString(true).trim() === 'hi') return true;
    return false;
  }, null, { timeout: T });
  await shot('container-terminal');
  // Resizing the window resizes the TTY.
  await page.setViewportSize({ width: 700, height: 900 });
  await page.waitForFunction(() => window.paddockTerminal.cols < 90, null, { timeout: T });
  // The TTY follows (the resize and the next keystrokes race): ask until it agrees.
  let agreed = false;
  for (let i = 0; i < 5 && !agreed; i++) {
    await page.keyboard.type('stty size\n');
    agreed = await page.waitForFunction(() => {
      const t = window.paddockTerminal;
      const b = t.buffer.active;
      for (let j = 0; j < b.length; j++) if (b.getLine(j)?.translateToString(true).trim() === `${t.rows} ${t.cols}`) return true;
      return false;
    }, null, { timeout: 3000 }).then(() => true, () => false);
  }
  assert.ok(agreed, 'stty size matches the terminal after a resize');
  await page.keyboard.type('exit\n');
  await page.locator('.stream-status').filter({ hasText: 'ended' }).waitFor({ timeout: T });
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step('container: live stats chart', async () => {
  await page.goto(CONTAINER);
  await page.locator('button[data-action=stats]').click({ timeout: T });
  await page.click('.schema-form button[type=submit]');
  await page.locator('.readout').filter({ hasText: /CPU [\d.]+ % · memory/ }).waitFor({ timeout: T });
  await page.locator('.stream-bar button:text("Close stream")').click();
});

await step('a resource with its fields, links and an edit form', async () => {
  await page.goto(tokensUrl + '?name=ui-token');
  await page.locator('table.data tbody td[data-col=id] a').first().click();
  await page.locator('section.resource table.fields').waitFor({ timeout: T });
  assert.equal(await page.locator('section.resource .badge[data-field=state]').textContent(), 'active');
  await page.click('button:text-is("Edit")');
  await field(page, 'description').locator('input').fill('made in the browser');
  await page.click('.schema-form button:text("Show Request")');
  const put = await page.locator("pre.http-request").textContent();
  assert.match(put, /^PUT [^]*"description":"made in the browser"/, put);
  await shot('resource-form');
  await page.click('.schema-form button[type=submit]');
  await page.locator('.request-output .status').waitFor({ timeout: T });
  const answer = await page.locator('.request-output').textContent();
  assert.match(answer, /^Response200/, answer.slice(0, 300));
  await page.locator('table.fields tr[data-field=description] td').filter({ hasText: 'made in the browser' }).waitFor({ timeout: T });
});

await step('narrow window: no sideways scrolling of the page', async () => {
  await page.setViewportSize({ width: 380, height: 800 });
  await page.goto(tokensUrl);
  await page.locator('table.data').waitFor({ timeout: T });
  await page.click('button[data-action=create]');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `page scrolls sideways by ${overflow}px`);
  await page.setViewportSize({ width: 1280, height: 900 });
});

await step('a type the UI never names appears from the schemas alone', async () => {
  // The server's schemas plus a made-up "gadget" type, its collection served here.
  const gadget = (id, color, size) => ({ id, type: 'gadget', name: `gadget-${id}`, state: 'active', color, size,
    links: { self: `${URL_}/v1/gadgets/${id}` }, actions: {} });
  let created = null;
  await page.route(/\/v1\/schemas$/, async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    body.data.push({ id: 'gadget', type: 'schema', links: { self: `${URL_}/v1/schemas/gadget`, collection: `${URL_}/v1/gadgets` },
      collectionMethods: ['GET', 'POST'], resourceMethods: ['GET'],
      resourceFields: {
        name: { type: 'string', create: true, required: true, maxLength: 20 },
        color: { type: 'enum', options: ['red', 'green', 'blue'], create: true, default: 'green' },
        size: { type: 'int', min: 1, max: 10, create: true },
        state: { type: 'enum', options: ['active'] },
      },
      resourceActions: {}, collectionActions: {},
      collectionFilters: { color: { modifiers: ['eq', 'ne'] }, size: { modifiers: ['eq', 'lt', 'gt'] } } });
    await route.fulfill({ response: res, json: body });
  });
  await page.route(/\/v1\/gadgets(\?.*)?$/, async (route) => {
    const req = route.request();
    if (req.resourceType() === 'document') return route.continue();
    const headers = { 'X-API-Schemas': `${URL_}/v1/schemas`, 'Content-Type': 'application/json' };
    if (req.method() === 'POST') {
      created = req.postDataJSON();
      if (created.color === 'red') {
        return route.fulfill({ status: 422, headers, body: JSON.stringify({ type: 'error', status: 422, code: 'InvalidOption', message: 'red gadgets are sold out', fieldName: 'color' }) });
      }
      return route.fulfill({ status: 201, headers, body: JSON.stringify(gadget('g9', created.color, created.size)) });
    }
    const u = new URL(req.url());
    const data = [gadget('g1', 'red', 3), gadget('g2', 'blue', 7)].filter((g) => !u.searchParams.get('color') || g.color === u.searchParams.get('color'));
    return route.fulfill({ status: 200, headers, body: JSON.stringify({ type: 'collection', resourceType: 'gadget',
      links: { self: req.url() }, createTypes: { gadget: `${URL_}/v1/gadgets` }, actions: {},
      pagination: { limit: 100, total: data.length, partial: false, next: null, previous: null },
      sort: null, sortLinks: { name: `${URL_}/v1/gadgets?sort=name` }, filters: { color: null, size: null }, data }) });
  });
  await page.goto(`${URL_}/v1/gadgets`);
  await page.locator('table.data tbody tr').nth(1).waitFor({ timeout: T });
  assert.deepEqual(await page.locator('table.data thead th').allTextContents(), ['id', 'name', 'state', 'color', 'size']);
  await page.locator('details.filter-box summary').click();
  assert.deepEqual(await page.locator('select[name="size.modifier"] option').allTextContents(), ['eq', 'lt', 'gt']);
  await page.selectOption('select[name="color.value"]', 'blue');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('table.data tbody tr').length === 1, null, { timeout: T });
  await page.click('button[data-action=create]');
  assert.equal(await field(page, 'color').locator('select').inputValue(), 'green', 'the default');
  await field(page, 'name').locator('input').fill('new');
  await field(page, 'size').locator('input').fill('11');
  await page.click('.schema-form button[type=submit]');
  await field(page, 'size').locator('.field-error').filter({ hasText: 'at most 10' }).waitFor({ timeout: T });
  assert.equal(created, null, 'nothing was sent');
  await field(page, 'size').locator('input').fill('4');
  await field(page, 'color').locator('select').selectOption('red');
  await page.click('.schema-form button[type=submit]');
  await field(page, 'color').locator('.field-error').filter({ hasText: 'sold out' }).waitFor({ timeout: T });
  await field(page, 'color').locator('select').selectOption('blue');
  await page.click('.schema-form button[type=submit]');
  await page.locator('.request-output .status.ok').filter({ hasText: '201' }).waitFor({ timeout: T });
  assert.deepEqual(created, { name: 'new', color: 'blue', size: 4 });
  await page.unrouteAll();
});

await step('sign out', async () => {
  await page.goto(`${URL_}/v1`);
  await page.locator('.root-links').waitFor({ timeout: T });
  await page.click('#signout');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: T });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('paddock.key')), null);
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: T });
});

await step('the browser prompt: Basic credentials the browser sends', async () => {
  const ctx2 = await launch({ httpCredentials: { username: ACCESS, password: SECRET } });
  const p2 = ctx2.pages()[0] || await ctx2.newPage();
  await p2.goto(`${URL_}/v1?_challenge=1`);
  await p2.locator('.root-links a', { hasText: 'hosts' }).waitFor({ timeout: T });
  assert.ok(!p2.url().includes('_challenge'));
  assert.equal(await p2.evaluate(() => sessionStorage.getItem('paddock.key')), null);
  await ctx2.close();
});

const unexpected = consoleErrors.filter((e) => !/status of 4\d\d/.test(e));
if (unexpected.length) {
  failures++;
  console.log(`FAIL errors in the page:\n  ${unexpected.join('\n  ')}`);
}
await context.close();
for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
console.log(failures ? `${failures} failed` : 'all passed');
process.exit(failures ? 1 : 0);
