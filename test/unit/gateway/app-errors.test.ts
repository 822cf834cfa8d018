import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

const PRODUCE = '/v1/topics/orders/records';

describe('gateway: bad input gets a precise 4xx problem, never a 5xx', () => {
  let gw: Harness;
  beforeAll(async () => {
    gw = await startGateway({
      topics: [topic('orders', { partitions: 2, maxRecordBytes: 100 })],
      limits: { maxBodyBytes: 4096, maxRecordsPerRequest: 10 },
    });
  });
  afterAll(() => gw.close());

  async function expectProblem(
    r: Promise<{ status: number; json: Record<string, unknown>; headers: Headers }>,
    status: number,
    fields: Record<string, unknown>,
  ) {
    const res = await r;
    expect({ status: res.status, ...res.json }).toMatchObject({ status, ...fields });
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.json).toMatchObject({
      type: expect.stringMatching(/^https:\/\/daftka\.io\/problems\//),
      title: expect.any(String),
      detail: expect.any(String),
      retryable: expect.any(Boolean),
    });
    return res.json;
  }

  test.each([
    ['malformed JSON', '{"records": [', 'MALFORMED_JSON'],
    ['an empty body', '', 'MALFORMED_JSON'],
  ])('%s → 400 %s', async (_what, raw, code) => {
    await expectProblem(gw.req('POST', PRODUCE, { raw, headers: { 'content-type': 'application/json' } }), 400, {
      code,
    });
  });

  test('a body that is not UTF-8 → 400 MALFORMED_JSON', async () => {
    const raw = Buffer.concat([Buffer.from('{"records":[{"value":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]}')]);
    await expectProblem(gw.req('POST', PRODUCE, { raw, headers: { 'content-type': 'application/json' } }), 400, {
      code: 'MALFORMED_JSON',
    });
  });

  test('a non-JSON content type → 415', async () => {
    await expectProblem(
      gw.req('POST', PRODUCE, { raw: 'records=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415,
      {
        code: 'UNSUPPORTED_MEDIA_TYPE',
      },
    );
  });

  test('a gzip-encoded JSON body is accepted', async () => {
    const raw = gzipSync(Buffer.from(JSON.stringify({ records: [{ value: 'zipped' }] })));
    const r = await gw.req('POST', PRODUCE, {
      raw,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    expect(r.status).toBe(200);
  });

  test.each([
    [{}, '/records', /is required/],
    [{ records: 'x' }, '/records', /must be array/],
    [{ records: [] }, '/records', /fewer than 1/],
    [{ records: [{ key: 'k' }] }, '/records/0', /exactly one of value, value_b64/],
    [{ records: [{ value: 'a', value_b64: 'YQ==' }] }, '/records/0', /exactly one of value, value_b64/],
    [{ records: [{ value: 'a', key: 'k', key_b64: 'aw==' }] }, '/records/0', /at most one of key, key_b64/],
    [
      { records: [{ value: 'a', deliver_at: 1, deliver_after_ms: 1 }] },
      '/records/0',
      /at most one of deliver_after_ms/,
    ],
    [{ records: [{ value: 'a', ttl_ms: 1, expires_at: 1 }] }, '/records/0', /at most one of ttl_ms, expires_at/],
    [{ records: [{ value: 'a', ttl_ms: 0 }] }, '/records/0/ttl_ms', /must be >= 1/],
    [{ records: [{ value: 'a', deliver_after_ms: 366 * 86_400_000 }] }, '/records/0/deliver_after_ms', /must be <=/],
    [{ records: [{ value: 'a', deliver_at: 10, expires_at: 10 }] }, '/records/0/expires_at', /never be delivered/],
    [{ records: [{ value: 'a', deliver_after_ms: 5000, ttl_ms: 4000 }] }, '/records/0/ttl_ms', /never be delivered/],
    [{ records: [{ value: 'a', extra: true }] }, '/records/0/extra', /not an allowed field/],
    [{ records: [{ value: 'a', headers: { h: 1 } }] }, '/records/0/headers', /object of string values or a list/],
    [
      { records: [{ value: 'a', headers: [{ name: 'h' }] }] },
      '/records/0/headers/0',
      /exactly one of value, value_b64/,
    ],
    [{ records: [{ value: 'a', partition: -1 }] }, '/records/0/partition', /must be >= 0/],
    [{ records: [{ value: 'a', partition: 1.5 }] }, '/records/0/partition', /must be integer/],
    [{ records: [{ value: 'a', timestamp: 'now' }] }, '/records/0/timestamp', /must be integer/],
    [{ records: [{ value: 'a' }], producer_epoch: 1 }, '/producer_id', /is required with producer_epoch/],
    [{ records: [{ value_b64: 'not base64!' }] }, '/records/0/value_b64', /not valid base64/],
    [{ records: [{ value: 'a', key_b64: 'YQ=' }] }, '/records/0/key_b64', /not valid base64/],
    [
      { records: [{ value: 'a', headers: [{ name: 'h', value_b64: '***' }] }] },
      '/records/0/headers/0/value_b64',
      /not valid base64/,
    ],
    [{ records: [{ value: 'lone \ud800 surrogate' }] }, '/records/0/value', /surrogate/],
  ])('invalid produce body %j → 400 INVALID_REQUEST at %s', async (body, pointer, detail) => {
    const p = await expectProblem(gw.req('POST', PRODUCE, { body }), 400, { code: 'INVALID_REQUEST', pointer });
    expect(p.detail).toMatch(detail);
  });

  test('unknown topic → 404, also for names no topic can have', async () => {
    await expectProblem(gw.req('POST', '/v1/topics/nope/records', { body: { records: [{ value: 'a' }] } }), 404, {
      code: 'TOPIC_NOT_FOUND',
    });
    await expectProblem(gw.req('GET', '/v1/topics/Not_A%20Topic/partitions/0/records?offset=0'), 404, {
      code: 'TOPIC_NOT_FOUND',
    });
  });

  test('unknown partition → 404 (path or body), non-integer partition → 400', async () => {
    await expectProblem(gw.req('GET', '/v1/topics/orders/partitions/2/records?offset=0'), 404, {
      code: 'PARTITION_NOT_FOUND',
    });
    await expectProblem(gw.req('POST', PRODUCE, { body: { records: [{ value: 'a', partition: 5 }] } }), 404, {
      code: 'PARTITION_NOT_FOUND',
      pointer: '/records/0/partition',
    });
    await expectProblem(gw.req('GET', '/v1/topics/orders/partitions/x/records?offset=0'), 400, {
      code: 'INVALID_REQUEST',
      parameter: 'partition',
    });
    await expectProblem(gw.req('GET', '/v1/topics/orders/partitions/-1/records?offset=0'), 400, {
      parameter: 'partition',
    });
  });

  test.each([
    ['', 'offset', /is required/],
    ['?offset=-1', 'offset', />= 0/],
    ['?offset=99999999999999999999', 'offset', /<= 9007199254740991/],
    ['?offset=abc', 'offset', /must be integer/],
    ['?offset=1&offset=2', 'offset', /must be integer/],
    ['?offset=0&wait_ms=30001', 'wait_ms', /<= 30000/],
    ['?offset=0&max_records=0', 'max_records', />= 1/],
    ['?offset=0&encoding=hex', 'encoding', /base64, utf8/],
    ['?offset=0&bogus=1', 'bogus', /not an allowed field/],
  ])('fetch query %s → 400 naming parameter %s', async (qs, parameter, detail) => {
    const p = await expectProblem(gw.req('GET', `/v1/topics/orders/partitions/0/records${qs}`), 400, {
      code: 'INVALID_REQUEST',
      parameter,
    });
    expect(p.detail).toMatch(detail);
  });

  test('an offset past the high watermark → 416 OFFSET_OUT_OF_RANGE from the replica', async () => {
    await expectProblem(gw.req('GET', '/v1/topics/orders/partitions/1/records?offset=1000'), 416, {
      code: 'OFFSET_OUT_OF_RANGE',
    });
  });

  test('a record over maxRecordBytes → 413 RECORD_TOO_LARGE with the limit and the record', async () => {
    await expectProblem(
      gw.req('POST', PRODUCE, { body: { records: [{ value: 'a' }, { value: 'x'.repeat(101) }] } }),
      413,
      {
        code: 'RECORD_TOO_LARGE',
        limit: 100,
        pointer: '/records/1',
      },
    );
    // Headers count towards the size.
    await expectProblem(
      gw.req('POST', PRODUCE, { body: { records: [{ value: 'x'.repeat(90), headers: { h: 'y'.repeat(10) } }] } }),
      413,
      {
        code: 'RECORD_TOO_LARGE',
      },
    );
  });

  test('too many records → 413 PAYLOAD_TOO_LARGE with the limit', async () => {
    const records = Array.from({ length: 11 }, () => ({ value: 'a' }));
    await expectProblem(gw.req('POST', PRODUCE, { body: { records } }), 413, { code: 'PAYLOAD_TOO_LARGE', limit: 10 });
  });

  test('a body over maxBodyBytes → 413 PAYLOAD_TOO_LARGE with the limit', async () => {
    await expectProblem(gw.req('POST', PRODUCE, { body: { records: [{ value: 'x'.repeat(5000) }] } }), 413, {
      code: 'PAYLOAD_TOO_LARGE',
      limit: 4096,
    });
  });

  test('a bad Idempotency-Key → 400 naming the header', async () => {
    await expectProblem(
      gw.req('POST', PRODUCE, { body: { records: [{ value: 'a' }] }, headers: { 'idempotency-key': 'x'.repeat(129) } }),
      400,
      {
        parameter: 'Idempotency-Key',
      },
    );
  });

  test('unknown routes → 404 NOT_FOUND; broken percent-encoding → 400', async () => {
    await expectProblem(gw.req('GET', '/v2/whatever'), 404, { code: 'NOT_FOUND' });
    await expectProblem(gw.req('DELETE', '/v1/topics'), 404, { code: 'NOT_FOUND' });
    const r = await gw.req('GET', '/v1/topics/%E0%A4%A/partitions/0/records?offset=0');
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
  });

  test('group names and group bodies are validated', async () => {
    await expectProblem(gw.req('GET', '/v1/groups/bad%20name/offsets?topic=orders'), 400, { parameter: 'group' });
    await expectProblem(gw.req('GET', '/v1/groups/g/offsets'), 400, { parameter: 'topic' });
    await expectProblem(
      gw.req('POST', '/v1/groups/g/offsets', { body: { offsets: [{ topic: 'orders', partition: 0 }] } }),
      400,
      {
        pointer: '/offsets/0/offset',
      },
    );
    await expectProblem(
      gw.req('POST', '/v1/groups/g/offsets:reset', { body: { topic: 'orders', to: 'offset' } }),
      400,
      { pointer: '/offset' },
    );
    await expectProblem(
      gw.req('POST', '/v1/groups/g/offsets:reset', { body: { topic: 'orders', to: 'yesterday' } }),
      400,
      { pointer: '/to' },
    );
  });

  test('random bodies and query strings never get a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.string(), async (body, qs) => {
        const a = await gw.req('POST', PRODUCE, {
          raw: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
        });
        expect(a.status).toBeLessThan(500);
        const b = await gw.req('GET', `/v1/topics/orders/partitions/0/records?${encodeURI(qs)}`);
        expect(b.status).toBeLessThan(500);
      }),
      { numRuns: Number(process.env.DAFTKA_FUZZ_RUNS ?? 150) },
    );
  }, 60_000);

  test('near-valid produce bodies (known fields, arbitrary values) never get a 5xx', async () => {
    const field = fc.constantFrom('key', 'key_b64', 'value', 'value_b64', 'headers', 'partition', 'timestamp');
    const value = fc.oneof(
      fc.jsonValue(),
      fc.base64String(),
      fc.string(),
      fc.integer(),
      fc.array(fc.record({ name: fc.string(), value_b64: fc.string() })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.dictionary(field, value), { maxLength: 5 }), async (records) => {
        const r = await gw.req('POST', PRODUCE, { body: { records } });
        expect(r.status).toBeLessThan(500);
        if (r.status !== 200) expect(r.json.code).toEqual(expect.any(String));
      }),
      { numRuns: Number(process.env.DAFTKA_FUZZ_RUNS ?? 150) },
    );
  }, 60_000);
});
