import { DaftkaError } from '../../../common/errors';
import { partitionForKey } from '../../../common/partitioner';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

describe('gateway records API', () => {
  let gw: Harness;
  beforeEach(async () => {
    gw = await startGateway({ topics: [topic('orders', { partitions: 4, maxRecordBytes: 64 })] });
  });
  afterEach(() => gw.close());

  test('produce then fetch returns keys, headers, binary values and timestamps exactly', async () => {
    const bin = Buffer.from([0, 255, 128, 10, 13]);
    const p = await gw.req('POST', '/v1/topics/orders/records', {
      body: {
        records: [
          { key: 'user-1', value: 'hello', headers: { 'content-type': 'text/plain' }, timestamp: 1700000000000 },
          { key: 'user-1', value_b64: bin.toString('base64'), headers: [{ name: 'h', value_b64: 'AAE=' }] },
        ],
      },
    });
    expect(p.status).toBe(200);
    const part = partitionForKey(Buffer.from('user-1'), 4);
    expect(p.json).toEqual({
      results: [
        { partition: part, offset: 0, status: 'written' },
        { partition: part, offset: 1, status: 'written' },
      ],
    });

    const f = await gw.req('GET', `/v1/topics/orders/partitions/${part}/records?offset=0`);
    expect(f.status).toBe(200);
    expect(f.json.next_offset).toBe(2);
    expect(f.json.high_watermark).toBe(2);
    expect(f.json.log_start_offset).toBe(0);
    const [a, b] = f.json.records;
    expect(a).toMatchObject({ offset: 0, timestamp: 1700000000000, key_b64: Buffer.from('user-1').toString('base64') });
    expect(Buffer.from(a.value_b64, 'base64').toString()).toBe('hello');
    expect(a.headers).toEqual([{ name: 'content-type', value_b64: Buffer.from('text/plain').toString('base64') }]);
    expect(Buffer.from(b.value_b64, 'base64')).toEqual(bin);
    expect(b.headers).toEqual([{ name: 'h', value_b64: 'AAE=' }]);
    expect(typeof b.timestamp).toBe('number');

    const u = await gw.req('GET', `/v1/topics/orders/partitions/${part}/records?offset=0&encoding=utf8`);
    expect(u.json.records[0]).toMatchObject({
      key: 'user-1',
      value: 'hello',
      headers: [{ name: 'content-type', value: 'text/plain' }],
    });
    // Not valid UTF-8: stays base64 even with encoding=utf8, so nothing is lost.
    expect(u.json.records[1].value).toBeUndefined();
    expect(Buffer.from(u.json.records[1].value_b64, 'base64')).toEqual(bin);
  });

  test('key_b64 is hashed as raw bytes; explicit partition wins over the key', async () => {
    const raw = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    const r = await gw.req('POST', '/v1/topics/orders/records', {
      body: {
        records: [
          { key_b64: raw.toString('base64'), value: 'x' },
          { key: 'k', value: 'y', partition: 3 },
        ],
      },
    });
    expect(r.status).toBe(200);
    expect(r.json.results[0].partition).toBe(partitionForKey(raw, 4));
    expect(r.json.results[1].partition).toBe(3);
  });

  test('records without key or partition all go to one partition per request, rotating across requests', async () => {
    const parts = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const r = await gw.req('POST', '/v1/topics/orders/records', {
        body: { records: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] },
      });
      const ps = new Set(r.json.results.map((x: { partition: number }) => x.partition));
      expect(ps.size).toBe(1);
      parts.add(r.json.results[0].partition);
    }
    expect(parts.size).toBe(4);
  });

  test('results come back in request order across partitions, with per-partition batches', async () => {
    const records = Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
    const r = await gw.req('POST', '/v1/topics/orders/records', { body: { records } });
    expect(r.status).toBe(200);
    records.forEach((rec, i) => expect(r.json.results[i].partition).toBe(partitionForKey(Buffer.from(rec.key), 4)));
    const producePartitions = gw.fake.calls.filter((c) => c.op === 'produce').map((c) => c.partition);
    expect(new Set(producePartitions).size).toBe(producePartitions.length);
    // Offsets are dense per partition in request order.
    const perPartition = new Map<number, number[]>();
    for (const x of r.json.results) perPartition.set(x.partition, [...(perPartition.get(x.partition) ?? []), x.offset]);
    for (const offs of perPartition.values()) expect(offs).toEqual(offs.map((_, i) => i));
  });

  test('Idempotency-Key: a retry answers duplicate with the same offsets; another payload is 422', async () => {
    const body = { records: [{ key: 'a', value: '1' }, { key: 'b', value: '2' }, { value: 'keyless' }] };
    const headers = { 'idempotency-key': 'req-1' };
    const first = await gw.req('POST', '/v1/topics/orders/records', { body, headers });
    const again = await gw.req('POST', '/v1/topics/orders/records', { body, headers });
    expect(again.status).toBe(200);
    expect(again.json.results.map((r: { offset: number }) => r.offset)).toEqual(
      first.json.results.map((r: { offset: number }) => r.offset),
    );
    expect(again.json.results.every((r: { status: string }) => r.status === 'duplicate')).toBe(true);
    const keys = gw.fake.calls.filter((c) => c.op === 'produce').map((c) => c.idempotencyKey);
    expect(keys.every((k) => /^req-1#p\d$/.test(k!))).toBe(true);

    const other = await gw.req('POST', '/v1/topics/orders/records', {
      body: { records: [{ key: 'a', value: 'changed' }] },
      headers,
    });
    expect(other.status).toBe(422);
    expect(other.json.code).toBe('IDEMPOTENCY_CONFLICT');
    // The client's key, not the per-partition form the replicas use.
    expect(other.json.detail).toContain('Idempotency-Key "req-1" was already used with a different payload');
    expect(other.json.detail).not.toContain('#p');
    expect(other.json.partition).toEqual(expect.any(Number));
  });

  test('producer fields pass through and must target one partition', async () => {
    const ok = await gw.req('POST', '/v1/topics/orders/records', {
      body: { records: [{ value: 'x', partition: 1 }], producer_id: 'p-1', producer_epoch: 0, producer_seq: 0 },
    });
    expect(ok.status).toBe(200);
    const two = await gw.req('POST', '/v1/topics/orders/records', {
      body: {
        records: [
          { value: 'x', partition: 1 },
          { value: 'y', partition: 2 },
        ],
        producer_id: 'p-1',
        producer_epoch: 0,
        producer_seq: 1,
      },
    });
    expect(two.status).toBe(400);
    expect(two.json).toMatchObject({ code: 'INVALID_REQUEST', pointer: '/producer_id' });
    const partial = await gw.req('POST', '/v1/topics/orders/records', {
      body: { records: [{ value: 'x' }], producer_id: 'p-1' },
    });
    expect(partial.status).toBe(400);
    expect(partial.json.pointer).toBe('/producer_epoch');
  });

  test('one failed partition: the first failure’s problem with partial_results; a retry with the key is safe', async () => {
    gw.fake.fail = (op, _t, p) => (op === 'produce' && p === 2 ? new DaftkaError('COMMIT_UNKNOWN', 'lost') : undefined);
    const body = {
      records: [
        { value: '1', partition: 1 },
        { value: '2', partition: 2 },
        { value: '3', partition: 1 },
      ],
    };
    const headers = { 'idempotency-key': 'multi-1' };
    const r = await gw.req('POST', '/v1/topics/orders/records', { body, headers });
    expect(r.status).toBe(504);
    expect(r.json.code).toBe('COMMIT_UNKNOWN');
    expect(r.json.retryable).toBe(true);
    expect(r.json.partial_results).toEqual([
      { partition: 1, records: 2, status: 'written', base_offset: 0 },
      { partition: 2, records: 1, status: 'unknown', code: 'COMMIT_UNKNOWN' },
    ]);
    gw.fake.fail = () => undefined;
    const retry = await gw.req('POST', '/v1/topics/orders/records', { body, headers });
    expect(retry.status).toBe(200);
    expect(retry.json.results).toEqual([
      { partition: 1, offset: 0, status: 'duplicate' },
      { partition: 2, offset: 0, status: 'written' },
      { partition: 1, offset: 1, status: 'duplicate' },
    ]);
  });

  test('long-poll fetch returns as soon as a record is committed', async () => {
    const started = Date.now();
    const pending = gw.req('GET', '/v1/topics/orders/partitions/2/records?offset=0&wait_ms=5000');
    await new Promise((r) => setTimeout(r, 50));
    await gw.req('POST', '/v1/topics/orders/records', { body: { records: [{ value: 'late', partition: 2 }] } });
    const f = await pending;
    expect(f.status).toBe(200);
    expect(f.json.records).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('fetch limits are lowered to the configured maxima and passed to the replica', async () => {
    await gw.close();
    gw = await startGateway({ topics: [topic('orders')], limits: { fetchMaxRecords: 7, fetchMaxBytes: 1000 } });
    const spy = jest.spyOn(gw.fake, 'fetch');
    await gw.req('GET', '/v1/topics/orders/partitions/0/records?offset=0&max_records=5000&max_bytes=5000000');
    expect(spy.mock.calls[0][0]).toMatchObject({ maxRecords: 7, maxBytes: 1000, waitMs: 0 });
  });

  test('X-Request-Id is echoed when sane, made otherwise, and reaches the replica', async () => {
    const r = await gw.req('POST', '/v1/topics/orders/records', {
      body: { records: [{ value: 'x' }] },
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(r.headers.get('x-request-id')).toBe('abc-123');
    expect(gw.fake.calls.at(-1)!.requestId).toBe('abc-123');
    const bad = await gw.req('GET', '/v1/topics', { headers: { 'x-request-id': 'has spaces' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const missing = await gw.req('GET', '/nope');
    expect(missing.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(missing.json.request_id).toBe(missing.headers.get('x-request-id'));
  });

  test('one JSON log line per request with request id, route, status and duration — and no payload', async () => {
    await gw.req('POST', '/v1/topics/orders/records', {
      body: { records: [{ key: 'secret-key', value: 'secret-value' }] },
      headers: { 'x-request-id': 'log-1' },
    });
    await new Promise((r) => setTimeout(r, 20));
    const lines = gw.logs().filter((l) => l.request_id === 'log-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      message: 'http_request',
      route: 'produce',
      status: 200,
      topic: 'orders',
      method: 'POST',
    });
    expect(typeof lines[0].duration_ms).toBe('number');
    expect(JSON.stringify(gw.logs())).not.toMatch(/secret/);
  });

  test('metrics count requests, records and bytes per topic', async () => {
    await gw.req('POST', '/v1/topics/orders/records', { body: { records: [{ value: 'abc' }, { value: 'de' }] } });
    await new Promise((r) => setTimeout(r, 20));
    const m = await gw.req('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/daftka_gateway_requests_total\{route="produce",code="200"[^}]*\} 1/);
    expect(m.text).toMatch(/daftka_gateway_produce_records_total\{topic="orders"[^}]*\} 2/);
    expect(m.text).toMatch(/daftka_gateway_produce_bytes_total\{topic="orders"[^}]*\} 5/);
    expect(m.text).toMatch(/daftka_gateway_request_duration_seconds_count\{[^}]*route="produce"\} 1/);
  });
});

describe('JSON values', () => {
  let gw: Harness;
  beforeAll(async () => {
    gw = await startGateway({ topics: [topic('events', { partitions: 1 })] });
  });
  afterAll(() => gw.close());

  test('any JSON value is taken as it is, stored as its JSON text, and fetched back as JSON with encoding=json', async () => {
    const values = [{ order: 42, items: ['a', 'b'] }, [1, 2, 3], 7.5, true, 'plain text', '{"already":"json"}'];
    const w = await gw.req('POST', '/v1/topics/events/records', {
      body: { records: values.map((value) => ({ value })) },
    });
    expect(w.status).toBe(200);
    const stored = gw.fake.logs.get('events/0')!.map((r) => Buffer.from(r.value).toString('utf8'));
    expect(stored).toEqual([
      '{"order":42,"items":["a","b"]}',
      '[1,2,3]',
      '7.5',
      'true',
      'plain text',
      '{"already":"json"}',
    ]);
    const json = await gw.req('GET', '/v1/topics/events/partitions/0/records?offset=0&encoding=json');
    expect(json.status).toBe(200);
    const out = json.json.records as Array<{ value?: unknown; value_b64?: string }>;
    expect(out.slice(0, 4).map((r) => r.value)).toEqual(values.slice(0, 4));
    // Text that is not JSON falls back to value_b64 for that record alone; JSON text comes back parsed.
    expect(out[4]).toMatchObject({ value_b64: Buffer.from('plain text').toString('base64') });
    expect(out[4].value).toBeUndefined();
    expect(out[5].value).toEqual({ already: 'json' });
    // utf8 and base64 are unchanged: the JSON text as text.
    const utf8 = await gw.req('GET', '/v1/topics/events/partitions/0/records?offset=0&max_records=1&encoding=utf8');
    expect(utf8.json.records[0].value).toBe('{"order":42,"items":["a","b"]}');
  });
});

describe('null values and delivery times', () => {
  let gw: Harness;
  beforeEach(async () => {
    gw = await startGateway({ topics: [topic('events', { partitions: 1 })] });
  });
  afterEach(() => gw.close());

  test('value null is a null value (tombstone): stored empty and flagged, fetched as value null in every encoding', async () => {
    const w = await gw.req('POST', '/v1/topics/events/records', {
      body: {
        records: [
          { key: 'k', value: null },
          { key: 'k', value_b64: '' },
          { key: 'k', value_b64: 'bnVsbA==' },
        ],
      },
    });
    expect(w.status).toBe(200);
    const stored = gw.fake.logs.get(`events/${w.json.results[0].partition}`)!;
    expect(stored.map((r) => [r.tombstone === true, r.value.byteLength])).toEqual([
      [true, 0],
      [false, 0],
      [false, 4],
    ]);
    const path = `/v1/topics/events/partitions/${w.json.results[0].partition}/records?offset=0`;
    for (const enc of ['base64', 'utf8', 'json']) {
      const r = await gw.req('GET', `${path}&encoding=${enc}`);
      const [tomb, empty, nullText] = r.json.records as Array<{ value?: unknown; value_b64?: string }>;
      expect(tomb).toHaveProperty('value', null);
      expect(tomb.value_b64).toBeUndefined();
      // An empty value and the JSON text null are values, never `value: null`.
      expect(empty.value ?? empty.value_b64).toBe('');
      expect(nullText.value).not.toBeNull();
    }
  });

  test('delivery times: relative ones count from the receive time, absolute ones are kept, both come back', async () => {
    const now = Date.now();
    const w = await gw.req('POST', '/v1/topics/events/records', {
      body: {
        records: [
          { value: 'a', deliver_after_ms: 60_000, ttl_ms: 120_000, partition: 0 },
          { value: 'b', deliver_at: 5_000, expires_at: 9_000, partition: 0 },
          { value: 'c', partition: 0 },
        ],
      },
    });
    expect(w.status).toBe(200);
    const [a, b, c] = gw.fake.logs.get('events/0')!;
    expect(a.deliverAtMs! - now).toBeGreaterThanOrEqual(60_000);
    expect(a.deliverAtMs! - now).toBeLessThan(70_000);
    expect(a.expiresAtMs! - a.deliverAtMs!).toBe(60_000);
    expect([b.deliverAtMs, b.expiresAtMs]).toEqual([5_000, 9_000]);
    expect([c.deliverAtMs, c.expiresAtMs]).toEqual([undefined, undefined]);
    const r = await gw.req('GET', '/v1/topics/events/partitions/0/records?offset=0');
    expect(
      r.json.records.map((x: { deliver_at?: number; expires_at?: number }) => [x.deliver_at, x.expires_at]),
    ).toEqual([
      [a.deliverAtMs, a.expiresAtMs],
      [5_000, 9_000],
      [undefined, undefined],
    ]);
  });
});
