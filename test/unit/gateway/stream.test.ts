import { request } from 'node:http';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

/** POST an NDJSON body (written in `chunks`, as given) and collect the answer's lines. */
function stream(
  url: string,
  chunks: string[],
  headers: Record<string, string> = { 'content-type': 'application/x-ndjson' },
): Promise<{ status: number; lines: Array<Record<string, unknown>>; contentType: string }> {
  return new Promise((resolve, reject) => {
    const r = request(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type']),
          lines: text
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as Record<string, unknown>),
        }),
      );
    });
    r.on('error', reject);
    for (const c of chunks) r.write(c);
    r.end();
  });
}

describe('streaming produce (NDJSON in, one result line per record out)', () => {
  let gw: Harness;
  const url = () => `${gw.url}/v1/topics/orders/records:stream`;
  beforeAll(async () => {
    gw = await startGateway({
      topics: [topic('orders', { partitions: 2, maxRecordBytes: 64 })],
      limits: { maxBodyBytes: 256 },
    });
  });
  afterAll(() => gw.close());

  test('each line is written, answered in line order; a bad line in the middle fails alone', async () => {
    const body = [
      '{"value":"a","partition":0}',
      '{"value":"b","partition":0}',
      '{"value": not json',
      '',
      '{"value":"c","partition":0}',
      '{"value":"d","partition":7}',
      '{"key":"k","value":"e"}',
    ].join('\n');
    // Split mid-line to be sure lines are put together across chunks.
    const r = await stream(url(), [body.slice(0, 10), body.slice(10, 50), body.slice(50)]);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^application\/x-ndjson/);
    expect(r.lines.map((l) => l.line)).toEqual([1, 2, 3, 5, 6, 7]);
    expect(r.lines[0]).toEqual({ line: 1, partition: 0, offset: 0, status: 'written' });
    expect(r.lines[1]).toEqual({ line: 2, partition: 0, offset: 1, status: 'written' });
    expect(r.lines[2]).toMatchObject({ line: 3, error: { status: 400, code: 'MALFORMED_JSON' } });
    expect(r.lines[3]).toEqual({ line: 5, partition: 0, offset: 2, status: 'written' });
    expect(r.lines[4]).toMatchObject({ line: 6, error: { status: 404, code: 'PARTITION_NOT_FOUND' } });
    expect(r.lines[5]).toMatchObject({ line: 7, status: 'written' });
    const p0 = gw.fake.logs.get('orders/0')!.map((x) => Buffer.from(x.value).toString());
    expect(p0.slice(0, 3)).toEqual(['a', 'b', 'c']);
  });

  test('a line invalid for the record schema, or over the record size, or over the line bound fails alone', async () => {
    const r = await stream(url(), [
      `{"value":"x","extra":1}\n{"value":"${'y'.repeat(100)}"}\n{"value":"${'z'.repeat(400)}"}\n{"value":"ok","partition":1}\n`,
    ]);
    expect(r.lines.map((l) => (l.error as { code?: string } | undefined)?.code ?? l.status)).toEqual([
      'INVALID_REQUEST',
      'RECORD_TOO_LARGE',
      'PAYLOAD_TOO_LARGE',
      'written',
    ]);
  });

  test('refused before a line is read: wrong content type 415, unknown topic 404, Idempotency-Key 400', async () => {
    const wrongType = await gw.req('POST', '/v1/topics/orders/records:stream', { raw: '{"value":"a"}\n' });
    expect([wrongType.status, wrongType.json.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    const nope = await gw.req('POST', '/v1/topics/nope/records:stream', {
      raw: '{"value":"a"}\n',
      headers: { 'content-type': 'application/x-ndjson' },
    });
    expect([nope.status, nope.json.code]).toEqual([404, 'TOPIC_NOT_FOUND']);
    const keyed = await gw.req('POST', '/v1/topics/orders/records:stream', {
      raw: '{"value":"a"}\n',
      headers: { 'content-type': 'application/x-ndjson', 'idempotency-key': 'k1' },
    });
    expect(keyed.status).toBe(400);
  });

  test('a client that stops half-way: what it sent whole may be written, and the gateway serves on', async () => {
    const before = gw.fake.logs.get('orders/1')?.length ?? 0;
    await new Promise<void>((resolve) => {
      const r = request(url(), { method: 'POST', headers: { 'content-type': 'application/x-ndjson' } });
      r.on('error', () => resolve());
      r.on('close', () => resolve());
      r.write('{"value":"h1","partition":1}\n{"value":"h2","partition":1}\n{"value":"cut');
      setTimeout(() => r.destroy(), 100);
    });
    const after = await stream(url(), ['{"value":"later","partition":1}\n']);
    expect(after.lines).toEqual([{ line: 1, partition: 1, offset: expect.any(Number), status: 'written' }]);
    const p1 = gw.fake.logs
      .get('orders/1')!
      .slice(before)
      .map((x) => Buffer.from(x.value).toString());
    expect(p1).not.toContain('cut');
    expect(p1[p1.length - 1]).toBe('later');
    expect(p1.filter((v) => v === 'h1' || v === 'h2')).toEqual(['h1', 'h2']);
  });
});
