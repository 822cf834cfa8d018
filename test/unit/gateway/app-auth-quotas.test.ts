import { QuotaManager } from '../../../gateway/quotas';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

const ALICE = 'alice-token-0123456789';
const BOB = 'bob-token-0123456789ab';
const MALLORY = 'mallory-token-01234567';

describe('gateway auth: 401, 403, and 404 for topics a tenant may not see', () => {
  let gw: Harness;
  beforeAll(async () => {
    gw = await startGateway({
      tokens: { [ALICE]: 'alice', [BOB]: 'bob', [MALLORY]: 'mallory' },
      topics: [
        topic('alice-orders', { access: { producers: ['alice'], consumers: ['alice', 'bob'], admins: [] } }),
        topic('bob-events', { access: { producers: ['bob'], consumers: ['bob'], admins: [] } }),
        topic('public', { access: { producers: [], consumers: ['*'], admins: [] } }),
      ],
    });
  });
  afterAll(() => gw.close());

  test('no token or a bad token → 401 with WWW-Authenticate', async () => {
    for (const headers of [
      {},
      { authorization: 'Bearer wrong-token-000000000' },
      { authorization: `Basic ${ALICE}` },
    ] as Array<Record<string, string>>) {
      const r = await gw.req('GET', '/v1/topics', { headers });
      expect(r.status).toBe(401);
      expect(r.json.code).toBe('UNAUTHENTICATED');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
  });

  test('health, readiness, metrics and the OpenAPI document need no token', async () => {
    for (const p of ['/healthz', '/readyz', '/metrics', '/v1/openapi.json'])
      expect((await gw.req('GET', p)).status).toBe(200);
  });

  test('GET /v1/topics lists only the topics the principal holds a right on', async () => {
    const a = await gw.req('GET', '/v1/topics', { token: ALICE });
    expect(a.json.topics.map((t: { name: string }) => t.name)).toEqual(['alice-orders', 'public']);
    const m = await gw.req('GET', '/v1/topics', { token: MALLORY });
    expect(m.json.topics.map((t: { name: string }) => t.name)).toEqual(['public']);
    const l = await gw.req('GET', '/v1/limits', { token: MALLORY });
    expect(l.json.topics.map((t: { name: string }) => t.name)).toEqual(['public']);
  });

  test('a visible topic without the right → 403', async () => {
    const r = await gw.req('POST', '/v1/topics/alice-orders/records', {
      token: BOB,
      body: { records: [{ value: 'x' }] },
    });
    expect(r.status).toBe(403);
    expect(r.json.code).toBe('FORBIDDEN');
    const p = await gw.req('POST', '/v1/topics/public/records', { token: ALICE, body: { records: [{ value: 'x' }] } });
    expect(p.status).toBe(403);
  });

  test('an invisible topic answers exactly like a missing one (404), on every route', async () => {
    const routes: Array<[string, string, unknown?]> = [
      ['POST', '/v1/topics/bob-events/records', { records: [{ value: 'x' }] }],
      ['GET', '/v1/topics/bob-events/partitions/0/records?offset=0'],
      ['GET', '/v1/topics/bob-events'],
      ['GET', '/v1/groups/g/offsets?topic=bob-events'],
      ['POST', '/v1/groups/g/offsets', { offsets: [{ topic: 'bob-events', partition: 0, offset: 0 }] }],
      ['POST', '/v1/groups/g/offsets:reset', { topic: 'bob-events', to: 'earliest' }],
      ['GET', '/v1/groups/g?topic=bob-events'],
    ];
    for (const [method, path, body] of routes) {
      const hidden = await gw.req(method, path, { token: ALICE, body });
      const missing = await gw.req(method, path.replace('bob-events', 'no-such-topic'), {
        token: ALICE,
        body: body && JSON.parse(JSON.stringify(body).replace('bob-events', 'no-such-topic')),
      });
      expect([path, hidden.status, hidden.json.code]).toEqual([path, 404, 'TOPIC_NOT_FOUND']);
      expect(hidden.json.detail.replace('bob-events', 'X')).toBe(missing.json.detail.replace('no-such-topic', 'X'));
    }
    // No metric or log line names a topic the caller could not see.
    const metrics = await gw.req('GET', '/metrics');
    expect(metrics.text).not.toMatch(/topic="bob-events"/);
  });

  test('allowed principals produce and consume', async () => {
    const p = await gw.req('POST', '/v1/topics/alice-orders/records', {
      token: ALICE,
      body: { records: [{ value: 'x', partition: 0 }] },
    });
    expect(p.status).toBe(200);
    const f = await gw.req('GET', '/v1/topics/alice-orders/partitions/0/records?offset=0', { token: BOB });
    expect(f.status).toBe(200);
    expect(f.json.records).toHaveLength(1);
    const t = await gw.req('GET', '/v1/topics/alice-orders', { token: BOB });
    expect(t.json.rights).toEqual(['consume']);
  });
});

describe('gateway quotas', () => {
  test('produce over the byte rate → 429 QUOTA_EXCEEDED with Retry-After, counted per topic and reason', async () => {
    let now = 0;
    const gw = await startGateway({
      topics: [topic('metered', { quotas: { produceBytesPerSecond: 100 } })],
      quotas: new QuotaManager({ nowMs: () => now }),
    });
    try {
      const ok = await gw.req('POST', '/v1/topics/metered/records', { body: { records: [{ value: 'x'.repeat(80) }] } });
      expect(ok.status).toBe(200);
      const r = await gw.req('POST', '/v1/topics/metered/records', { body: { records: [{ value: 'x'.repeat(50) }] } });
      expect(r.status).toBe(429);
      expect(r.json).toMatchObject({
        code: 'QUOTA_EXCEEDED',
        retryable: true,
        reason: 'produce_bytes',
        retry_after_ms: 300,
      });
      expect(r.headers.get('retry-after')).toBe('1');
      // Nothing of the refused request was written.
      expect(gw.fake.calls.filter((c) => c.op === 'produce')).toHaveLength(1);
      now = 300;
      expect(
        (await gw.req('POST', '/v1/topics/metered/records', { body: { records: [{ value: 'x'.repeat(50) }] } })).status,
      ).toBe(200);
      await new Promise((res) => setTimeout(res, 20));
      const m = await gw.req('GET', '/metrics');
      expect(m.text).toMatch(
        /daftka_gateway_throttled_requests_total\{topic="metered",reason="produce_bytes"[^}]*\} 1/,
      );
    } finally {
      await gw.close();
    }
  });

  test('records/s and fetch bytes/s quotas → 429 with the reason', async () => {
    const now = 0;
    const gw = await startGateway({
      topics: [topic('metered', { quotas: { recordsPerSecond: 2, fetchBytesPerSecond: 10 } })],
      quotas: new QuotaManager({ nowMs: () => now }),
    });
    try {
      const r = await gw.req('POST', '/v1/topics/metered/records', {
        body: {
          records: [
            { value: 'a', partition: 0 },
            { value: 'b', partition: 0 },
            { value: 'c', partition: 0 },
          ],
        },
      });
      expect(r.status).toBe(200); // a request larger than the burst is admitted once, into debt
      const again = await gw.req('POST', '/v1/topics/metered/records', { body: { records: [{ value: 'd' }] } });
      expect(again.json).toMatchObject({ code: 'QUOTA_EXCEEDED', reason: 'produce_records' });
      const big = await gw.req('POST', '/v1/topics/metered/records', { body: { records: [] } });
      expect(big.status).toBe(400);
      gw.fake.logs.set('metered/1', [{ key: null, value: Buffer.alloc(50), headers: [], timestampMs: 0, offset: 0 }]);
      expect((await gw.req('GET', '/v1/topics/metered/partitions/1/records?offset=0')).status).toBe(200);
      const f = await gw.req('GET', '/v1/topics/metered/partitions/1/records?offset=0');
      expect(f.status).toBe(429);
      expect(f.json.reason).toBe('fetch_bytes');
    } finally {
      await gw.close();
    }
  });
});
