import { deflateSync, gzipSync, brotliCompressSync } from 'node:zlib';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

/**
 * Produce and fetch are served by the fast lane ahead of Express (gateway/fast-lane.ts) from
 * the same compiled route: the two doors must answer alike, and what the lane does not take
 * (other spellings of the path, bad escapes, HEAD) must still be answered by Express.
 */
describe('gateway fast lane', () => {
  let gw: Harness;
  beforeAll(async () => {
    gw = await startGateway({
      topics: [topic('orders', { partitions: 2 })],
      limits: { maxBodyBytes: 4096 },
    });
  });
  afterAll(() => gw.close());

  test('a produce by the lane and one by Express (trailing slash) write alike and log alike', async () => {
    const a = await gw.req('POST', '/v1/topics/orders/records', { body: { records: [{ value: 'a', partition: 1 }] } });
    const b = await gw.req('POST', '/v1/topics/orders/records/', { body: { records: [{ value: 'b', partition: 1 }] } });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.json.results[0]).toEqual({ partition: 1, offset: 0, status: 'written' });
    expect(b.json.results[0]).toEqual({ partition: 1, offset: 1, status: 'written' });
    expect(a.headers.get('content-type')).toBe(b.headers.get('content-type'));
    expect(a.headers.get('x-request-id')).toMatch(/./);
    const lines = gw.logs().filter((l) => l.message === 'http_request' && l.route === 'produce');
    expect(lines.slice(-2).map((l) => [l.status, l.topic])).toEqual([
      [200, 'orders'],
      [200, 'orders'],
    ]);
  });

  test('fetch by the lane: query validated and coerced as by Express; unknown parameters refused', async () => {
    const r = await gw.req('GET', '/v1/topics/orders/partitions/1/records?offset=0&max_records=1&encoding=utf8');
    expect(r.status).toBe(200);
    expect(r.json.records).toHaveLength(1);
    expect(r.json.records[0].value).toBe('a');
    const bad = await gw.req('GET', '/v1/topics/orders/partitions/1/records?offset=zero');
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('INVALID_REQUEST');
    const unknown = await gw.req('GET', '/v1/topics/orders/partitions/1/records?offset=0&color=red');
    expect(unknown.status).toBe(400);
  });

  test('percent-encoded path parameters are decoded; a bad escape is answered 400 by Express', async () => {
    const enc = await gw.req('GET', '/v1/topics/%6Frders/partitions/1/records?offset=0&max_records=1');
    expect(enc.status).toBe(200);
    const bad = await gw.req('GET', '/v1/topics/%E0%A4%A/partitions/1/records?offset=0');
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('INVALID_REQUEST');
  });

  test.each([
    ['gzip', gzipSync],
    ['deflate', deflateSync],
    ['br', brotliCompressSync],
  ])('a %s body is inflated and written', async (encoding, compress) => {
    const raw = compress(Buffer.from(JSON.stringify({ records: [{ value: `z-${encoding}` }] })));
    const r = await gw.req('POST', '/v1/topics/orders/records', {
      raw,
      headers: { 'content-type': 'application/json', 'content-encoding': encoding },
    });
    expect(r.status).toBe(200);
  });

  test('a body that does not inflate → 400; an unknown encoding → 415; inflating past the limit → 413', async () => {
    const notGzip = await gw.req('POST', '/v1/topics/orders/records', {
      raw: Buffer.from('{"records":[{"value":"x"}]}'),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    expect([notGzip.status, notGzip.json.code]).toEqual([400, 'INVALID_REQUEST']);
    const zstd = await gw.req('POST', '/v1/topics/orders/records', {
      raw: Buffer.from('{}'),
      headers: { 'content-type': 'application/json', 'content-encoding': 'zstd' },
    });
    expect([zstd.status, zstd.json.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    // 20 KB of JSON in a few dozen gzip bytes: refused as it inflates past maxBodyBytes (4096).
    const bomb = gzipSync(Buffer.from(JSON.stringify({ records: [{ value: 'x'.repeat(20_000) }] })));
    const big = await gw.req('POST', '/v1/topics/orders/records', {
      raw: bomb,
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    expect([big.status, big.json.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    expect(gw.fake.logs.get('orders/0')?.some((r) => Buffer.from(r.value).toString().startsWith('xxx')) ?? false).toBe(
      false,
    );
  });
});
