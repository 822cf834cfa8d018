import net from 'node:net';
import { LocalStack, metricValue } from '../../helpers/local-stack';

/**
 * Issue 15, the bounds (items 5, 7, 9, 11), against the real stack: each bound refuses with a
 * precise status and code, and nothing is written or spins past it.
 *
 *   t  1 partition × RF 1, replicas with DAFTKA_MAX_FETCH_WAITERS=0 (every long-poll is over the
 *      bound); the gateway's upload grace lowered to 1 s
 */

jest.setTimeout(120_000);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let stack: LocalStack;

beforeAll(async () => {
  stack = await LocalStack.start({
    topics: [{ name: 't', partitions: 1, replicationFactor: 1 }],
    replicaEnv: { DAFTKA_MAX_FETCH_WAITERS: '0' },
    gatewayEnv: { DAFTKA_GATEWAY_UPLOAD_GRACE_MS: '1000' },
  });
});

afterAll(async () => {
  await stack?.stop();
});

async function replicaMetric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = stack.replicas('t', 0)[0];
  const text = await (await fetch(`http://127.0.0.1:${r.httpPort}/metrics`)).text();
  return metricValue(text, name, labels) ?? 0;
}

test('a leased long-poll over the waiters bound answers 503 OVERLOADED with Retry-After at once, and the replica keeps running', async () => {
  const before = await replicaMetric('daftka_lease_waiters_full_total');
  const t0 = Date.now();
  const r = await stack.http<Json>('POST', '/v1/groups/g/fetch', {
    body: { topics: ['t'], max_records: 1, wait_ms: 3000 },
  });
  const ms = Date.now() - t0;
  expect(r.status).toBe(503);
  expect(r.body.code).toBe('OVERLOADED');
  expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  // Refused at once: not a 3 s spin on microtasks (which froze timers and I/O until the deadline).
  expect(ms).toBeLessThan(1500);
  expect(await replicaMetric('daftka_lease_waiters_full_total')).toBe(before + 1);
  // Nothing leased, and the replica still answers.
  const p = await stack.http<Json>('GET', '/v1/groups/g/policy?topic=t');
  expect([200, 404]).toContain(p.status);
  if (p.status === 200) expect(p.body.partitions[0].leased).toBe(0);
  expect((await stack.http('POST', '/v1/topics/t/records', { body: { records: [{ value: 'x' }] } })).status).toBe(200);
});

test('a produce with more records than the limit is refused 413 on its count, before any record is validated', async () => {
  // 600 000 tiny records (about 7 MB, under the 8 MiB body limit), the last one invalid: a
  // 400 pointing at /records/599999 would mean every record was validated first.
  const n = 600_000;
  const body = `{"records":[${'{"value":1},'.repeat(n - 1)}{"nope":1}]}`;
  expect(body.length).toBeLessThan(8 * 1_048_576);
  const hwBefore = (await stack.http<Json>('GET', '/v1/topics/t')).body.partitions[0].high_watermark;
  const r = await stack.http<Json>('POST', '/v1/topics/t/records', {
    rawBody: body,
    headers: { 'content-type': 'application/json' },
  });
  expect(r.status).toBe(413);
  expect(r.body.code).toBe('PAYLOAD_TOO_LARGE');
  expect(r.body.pointer).toBe('/records');
  expect((await stack.http<Json>('GET', '/v1/topics/t')).body.partitions[0].high_watermark).toBe(hwBefore);
});

test('a record timestamped far in the future is refused 400 and nothing is written; within the skew it is taken', async () => {
  const hw = async () => (await stack.http<Json>('GET', '/v1/topics/t')).body.partitions[0].high_watermark as number;
  const before = await hw();
  const far = await stack.http<Json>('POST', '/v1/topics/t/records', {
    body: { records: [{ value: 'ok' }, { value: 'year 275760', timestamp: 8_640_000_000_000_000 }] },
  });
  expect(far.status).toBe(400);
  expect(far.body.code).toBe('INVALID_REQUEST');
  expect(far.body.detail).toMatch(/ahead of the leader's clock/);
  expect(await hw()).toBe(before);

  const soon = await stack.http<Json>('POST', '/v1/topics/t/records', {
    body: { records: [{ value: 'in ten minutes', timestamp: Date.now() + 600_000 }] },
  });
  expect(soon.status).toBe(200);
  expect(await hw()).toBe(before + 1);
});

test('stalled uploads are cut after the grace: four slow chunked POSTs do not keep every POST at 503', async () => {
  // Four chunked bodies reserve maxBodyBytes (8 MiB) each: the 32 MiB body budget is full.
  const socks: net.Socket[] = [];
  const closed: Array<Promise<unknown>> = [];
  for (let i = 0; i < 4; i++) {
    const s = net.connect(stack.gatewayPort, '127.0.0.1');
    s.on('error', () => {});
    s.resume();
    closed.push(new Promise((r) => s.on('close', r)));
    s.write(
      'POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n',
    );
    socks.push(s);
  }
  await new Promise((r) => setTimeout(r, 300));
  const produce = () => stack.http<Json>('POST', '/v1/topics/t/records', { body: { records: [{ value: 'v' }] } });
  const blocked = await produce();
  expect(blocked.status).toBe(503);
  expect(blocked.body.code).toBe('OVERLOADED');

  // Past the grace, each is slower than the minimum upload rate: cut, and its reservation released.
  await Promise.all(closed);
  // The budget is free at once: never again the body-budget 503. (A replica election on a loaded
  // machine may still answer a retryable 503 of its own for a moment: that one is retried.)
  let after = await produce();
  for (let i = 0; i < 20 && after.status === 503; i++) {
    expect(`${after.body.code}: ${after.body.detail}`).not.toMatch(/too many request bodies/);
    await new Promise((r) => setTimeout(r, 250));
    after = await produce();
  }
  expect([after.status, after.body.code]).toEqual([200, undefined]);
  for (const s of socks) s.destroy();
});
