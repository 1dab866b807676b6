// Drives the dashboard in a real Chromium against a real daemon, started by the
// Rust test that runs this script (crates/meanwhile/tests/it/dashboard.rs).
//
// Environment: MW_BASE (http://127.0.0.1:PORT), MW_TOKEN (the daemon's token),
// MW_SHOTS (where screenshots go), MW_SCENE (walk | big | tabs), MW_PLAYWRIGHT (the
// playwright-core package directory), MW_CHROMIUM (the browser).
// Prints one JSON line per figure and "ok" at the end; any failure throws.

import {createRequire} from 'node:module';
import http from 'node:http';
import path from 'node:path';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
const {chromium} = require(process.env.MW_PLAYWRIGHT);
const BASE = process.env.MW_BASE;
const TOKEN = process.env.MW_TOKEN;
const SHOTS = process.env.MW_SHOTS;
const TIMEOUT = 60000;

/** The API with the bearer token, as a script would use it. */
async function api(method, p, body) {
  const r = await fetch(BASE + p, {
    method,
    headers: {authorization: `Bearer ${TOKEN}`, ...(body ? {'content-type': 'application/json'} : {})},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.MW_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const context = await browser.newContext({viewport: {width: 1280, height: 800}});
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/401|403|Failed to load resource/.test(m.text())) errors.push(m.text()); });
  return {browser, context, page, errors};
}

/** Logs in through the form, with the token typed in. */
async function login(page, next = '/ui/') {
  await page.goto(BASE + next);
  assert.match(page.url(), /\/login\?next=/, 'a page without the cookie goes to the login form');
  await page.fill('input[name=token]', 'wrong');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Wrong token');
  await page.fill('input[name=token]', TOKEN);
  await page.click('button[type=submit]');
  await page.waitForURL(`${BASE}${next}`);
  const cookies = await page.context().cookies();
  const c = cookies.find((c) => c.name.startsWith('meanwhile_'));
  assert.ok(c, 'a session cookie was set');
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Strict');
}

async function walk() {
  const {browser, page, errors} = await launch();
  await login(page);
  await page.waitForSelector('table.tasks');
  // The page must not reload from here on: a marker on window would be lost.
  await page.evaluate(() => { window.stillHere = true; });

  // A task submitted elsewhere appears without a reload.
  const script = 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); printf "\\033[32mline %d\\033[0m of \\033[1mmany\\033[0m\\n" $i; sleep 0.05; done';
  const {id} = await api('POST', '/v1/tasks', {command: script, name: 'printer', labels: ['browser']});
  await page.waitForSelector(`tr[data-id="${id}"] .state-running`);
  await api('POST', '/v1/tasks', {command: 'echo done; exit 3', name: 'fails with 3'});
  await page.waitForSelector('td.name >> text=fails with 3');
  await page.waitForSelector('tr .state-failed');
  assert.equal(await page.evaluate(() => window.stillHere), true, 'the list updated without a reload');
  await page.waitForTimeout(300);
  await page.screenshot({path: path.join(SHOTS, 'tasks.png'), fullPage: false});

  // Filters live in the URL.
  await page.selectOption('select[name=state]', 'failed');
  await page.waitForURL(/state=failed/);
  await page.waitForSelector('td.name >> text=fails with 3');
  assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 0, 'the running task is filtered out');
  await page.fill('input[name=text]', 'PRINT');
  await page.selectOption('select[name=state]', '');
  await page.waitForURL(/text=PRINT/);
  await page.waitForSelector(`tr[data-id="${id}"]`);
  assert.equal(await page.locator('td.name >> text=fails with 3').count(), 0, 'text filters by name');

  // Its page: the log follows as the task prints, colours rendered.
  await page.click(`tr[data-id="${id}"] td.name a`);
  await page.waitForURL(`${BASE}/ui/tasks/${id}`);
  await page.waitForSelector('.log .line >> text=line 3 of many');
  const seen = await page.locator('.log .line').count();
  await page.waitForFunction((n) => document.querySelectorAll('.log .line').length > n + 10, seen);
  assert.ok(await page.locator('.log span.f2').count() > 0, 'green text is coloured');
  assert.ok(await page.locator('.log span.bold').count() > 0, 'bold text is bold');
  assert.equal(await page.locator('.log >> text=\u001b').count(), 0, 'no escape code shows');

  // grep: only matching lines, and it goes on following.
  await page.fill('input[name=grep]', 'line [0-9]*7 ');
  await page.click('form.logbar button[type=submit]');
  await page.waitForFunction(() => {
    const lines = [...document.querySelectorAll('.log .line')].map((l) => l.textContent);
    return lines.length >= 2 && lines.every((l) => /line \d*7 of many/.test(l));
  });
  const before = await page.locator('.log .line').count();
  await page.waitForFunction((n) => document.querySelectorAll('.log .line').length > n, before);
  assert.ok((await page.locator('.log .line').allTextContents()).every((l) => /line \d*7 of/.test(l)));
  await page.fill('input[name=grep]', '');
  await page.fill('input[name=tail]', '5');
  await page.click('form.logbar button[type=submit]');
  await page.waitForFunction(() => !/lines not matching/.test(document.querySelector('.loginfo').textContent));
  await page.screenshot({path: path.join(SHOTS, 'task.png'), fullPage: false});

  // Stop it: its state changes on the page.
  await page.click('button:text-is("Stop")');
  await page.waitForSelector('h1 .state-cancelled');
  assert.equal((await api('GET', `/v1/tasks/${id}`)).task.state, 'cancelled');
  // Retry it: running again, the log follows the new attempt; then force it.
  await page.click('button:text-is("Retry")');
  await page.waitForSelector('h1 .state-running');
  await page.waitForSelector('table.attempts tbody tr:nth-child(2)');
  await page.click('button:text-is("Force stop")');
  await page.waitForSelector('h1 .state-cancelled');
  assert.equal((await api('GET', `/v1/tasks/${id}`)).attempts.length, 2);

  // Input to an interactive task.
  const asks = await api('POST', '/v1/tasks', {command: 'read -r answer; echo "got $answer"', stdin: true, name: 'asks'});
  await page.goto(`${BASE}/ui/tasks/${asks.id}`);
  await page.waitForSelector('input[name=input]');
  await page.fill('input[name=input]', 'forty-two');
  await page.click('form.input button[type=submit]');
  await page.waitForSelector('.log .line >> text=got forty-two');
  await page.waitForSelector('h1 .state-succeeded');

  // Megabytes of output: the page reads the tail, then pages by cursor from the
  // start when asked, and keeps at most 20,000 lines.
  const reads = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (/^\/v1\/tasks\/\d+\/output$/.test(u.pathname)) reads.push(u.search);
  });
  const big = await api('POST', '/v1/tasks', {command: 'seq 1 700000', name: 'megabytes'});
  while ((await api('GET', `/v1/tasks/${big.id}`)).task.state !== 'succeeded') await new Promise((r) => setTimeout(r, 100));
  await page.goto(`${BASE}/ui/tasks/${big.id}`);
  await page.waitForSelector('.log .line:text-is("700000")');
  assert.ok(await page.locator('.log .line').count() <= 1000, 'the tail only');
  await page.click('button:text-is("read from the start")');
  await page.waitForFunction(() => /dropped from view/.test(document.querySelector('.loginfo').textContent) &&
    document.querySelector('.log').lastElementChild.textContent === '700000');
  const kept = await page.locator('.log .line').count();
  assert.ok(kept > 1000 && kept <= 20000, `${kept} lines kept`);
  assert.ok(reads.length >= 3 && reads.every((q) => /since=|tail=/.test(q)), `every read has a cursor or a tail: ${reads}`);

  // Pause a queue, and resume it.
  await page.click('nav a:text-is("Queues")');
  await page.waitForSelector('td >> text=default');
  await page.click('button:text-is("Pause")');
  await page.waitForSelector('.badge.paused');
  assert.equal((await api('GET', '/v1/queues')).find((q) => q.name === 'default').paused, true);
  await page.click('button:text-is("Resume")');
  await page.waitForSelector('button:text-is("Pause")');
  assert.equal((await api('GET', '/v1/queues')).find((q) => q.name === 'default').paused, false);

  // A schedule fired from its page; a budget set through the form.
  await api('POST', '/v1/schedules', {name: 'nightly', every: '1d', task: {command: 'echo from the schedule'}});
  await page.click('nav a:text-is("Schedules")');
  await page.waitForSelector('td >> text=nightly');
  await page.click('button:text-is("Run now")');
  await page.waitForFunction(() => [...document.querySelectorAll('td a')].some((a) => /^#\d+$/.test(a.textContent)));
  assert.ok((await api('GET', '/v1/schedules/nightly')).last_task, 'the schedule fired a task');
  await page.click('nav a:text-is("Budgets")');
  await page.fill('input[name=queue]', 'llm');
  await page.fill('input[name=tokens]', '1000');
  await page.click('form.inline button:text-is("Set")');
  await page.waitForSelector('td >> text=0 / 1,000');
  assert.equal((await api('GET', '/v1/budgets/llm')).tokens, 1000);

  // The other pages draw without errors.
  for (const name of ['Schedules', 'Budgets', 'Alerts', 'Notifications', 'Audit', 'Nodes', 'Charts']) {
    await page.click(`nav a:text-is("${name}")`);
    await page.waitForSelector(`h1:text-is("${name === 'Audit' ? 'Audit trail' : name}")`);
    await page.waitForFunction(() => !document.querySelector('main .error') && document.querySelector('main h1 + *'));
  }
  await page.waitForFunction(() => [...document.querySelectorAll('svg.chart rect.started')]
    .some((r) => Number(r.getAttribute('height')) > 0));
  await page.screenshot({path: path.join(SHOTS, 'charts.png'), fullPage: false});
  await page.click('nav a:text-is("Audit")');
  await page.waitForSelector('td >> text=queue_set');

  // A page of another site cannot make the browser act: the cookie is SameSite=Strict
  // and the Origin is checked.
  const evil = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<script>
      fetch(${JSON.stringify(BASE)} + '/v1/tasks', {method: 'POST', mode: 'no-cors', credentials: 'include',
        headers: {'content-type': 'text/plain'}, body: JSON.stringify({command: 'echo pwned', name: 'csrf'})})
        .finally(() => { document.title = 'sent'; });
    </script>`);
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  await page.goto(`http://127.0.0.1:${evil.address().port}/`);
  await page.waitForFunction(() => document.title === 'sent');
  evil.close();
  const csrf = await api('GET', '/v1/tasks?text=csrf');
  assert.equal(csrf.tasks.length, 0, 'a cross-origin POST created nothing');

  // Log out: the session ends.
  await page.goto(`${BASE}/ui/`);
  await page.click('button:text-is("Log out")');
  await page.waitForURL(/\/login/);
  await page.goto(`${BASE}/ui/queues`);
  assert.match(page.url(), /\/login\?next=/);

  assert.deepEqual(errors, [], 'the page logged no error');
  await browser.close();
}

/** A store of many tasks: the first page asks the API for one page, once. */
async function big() {
  const {browser, page, errors} = await launch();
  const lists = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/v1/tasks') lists.push(r.url()); });
  await login(page);
  const newest = (await api('GET', '/v1/tasks?limit=1')).tasks[0].id;
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // Timed, 11 times each: the API's own answer for the first page; the page's
  // request for it (from the browser's resource timing) and its rows on screen.
  const apiMs = [], listMs = [], serverMs = [], shownMs = [];
  for (let i = 0; i < 11; i++) {
    const t = performance.now();
    await api('GET', '/v1/tasks?limit=50');
    apiMs.push(performance.now() - t);
  }
  for (let i = 0; i < 11; i++) {
    lists.length = 0;
    const t0 = performance.now();
    await page.goto(`${BASE}/ui/`);
    await page.waitForSelector(`tr[data-id="${newest}"]`);
    shownMs.push(performance.now() - t0);
    assert.equal(await page.locator('tr.task-row').count(), 50);
    assert.equal(lists.length, 1, `the page read the list once: ${lists}`);
    assert.match(lists[0], /limit=50/);
    const e = await page.evaluate(() => {
      const list = performance.getEntriesByType('resource').find((r) => new URL(r.name).pathname === '/v1/tasks');
      return {total: list.duration, server: list.responseEnd - list.requestStart};
    });
    listMs.push(e.total);
    serverMs.push(e.server);
  }
  // The next page is a keyset page.
  await page.click('a[rel=next]');
  await page.waitForURL(/before=/);
  await page.waitForSelector(`tr[data-id="${newest - 50}"]`);
  console.log(JSON.stringify({figure: 'first_page', api_ms: median(apiMs), page_list_ms: median(listMs),
    page_list_sent_to_answered_ms: median(serverMs), rows_shown_ms: median(shownMs)}));
  assert.deepEqual(errors, [], 'the page logged no error');
  await browser.close();
}

/** Waits until `check` (run in the page) holds. */
const until = (page, check, arg) => page.waitForFunction(check, arg, {timeout: TIMEOUT});

/** Eight tabs share one event stream; alerts acknowledged; the audit newest first
 * with dates; schedule times with their zone; chart labels whole; a phone's width. */
async function tabs() {
  const {browser, context, page, errors} = await launch();
  await login(page);
  await page.waitForSelector('table.tasks');

  // Eight tabs, and six full page loads in one of them: every tab still draws and
  // hears events, which a stream per tab (six connections per host) could not do.
  for (let i = 0; i < 6; i++) {
    await page.goto(`${BASE}/ui/queues`);
    await page.waitForSelector('td >> text=default');
  }
  await page.goto(`${BASE}/ui/`);
  await page.waitForSelector('table.tasks');
  const pages = [page];
  for (let i = 1; i < 8; i++) {
    const p = await context.newPage();
    p.setDefaultTimeout(TIMEOUT);
    p.on('pageerror', (e) => errors.push(String(e)));
    await p.goto(`${BASE}/ui/`);
    await p.waitForSelector('table.tasks');
    pages.push(p);
  }
  const {id} = await api('POST', '/v1/tasks', {command: 'true', name: 'seen in every tab'});
  for (const p of pages) await p.waitForSelector(`tr[data-id="${id}"] .state-succeeded`);
  for (const p of pages) {
    assert.equal(await p.evaluate(() => typeof SharedWorker), 'function');
    assert.match(await p.locator('#live').getAttribute('class'), /live on/, 'each tab is live');
  }
  for (const p of pages.slice(1)) await p.close();

  // An alert acknowledged from its page, for an hour.
  await api('POST', '/v1/tasks', {command: 'exit 1', name: 'gives up', retry: {max_attempts: 2, backoff: '10ms'}});
  let alert;
  while (!(alert = (await api('GET', '/v1/alerts')).find((a) => a.kind === 'quarantined'))) await new Promise((r) => setTimeout(r, 100));
  await page.click('nav a:text-is("Alerts")');
  await page.waitForSelector(`[data-alert="${alert.id}"]:text-is("firing")`);
  await page.selectOption(`select[name=ack-for-${alert.id}]`, '1h');
  await page.click('button:text-is("Acknowledge")');
  await page.waitForSelector(`[data-alert="${alert.id}"]:text-is("acked")`);
  const after = (await api('GET', '/v1/alerts')).find((a) => a.id === alert.id);
  assert.ok(after.acked && after.acked.until > Date.now() + 3500e3, `acknowledged for an hour: ${JSON.stringify(after)}`);
  assert.equal((await api('GET', '/v1/health')).ok, true, 'health does not count it');

  // The audit trail: newest first, each with its date.
  await page.click('nav a:text-is("Audit")');
  await page.waitForSelector('td >> text=alert_acked');
  const seqs = (await page.locator('main table tbody tr td:first-child').allTextContents()).map(Number);
  assert.ok(seqs.length > 2 && seqs.every((x, i) => i === 0 || x < seqs[i - 1]), `newest first: ${seqs}`);
  const year = String(new Date().getFullYear());
  assert.ok((await page.locator('main table tbody tr td:nth-child(2)').allTextContents()).every((t) => t.includes(year)), 'each record has its date');

  // A schedule's times carry their zone.
  await api('POST', '/v1/schedules', {name: 'paris', cron: '0 9 * * *', tz: 'Europe/Paris', task: {command: 'true'}});
  await page.click('nav a:text-is("Schedules")');
  await page.waitForSelector('td >> text=paris');
  const next = await page.locator('tr:has-text("paris") span.when').first().textContent();
  assert.match(next, /(CET|CEST|GMT[+-]\d|UTC[+-]\d)/, `the zone is shown: ${next}`);

  // Charts: no label is cut, with a long queue name and costly figures.
  await api('POST', '/v1/tasks', {command: 'true', name: 'long', queue: 'a-queue-with-a-rather-long-name-indeed'});
  await page.click('nav a:text-is("Charts")');
  await until(page, () => [...document.querySelectorAll('svg.chart text')].some((t) => t.textContent.includes('a-queue-with')));
  const cut = await page.evaluate(() => [...document.querySelectorAll('svg.chart')].flatMap((svg) => {
    const [, , w, hh] = svg.getAttribute('viewBox').split(' ').map(Number);
    return [...svg.querySelectorAll('text')].filter((t) => {
      const b = t.getBBox();
      return b.x < -0.5 || b.y < -0.5 || b.x + b.width > w + 0.5 || b.y + b.height > hh + 0.5;
    }).map((t) => t.textContent);
  }));
  assert.deepEqual(cut, [], 'no chart label runs out of its chart');
  await page.screenshot({path: path.join(SHOTS, 'charts-labels.png'), fullPage: true});

  // A phone's width: no page is wider than the window.
  await page.setViewportSize({width: 390, height: 844});
  for (const [name, sel] of [['Tasks', 'table.tasks'], ['Queues', 'td'], ['Schedules', 'td'], ['Budgets', 'form'], ['Alerts', 'td'], ['Notifications', 'form'], ['Audit', 'td'], ['Nodes', 'td'], ['Charts', 'svg.chart']]) {
    await page.click(`nav a:text-is("${name}")`);
    await page.waitForSelector(`main ${sel}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${name} is ${wide}px wide in a 390px window`);
  }
  await page.goto(`${BASE}/ui/tasks/${id}`);
  await page.waitForSelector('h1 .state-succeeded');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= 390, 'a task page fits');
  await page.screenshot({path: path.join(SHOTS, 'phone.png'), fullPage: false});

  assert.deepEqual(errors, [], 'the pages logged no error');
  await browser.close();
}

const scene = process.env.MW_SCENE || 'walk';
await (scene === 'big' ? big() : scene === 'tabs' ? tabs() : walk());
console.log('ok');
