import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { CHECK_IDS } from '../../../gateway/readiness';
import { LocalStack } from '../../helpers/local-stack';

/**
 * The web console (docs/console.md) in a real headless Chromium (Debian's `chromium`, driven by
 * puppeteer-core; nothing downloads a browser) against local mode with auth on and data: each page
 * loads and shows the values the API gives, a dead-letter replay started from the console
 * completes, and a principal with fewer rights sees only its own topic. Screenshots go to
 * test-artifacts/console/.
 */

jest.setTimeout(150_000);

const CHROMIUM = process.env.DAFTKA_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(__dirname, '..', '..', '..', 'test-artifacts', 'console');
const BOB_TOKEN = 'console-test-bob-0123456789abcdef';
const T0 = 1_700_000_000_000;

/** What the callbacks below use of the page's DOM (they run in the browser; no DOM lib here). */
interface El {
  innerText: string;
  hidden: boolean;
  value: string;
}
declare const document: { querySelector(sel: string): { textContent: string | null } | null };

type Json = Record<string, unknown> & { [k: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

let stack: LocalStack;
let browser: Browser;
let page: Page;

async function api(method: string, path: string, body?: unknown, token = stack.adminToken): Promise<Json> {
  const r = await stack.http<Json>(method, path, { body, headers: { authorization: `Bearer ${token}` } });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Open a console page and wait until it has rendered (the page marks itself ready). */
async function open(hash: string): Promise<void> {
  await page.goto(`${stack.url}/console/${hash}`);
  await page.waitForSelector(`#page[data-ready="true"]`, { timeout: 20_000 });
}

async function signIn(token: string): Promise<void> {
  await page.type('#token', token);
  await Promise.all([page.click('#token-save'), page.waitForSelector('#page[data-ready="false"]').catch(() => {})]);
  await page.waitForSelector('#page[data-ready="true"]', { timeout: 20_000 });
}

const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const text = (sel: string) => page.$eval(sel, (e) => (e as unknown as El).innerText);
const errorText = () =>
  page.$eval('#error', (e) => ((e as unknown as El).hidden ? '' : (e as unknown as El).innerText));

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} missing: run scripts/ensure-deps.sh (apt-get install chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  [stack, browser] = await Promise.all([
    LocalStack.start({
      topics: [
        { name: 'orders', partitions: 2, replicationFactor: 3 },
        { name: 'dl', partitions: 1, replicationFactor: 1 },
        { name: 'private', partitions: 1, replicationFactor: 1, access: { consumers: ['bob'] } },
      ],
      tokens: { [BOB_TOKEN]: 'bob' },
      gatewayEnv: { DAFTKA_GATEWAY_READINESS_INTERVAL_MS: '1000' },
    }),
    puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in CI: Chromium's sandbox needs user namespaces it may not have.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    }),
  ]);
  page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });

  // Data: JSON records with keys and times, one binary record, all in partition 0 of orders.
  const records = Array.from({ length: 10 }, (_, i) => ({
    key: `k${i}`,
    value: JSON.stringify({ order: i, item: i % 2 ? 'book' : 'pen' }),
    partition: 0,
    timestamp: T0 + i * 1000,
  }));
  await api('POST', '/v1/topics/orders/records', { records });
  await api('POST', '/v1/topics/orders/records', {
    records: [
      { key: 'bin', value_b64: Buffer.from([0, 1, 2, 0xff]).toString('base64'), partition: 0, timestamp: T0 + 10_000 },
    ],
  });
  await api('POST', '/v1/topics/orders/records', { records: [{ value: 'p1', partition: 1 }] });
  await api('POST', '/v1/groups/billing/offsets', { offsets: [{ topic: 'orders', partition: 0, offset: 4 }] });
  // Three dead letters: leased delivery, then reject.
  await api('POST', '/v1/topics/dl/records', { records: ['a', 'b', 'c'].map((v) => ({ value: `poison-${v}` })) });
  const leased = await api('POST', '/v1/groups/w/fetch', { topics: ['dl'], max_records: 10 });
  expect(leased.records).toHaveLength(3);
  await api('POST', '/v1/groups/w/acks', {
    acks: leased.records.map((r: Json) => ({ token: r.lease_token, action: 'reject', error: 'SchemaError: no id' })),
  });

  await page.goto(`${stack.url}/console/`);
  await signIn(stack.adminToken);
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

test('the topics page shows every partition with its leader, term, log start and high watermark', async () => {
  await open('#/topics');
  const want = await api('GET', '/v1/topics/orders');
  for (const p of want.partitions) {
    const row = `tr[data-topic="orders"][data-partition="${p.partition}"]`;
    expect(await text(`${row} [data-field="leader"]`)).toBe(p.leader);
    expect(await text(`${row} [data-field="term"]`)).toBe(String(p.term));
    expect(await text(`${row} [data-field="high_watermark"]`)).toBe(String(p.high_watermark));
    expect(await text(`${row} [data-field="log_start_offset"]`)).toBe(String(p.log_start_offset));
  }
  expect(await text('tr[data-topic="orders"][data-partition="0"] [data-field="high_watermark"]')).toBe('11');
  expect(await text('[data-testid="leaderless-count"]')).toBe('0');
  expect(await page.$$eval('table[data-testid^="partitions-"]', (ts) => ts.length)).toBe(3);
  await shot('topics');
});

test('the record browser reads by offset and by timestamp, pretty-prints JSON, shows binary as hex or base64 and filters by key', async () => {
  await open('#/records?topic=orders&partition=0&mode=offset&offset=0');
  await page.waitForSelector('[data-testid="records-table"]');
  expect(await page.$$eval('[data-testid="records-table"] tbody tr', (r) => r.length)).toBe(11);
  expect(await text('tr[data-offset="3"] [data-field="value"] pre')).toBe('{\n  "order": 3,\n  "item": "book"\n}');
  expect(await text('tr[data-offset="10"] [data-field="value"] pre')).toBe('00 01 02 ff');
  await shot('records');

  // By timestamp: the first record at or after T0 + 6.5 s is offset 7.
  await page.select('#rec-mode', 'timestamp');
  await page.$eval('#rec-timestamp', (e) => ((e as unknown as El).value = ''));
  await page.type('#rec-timestamp', String(T0 + 6500));
  await page.$eval('#rec-max', (e) => ((e as unknown as El).value = '2'));
  await page.select('#rec-binary', 'base64');
  await page.click('#rec-load');
  await page.waitForFunction(() =>
    document.querySelector('[data-testid="records-summary"]')?.textContent?.startsWith('offsets 7'),
  );
  expect(
    await page.$$eval('[data-testid="records-table"] tbody tr', (r) => r.map((x) => x.getAttribute('data-offset'))),
  ).toEqual(['7', '8']);

  // Key filter over a page, binary as base64.
  await page.select('#rec-mode', 'offset');
  await page.$eval('#rec-offset', (e) => ((e as unknown as El).value = '0'));
  await page.$eval('#rec-max', (e) => ((e as unknown as El).value = '50'));
  await page.type('#rec-key', 'bin');
  await page.click('#rec-load');
  await page.waitForFunction(() =>
    document.querySelector('[data-testid="records-summary"]')?.textContent?.includes('1 shown'),
  );
  expect(await text('tr[data-offset="10"] [data-field="value"] pre')).toBe('AAEC/w==');
  expect(await errorText()).toBe('');
});

test('the groups page lists the groups; a row shows its lag per partition', async () => {
  await open('#/groups');
  await page.waitForSelector('[data-testid="group-list"] tr[data-group="billing"][data-topic="orders"]');
  const listed = await page.$$eval('[data-testid="group-list"] tr[data-group]', (rows) =>
    rows.map((r) => `${r.getAttribute('data-group')}@${r.getAttribute('data-topic')}`),
  );
  expect(listed).toEqual(
    (await api('GET', '/v1/groups')).groups.map((g: { group: string; topic: string }) => `${g.group}@${g.topic}`),
  );
  await page.click('tr[data-group="billing"][data-topic="orders"] button.show-group');
  await page.waitForSelector('[data-testid="group-partitions-orders"]');
  await shot('groups-list');
  expect(await errorText()).toBe('');
});

test('the groups page shows lag per partition, and a reset is a dry run until confirmed', async () => {
  await open('#/groups?group=billing&topic=orders');
  await page.waitForSelector('[data-testid="group-partitions-orders"]');
  const want = await api('GET', '/v1/groups/billing?topic=orders');
  for (const p of want.topics[0].partitions)
    expect(await text(`tr[data-topic="orders"][data-partition="${p.partition}"] [data-field="lag"]`)).toBe(
      String(p.lag),
    );
  expect(await text('tr[data-topic="orders"][data-partition="0"] [data-field="lag"]')).toBe('7');

  await page.select('.reset-to', 'latest');
  await page.click('.reset-dry');
  await page.waitForSelector('.reset-preview');
  expect(await text('.reset-preview tr[data-partition="0"] [data-field="new_offset"]')).toBe('11');
  await shot('groups-reset-dry-run');
  // Nothing committed by the dry run.
  expect((await api('GET', '/v1/groups/billing?topic=orders')).topics[0].partitions[0].offset).toBe(4);

  await page.click('.reset-confirm');
  await page.waitForFunction(
    () => document.querySelector('tr[data-topic="orders"][data-partition="0"] [data-field="lag"]')?.textContent === '0',
  );
  expect((await api('GET', '/v1/groups/billing?topic=orders')).topics[0].partitions[0].offset).toBe(11);
});

test('dead letters: listed, replayed after a dry run and a confirmation, and the job completes', async () => {
  await open('#/deadletters?topic=dl');
  await page.waitForSelector('[data-testid="dl-table"]');
  expect(await page.$$eval('[data-testid="dl-table"] tbody tr', (r) => r.length)).toBe(3);
  expect(await text('[data-testid="dl-table"] tbody tr td:nth-child(5)')).toContain('SchemaError');

  await page.click('#replay-dry');
  await page.waitForSelector('[data-testid="replay-dry-result"]');
  expect(await text('[data-testid="replay-dry-result"]')).toContain('3 would be replayed');
  expect((await api('GET', '/v1/topics/dl/deadletters?state=active')).deadletters).toHaveLength(3);

  await page.click('#replay-confirm');
  await page.waitForSelector('[data-testid="job-state"][data-state="done"]', { timeout: 30_000 });
  expect(await text('[data-testid="job-progress"]')).toBe('3 written, 0 skipped of 3');
  await shot('deadletters-replay');
  expect((await api('GET', '/v1/topics/dl/deadletters?state=replayed')).deadletters).toHaveLength(3);
  // Written back to the origin partition: 3 originals + 3 replays.
  expect((await api('GET', '/v1/topics/dl')).partitions[0].high_watermark).toBe(6);
});

test('the readiness page shows the overall status, every check with value and reason, and the trend', async () => {
  await open('#/readiness');
  const want = await api('GET', '/v1/readiness');
  const status = await page.$eval('[data-testid="readiness-status"] .badge', (e) => e.getAttribute('data-status'));
  expect(['ready', 'warning', 'not_ready']).toContain(status);
  expect(await page.$$eval('tr[data-check]', (r) => r.map((x) => x.getAttribute('data-check')))).toEqual([
    ...CHECK_IDS,
  ]);
  expect(await text('tr[data-check="leaderless_partitions"] [data-field="value"]')).toBe('0 partitions');
  expect(want.checks.find((c: Json) => c.id === 'leaderless_partitions').status).toBe('ok');
  expect(await text('tr[data-check="nats"] [data-field="status"]')).toBe('ok');
  expect(await page.$$eval('[data-testid="readiness-trend"] .trend span', (s) => s.length)).toBeGreaterThan(0);
  await shot('readiness');
});

test('a principal with fewer rights sees only its own topic and not the readiness report', async () => {
  await page.click('#token-clear');
  await page.waitForSelector('#page[data-ready="true"]');
  expect(await errorText()).toContain('UNAUTHENTICATED');
  await signIn(BOB_TOKEN);
  await open('#/topics');
  expect(
    await page.$$eval('table[data-testid^="partitions-"]', (ts) => ts.map((t) => t.getAttribute('data-testid'))),
  ).toEqual(['partitions-private']);
  await open('#/readiness');
  expect(await errorText()).toContain('FORBIDDEN');
  await shot('readiness-forbidden');
});
