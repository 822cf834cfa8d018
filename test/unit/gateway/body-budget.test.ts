import type { PartitionClient } from '../../../protocol/methods';
import { request } from 'node:http';
import type { ProduceRequest, ProduceResult } from '../../../common/partition-api';
import { FakePartitions } from './fake-partition';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

/**
 * maxBodyBytesInFlight: request bodies held in memory are bounded across the process (found by
 * the end-to-end overload test: 100 clients × 6.5 MB bodies took the gateway to 1.1 GiB RSS).
 */

/** Produce calls wait until `release()`; everything else is the fake. */
class GatedPartitions extends FakePartitions implements PartitionClient {
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => undefined;
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open();
  }
  override async produce(req: ProduceRequest): Promise<ProduceResult> {
    await this.gate;
    return super.produce(req);
  }
}

const KiB = 1024;
const bodyOf = (valueBytes: number) => JSON.stringify({ records: [{ value: 'x'.repeat(valueBytes) }] });

function chunkedPost(url: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${url}/v1/topics/orders/records`);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.write(body.slice(0, 10)); // no Content-Length: chunked
    req.end(body.slice(10));
  });
}

const post = (h: Harness, raw: string) =>
  h.req('POST', '/v1/topics/orders/records', { raw, headers: { 'content-type': 'application/json' } });

async function until(cond: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function gaugeValue(h: Harness): Promise<number> {
  const text = await h.registry.metrics();
  const m = /^daftka_gateway_body_bytes_in_flight(?:\{[^}]*\})? (\S+)$/m.exec(text);
  return Number(m?.[1]);
}

describe('request bodies in flight are bounded (maxBodyBytesInFlight)', () => {
  const gated = new GatedPartitions();
  let h: Harness;
  beforeAll(async () => {
    h = await startGateway({
      topics: [topic('orders', { partitions: 1, maxRecordBytes: 1024 * KiB })],
      router: gated,
      limits: { maxBodyBytes: 64 * KiB, maxBodyBytesInFlight: 100 * KiB },
    });
  });
  afterAll(() => h.close());

  test('a body that does not fit next to the held ones is 503 OVERLOADED with Retry-After, unread', async () => {
    gated.hold();
    const a = post(h, bodyOf(60 * KiB)); // held at the "replica"
    await until(async () => (await gaugeValue(h)) > 60 * KiB);

    const b = await post(h, bodyOf(60 * KiB));
    expect(b.status).toBe(503);
    expect(b.json).toMatchObject({ code: 'OVERLOADED', retryable: true });
    expect(b.headers.get('retry-after')).toBe('1');
    // Unknown length (chunked) reserves maxBodyBytes: does not fit either.
    const c = await chunkedPost(h.url, bodyOf(1 * KiB));
    expect(c.status).toBe(503);
    // A small one still fits.
    const d = post(h, bodyOf(1 * KiB));

    gated.release();
    expect((await a).status).toBe(200);
    expect((await d).status).toBe(200);
    // Once the answers are out, the budget is free again.
    await until(async () => (await gaugeValue(h)) === 0);
    expect((await post(h, bodyOf(60 * KiB))).status).toBe(200);
    const text = await h.registry.metrics();
    expect(text).toMatch(/daftka_gateway_shed_requests_total\{reason="body_bytes",kind="produce"[^}]*\} 2/);
  });

  test('a declared body over maxBodyBytes is still 413, not 503', async () => {
    gated.hold();
    const a = post(h, bodyOf(60 * KiB));
    await until(async () => (await gaugeValue(h)) > 60 * KiB);
    const big = await post(h, bodyOf(70 * KiB));
    expect(big.status).toBe(413);
    gated.release();
    expect((await a).status).toBe(200);
  });
});

test('one body is always admitted when none is held, even one larger than the budget', async () => {
  const h = await startGateway({
    topics: [topic('orders', { partitions: 1, maxRecordBytes: 1024 * KiB })],
    limits: { maxBodyBytes: 64 * KiB, maxBodyBytesInFlight: 16 * KiB },
  });
  try {
    expect((await post(h, bodyOf(40 * KiB))).status).toBe(200);
    expect((await chunkedPost(h.url, bodyOf(1 * KiB))).status).toBe(200);
  } finally {
    await h.close();
  }
});

test('a refusal before the body is read waits for the body (drained, not kept): the client gets the answer, not EPIPE', async () => {
  const h = await startGateway({ topics: [topic('orders', { partitions: 1 })] });
  try {
    const chunk = 'x'.repeat(64 * KiB);
    const chunks = 16; // 1 MiB, written in pieces with pauses: still uploading when the 404 is known
    const u = new URL(`${h.url}/v1/topics/unknown/records`);
    let sentAll = 0;
    const answer = await new Promise<{ status: number; text: string; at: number }>((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': chunk.length * chunks },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text, at: performance.now() }));
        },
      );
      req.on('error', reject);
      let i = 0;
      const next = () => {
        if (i++ < chunks) {
          req.write(chunk);
          setTimeout(next, 10);
        } else {
          sentAll = performance.now();
          req.end();
        }
      };
      next();
    });
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'TOPIC_NOT_FOUND' });
    expect(answer.at).toBeGreaterThanOrEqual(sentAll);
  } finally {
    await h.close();
  }
});
