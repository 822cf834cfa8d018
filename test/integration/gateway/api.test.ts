import { Agent, request } from 'node:http';
import { partitionForKey } from '../../../common/partitioner';
import { LocalStack, metricValue } from '../../helpers/local-stack';
import { sleep, type FetchAnswer, type ProduceAnswer, type Problem, type RecordOut } from './client';

/**
 * Issue 6 end to end on the real stack (nats-server + replica processes + the gateway, as
 * `npm run local` runs them): the HTTP API round trip, Kafka partitioning, long-poll, consumer
 * group offsets, bad input, quotas and overload. One stack for the file:
 *   t  2 partitions × RF 3 — the main topic
 *   q  1 partition × RF 1, recordsPerSecond 5, maxRecordBytes 1024 — quota and size limits
 * The gateway runs with 16 produce calls in flight per replica endpoint and 8 MiB of request
 * bodies in memory, so both overload bounds are reachable.
 */

jest.setTimeout(60_000);

const INFLIGHT = 16;
const BODY_BUDGET = 8 * 2 ** 20;
let stack: LocalStack;

beforeAll(async () => {
  stack = await LocalStack.start({
    topics: [
      { name: 't', partitions: 2, replicationFactor: 3 },
      { name: 'q', partitions: 1, replicationFactor: 1, maxRecordBytes: 1024, quotas: { recordsPerSecond: 5 } },
    ],
    gatewayEnv: {
      DAFTKA_GATEWAY_MAX_INFLIGHT_PER_ENDPOINT: String(INFLIGHT),
      // Produces to one partition past the in-flight calls wait to be coalesced; bounded too.
      DAFTKA_GATEWAY_PRODUCE_MAX_WAITING_PER_PARTITION: String(INFLIGHT),
      DAFTKA_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT: String(BODY_BUDGET),
    },
  });
}, 150_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const b64 = (b: Uint8Array | string) => Buffer.from(b).toString('base64');
const unb64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64');

async function produce(topic: string, records: unknown[], headers: Record<string, string> = {}) {
  return stack.http<ProduceAnswer & Problem>('POST', `/v1/topics/${topic}/records`, { body: { records }, headers });
}

async function fetchAt(topic: string, partition: number, offset: number, query = '') {
  return stack.http<FetchAnswer & Problem>(
    'GET',
    `/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}${query}`,
  );
}

async function highWatermark(topic: string, partition: number): Promise<number> {
  const r = await stack.http<{ partitions: Array<{ partition: number; high_watermark: number }> }>(
    'GET',
    `/v1/topics/${topic}`,
  );
  expect(r.status).toBe(200);
  return r.body.partitions[partition].high_watermark;
}

describe('produce / fetch round trip', () => {
  test('keys, headers and binary values come back byte for byte, at the offsets produce answered', async () => {
    const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const records = [
      { key: 'user-1', value: 'hello', headers: { 'content-type': 'text/plain' } },
      {
        key_b64: b64(Uint8Array.from([0, 1, 0xfe, 0xff])),
        value_b64: b64(allBytes),
        headers: [
          { name: 'bin', value_b64: b64(Uint8Array.from([0, 0xff, 0x80])) },
          { name: 'bin', value: 'same name again, order kept' },
        ],
        timestamp: 1_700_000_000_123,
      },
      { value: 'ünïcødé ✓ 🎉', partition: 1 },
      { value_b64: '', partition: 0 },
    ];
    const r = await produce('t', records);
    expect(r.status).toBe(200);
    expect(r.body.results).toHaveLength(records.length);
    expect(r.body.results[2].partition).toBe(1);
    expect(r.body.results[3].partition).toBe(0);

    const got: RecordOut[] = [];
    for (const res of r.body.results) {
      expect(res.status).toBe('written');
      const f = await fetchAt('t', res.partition, res.offset, '&max_records=1');
      expect(f.status).toBe(200);
      expect(f.body.records[0].offset).toBe(res.offset);
      got.push(f.body.records[0]);
    }
    // Default encoding is base64 for every byte field.
    expect(unb64(got[0].key_b64).toString()).toBe('user-1');
    expect(unb64(got[0].value_b64).toString()).toBe('hello');
    expect(got[0].headers).toEqual([{ name: 'content-type', value_b64: b64('text/plain') }]);
    expect([...unb64(got[1].key_b64)]).toEqual([0, 1, 0xfe, 0xff]);
    expect([...unb64(got[1].value_b64)]).toEqual([...allBytes]);
    expect(got[1].timestamp).toBe(1_700_000_000_123);
    expect(got[1].headers.map((h) => [h.name, [...unb64(h.value_b64)]])).toEqual([
      ['bin', [0, 0xff, 0x80]],
      ['bin', [...Buffer.from('same name again, order kept')]],
    ]);
    expect(unb64(got[2].value_b64).toString()).toBe('ünïcødé ✓ 🎉');
    expect(got[2].key).toBeNull();
    expect(unb64(got[3].value_b64)).toHaveLength(0);

    // encoding=utf8: text where the bytes are UTF-8, base64 where they are not.
    const u = await fetchAt('t', r.body.results[1].partition, r.body.results[1].offset, '&max_records=1&encoding=utf8');
    expect(u.body.records[0].value).toBeUndefined();
    expect([...unb64(u.body.records[0].value_b64)]).toEqual([...allBytes]);
    expect(u.body.records[0].headers[1]).toEqual({ name: 'bin', value: 'same name again, order kept' });
    const u2 = await fetchAt(
      't',
      r.body.results[2].partition,
      r.body.results[2].offset,
      '&max_records=1&encoding=utf8',
    );
    expect(u2.body.records[0].value).toBe('ünïcødé ✓ 🎉');
  });

  test("a key's partition is Kafka's murmur2 partition, checked by fetching the record there", async () => {
    // Keys with murmur2 values from Kafka's own UtilsTest / the Java client (see the unit test).
    const kafka: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['abc', 479470107],
      ['1', -1993445489],
      ['12', 126087238],
      ['123', -267702483],
      ['1234', -1614185708],
      ['0', 971027396],
    ];
    const keys = [...kafka.map(([k]) => k), ...Array.from({ length: 30 }, (_, i) => `order-${i}`)];
    const expected = keys.map((k, i) =>
      i < kafka.length ? (kafka[i][1] & 0x7fffffff) % 2 : partitionForKey(Buffer.from(k), 2),
    );
    expect(new Set(expected).size).toBe(2); // both partitions are exercised
    const r = await produce(
      't',
      keys.map((k) => ({ key: k, value: `v-${k}` })),
    );
    expect(r.status).toBe(200);
    expect(r.body.results.map((x) => x.partition)).toEqual(expected);
    for (const [i, res] of r.body.results.entries()) {
      const f = await fetchAt('t', res.partition, res.offset, '&max_records=1&encoding=utf8');
      expect(f.body.records[0]).toMatchObject({ key: keys[i], value: `v-${keys[i]}` });
    }
    // Same key, same partition, increasing offsets (per-key order within a partition).
    const again = await produce('t', [
      { key: 'foobar', value: 'second' },
      { key: 'foobar', value: 'third' },
    ]);
    const first = r.body.results[keys.indexOf('foobar')];
    expect(again.body.results.map((x) => x.partition)).toEqual([first.partition, first.partition]);
    expect(again.body.results[0].offset).toBeGreaterThan(first.offset);
    expect(again.body.results[1].offset).toBe(again.body.results[0].offset + 1);
  });
});

describe('streaming produce', () => {
  test('one connection, one record per line: every line answered in order, every record read back at its offset', async () => {
    const n = 2000;
    const lines = Array.from({ length: n }, (_, i) =>
      i === 1000 ? '{"value": oops' : JSON.stringify({ key: `k${i % 7}`, value: `stream-${i}` }),
    );
    const answer = await new Promise<string>((resolve, reject) => {
      const r = request(
        `${stack.url}/v1/topics/t/records:stream`,
        { method: 'POST', headers: { 'content-type': 'application/x-ndjson' } },
        (res) => {
          expect(res.statusCode).toBe(200);
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve(text));
        },
      );
      r.on('error', reject);
      // Written in pieces that cut lines in two, as a real client's buffers would.
      const body = lines.join('\n') + '\n';
      for (let i = 0; i < body.length; i += 4096) r.write(body.slice(i, i + 4096));
      r.end();
    });
    const results = answer
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; partition?: number; offset?: number; error?: Problem });
    expect(results.map((x) => x.line)).toEqual(lines.map((_, i) => i + 1));
    expect(results[1000].error).toMatchObject({ code: 'MALFORMED_JSON' });
    const written = results.filter((x) => x.error === undefined);
    expect(written).toHaveLength(n - 1);
    // Per partition: offsets unique, and each record is found at its offset with its value.
    for (const p of [0, 1]) {
      const mine = written.filter((x) => x.partition === p);
      const offsets = mine.map((x) => x.offset!);
      expect(new Set(offsets).size).toBe(offsets.length);
      // A partition's records keep the stream's order.
      expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
      const byOffset = new Map<number, string>();
      for (let from = Math.min(...offsets); from <= Math.max(...offsets);) {
        const f = await fetchAt('t', p, from, '&max_records=1000&encoding=utf8');
        expect(f.status).toBe(200);
        for (const rec of f.body.records) byOffset.set(rec.offset, rec.value ?? '');
        if (f.body.records.length === 0) break;
        from = f.body.next_offset;
      }
      for (const x of mine) {
        const i = x.line - 1;
        expect(byOffset.get(x.offset!)).toBe(`stream-${i}`);
        expect(partitionForKey(Buffer.from(`k${i % 7}`), 2)).toBe(p);
      }
    }
  });
});

describe('long-poll', () => {
  test('a fetch waiting at the high watermark returns as soon as a record is produced, long before wait_ms', async () => {
    const hw = await highWatermark('t', 1);
    const waiting = fetchAt('t', 1, hw, '&wait_ms=15000&encoding=utf8');
    await sleep(400); // the fetch is parked at the leader by now
    const p = await produce('t', [{ partition: 1, value: 'wake-up' }]);
    expect(p.status).toBe(200);
    const producedAt = performance.now();
    const f = await waiting;
    const afterProduce = performance.now() - producedAt;
    expect(f.status).toBe(200);
    expect(f.body.records.map((r) => [r.offset, r.value])).toEqual([[hw, 'wake-up']]);
    expect(f.ms).toBeLessThan(5000); // ≪ wait_ms (15 s)
    expect(afterProduce).toBeLessThan(1500);
  });

  test('with nothing produced it answers empty after wait_ms', async () => {
    const hw = await highWatermark('t', 0);
    const f = await fetchAt('t', 0, hw, '&wait_ms=700');
    expect(f.status).toBe(200);
    expect(f.body).toMatchObject({ records: [], next_offset: hw, high_watermark: hw });
    expect(f.ms).toBeGreaterThanOrEqual(650);
    expect(f.ms).toBeLessThan(5000);
  });
});

describe('consumer group offsets (cumulative mode)', () => {
  test('commit, position and lag, reset to earliest/latest with dry_run', async () => {
    const g = `g-${Date.now()}`;
    const hw = [await highWatermark('t', 0), await highWatermark('t', 1)];
    expect(hw[0]).toBeGreaterThan(1);
    expect(hw[1]).toBeGreaterThan(1);

    const c = await stack.http<{ offsets: unknown[] }>('POST', `/v1/groups/${g}/offsets`, {
      body: {
        offsets: [
          { topic: 't', partition: 0, offset: 1, metadata: 'consumer-a' },
          { topic: 't', partition: 1, offset: hw[1] },
        ],
      },
    });
    expect(c.status).toBe(200);
    // The group is listed by the replicas that hold it (GET /v1/groups asks every partition).
    const listed = await stack.http<{ groups: Array<{ group: string; topic: string }>; truncated: boolean }>(
      'GET',
      `/v1/groups?prefix=${g}`,
    );
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({ groups: [{ group: g, topic: 't' }], truncated: false });

    type Pos = {
      lag: number;
      partitions: Array<{
        partition: number;
        offset: number | null;
        metadata?: string;
        lag: number;
        high_watermark: number;
      }>;
    };
    const pos = await stack.http<Pos>('GET', `/v1/groups/${g}/offsets?topic=t`);
    expect(pos.status).toBe(200);
    expect(pos.body.partitions[0]).toMatchObject({
      offset: 1,
      metadata: 'consumer-a',
      high_watermark: hw[0],
      lag: hw[0] - 1,
    });
    expect(pos.body.partitions[1]).toMatchObject({ offset: hw[1], lag: 0 });
    expect(pos.body.lag).toBe(hw[0] - 1);

    const grp = await stack.http<{ lag: number; topics: Array<{ topic: string; lag: number }> }>(
      'GET',
      `/v1/groups/${g}`,
    );
    expect(grp.status).toBe(200);
    expect(grp.body.topics).toEqual([expect.objectContaining({ topic: 't', lag: hw[0] - 1 })]);

    type Reset = {
      dry_run: boolean;
      partitions: Array<{ partition: number; previous_offset: number | null; new_offset: number }>;
    };
    const dry = await stack.http<Reset>('POST', `/v1/groups/${g}/offsets:reset`, {
      body: { topic: 't', to: 'latest', dry_run: true },
    });
    expect(dry.status).toBe(200);
    expect(dry.body.partitions).toEqual([
      expect.objectContaining({ partition: 0, previous_offset: 1, new_offset: hw[0] }),
      expect.objectContaining({ partition: 1, previous_offset: hw[1], new_offset: hw[1] }),
    ]);
    // dry_run committed nothing
    expect((await stack.http<Pos>('GET', `/v1/groups/${g}/offsets?topic=t`)).body.partitions[0].offset).toBe(1);

    const early = await stack.http<Reset>('POST', `/v1/groups/${g}/offsets:reset`, {
      body: { topic: 't', to: 'earliest' },
    });
    expect(early.status).toBe(200);
    let now = (await stack.http<Pos>('GET', `/v1/groups/${g}/offsets?topic=t`)).body;
    expect(now.partitions.map((p) => p.offset)).toEqual([0, 0]);
    expect(now.lag).toBe(hw[0] + hw[1]);

    const late = await stack.http<Reset>('POST', `/v1/groups/${g}/offsets:reset`, {
      body: { topic: 't', to: 'latest', partitions: [0] },
    });
    expect(late.status).toBe(200);
    now = (await stack.http<Pos>('GET', `/v1/groups/${g}/offsets?topic=t`)).body;
    expect(now.partitions.map((p) => p.offset)).toEqual([hw[0], 0]);

    // A commit survives in Raft: ask again after more records arrive, the lag grows with the HW.
    await produce('t', [{ partition: 0, value: 'lag-me' }]);
    now = (await stack.http<Pos>('GET', `/v1/groups/${g}/offsets?topic=t`)).body;
    expect(now.partitions[0]).toMatchObject({ offset: hw[0], lag: 1 });
  });
});

describe('bad input on the real stack', () => {
  test('4xx with the documented codes, never a 5xx; every process stays up', async () => {
    const pids = Object.fromEntries(['gateway', ...stack.replicas().map((r) => r.name)].map((n) => [n, stack.pid(n)]));
    const cases: Array<[string, () => Promise<{ status: number; body: Problem }>, number, string]> = [
      [
        'malformed JSON',
        () =>
          stack.http<Problem>('POST', '/v1/topics/t/records', {
            rawBody: '{"records":[{"value":"x"}',
            headers: { 'content-type': 'application/json' },
          }),
        400,
        'MALFORMED_JSON',
      ],
      ['unknown topic (produce)', () => produce('nope', [{ value: 'x' }]), 404, 'TOPIC_NOT_FOUND'],
      ['unknown topic (fetch)', () => fetchAt('nope', 0, 0), 404, 'TOPIC_NOT_FOUND'],
      ['unknown partition (fetch)', () => fetchAt('t', 2, 0), 404, 'PARTITION_NOT_FOUND'],
      ['unknown partition (produce)', () => produce('t', [{ value: 'x', partition: 9 }]), 404, 'PARTITION_NOT_FOUND'],
      ['offset beyond the high watermark', () => fetchAt('t', 0, 1_000_000), 416, 'OFFSET_OUT_OF_RANGE'],
      ['negative offset', () => fetchAt('t', 0, -1), 400, 'INVALID_REQUEST'],
      ['bad base64', () => produce('t', [{ value_b64: '***' }]), 400, 'INVALID_REQUEST'],
      ['record over the topic limit', () => produce('q', [{ value: 'x'.repeat(1025) }]), 413, 'RECORD_TOO_LARGE'],
      [
        'not JSON content type',
        () =>
          stack.http<Problem>('POST', '/v1/topics/t/records', {
            rawBody: 'x',
            headers: { 'content-type': 'text/plain' },
          }),
        415,
        'UNSUPPORTED_MEDIA_TYPE',
      ],
    ];
    for (const [what, call, status, code] of cases) {
      const r = await call();
      expect({ what, status: r.status, code: r.body.code }).toEqual({ what, status, code });
      expect(r.body.retryable).toBe(false);
    }

    // 416 comes from the replica and says where the log is.
    const oor = await fetchAt('t', 0, 1_000_000);
    expect(oor.body).toMatchObject({ high_watermark: expect.any(Number), log_start_offset: 0 });

    // Reused Idempotency-Key: same payload → the original offsets; different payload → 422.
    const key = `bad-input-${Date.now()}`;
    const a = await produce('t', [{ value: 'one' }], { 'idempotency-key': key });
    expect(a.status).toBe(200);
    const again = await produce('t', [{ value: 'one' }], { 'idempotency-key': key });
    expect(again.status).toBe(200);
    expect(again.body.results).toEqual([{ ...a.body.results[0], status: 'duplicate' }]);
    const conflict = await produce('t', [{ value: 'two' }], { 'idempotency-key': key });
    expect(conflict.status).toBe(422);
    expect(conflict.body).toMatchObject({ code: 'IDEMPOTENCY_CONFLICT', retryable: false });

    // Nothing crashed or restarted.
    const now = Object.fromEntries(Object.keys(pids).map((n) => [n, stack.pid(n)]));
    expect(now).toEqual(pids);
    expect((await stack.http('GET', '/healthz')).status).toBe(200);
    const m = (await stack.http<string>('GET', '/metrics')).body;
    expect(metricValue(m, 'daftka_gateway_errors_total', { code: 'INTERNAL' })).toBeUndefined();
  });
});

describe('backpressure', () => {
  test('a topic quota answers 429 QUOTA_EXCEEDED with Retry-After, and admits again after it', async () => {
    await sleep(1100); // the bucket (5 records, 1 s burst) is full
    const five = await produce(
      'q',
      Array.from({ length: 5 }, (_, i) => ({ value: `q${i}` })),
    );
    expect(five.status).toBe(200);
    const over = await produce('q', [{ value: 'one too many' }]);
    expect(over.status).toBe(429);
    expect(over.body).toMatchObject({ code: 'QUOTA_EXCEEDED', reason: 'produce_records', retryable: true });
    const retryAfter = Number(over.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(over.body.retry_after_ms).toBeGreaterThan(0);
    expect(over.body.retry_after_ms).toBeLessThanOrEqual(1000);
    await sleep(over.body.retry_after_ms! + 50);
    expect((await produce('q', [{ value: 'admitted again' }])).status).toBe(200);
    const m = (await stack.http<string>('GET', '/metrics')).body;
    expect(
      metricValue(m, 'daftka_gateway_throttled_requests_total', { topic: 'q', reason: 'produce_records' }),
    ).toBeGreaterThanOrEqual(1);
  });

  /**
   * A closed loop of `clients` producers sending `body` for `durationMs`; gateway RSS sampled
   * every 100 ms. Returns answers by "status code", latencies by status, and the RSS peak.
   */
  async function overload(clients: number, durationMs: number, body: string) {
    const statuses: Record<string, number> = {};
    const latency: Record<string, number[]> = {};
    let missingRetryAfter = 0;
    let notRetryable = 0;
    let transportErrors = 0;
    const transportErrorKinds: string[] = [];
    const rssBefore = stack.rssBytes('gateway');
    let rssMax = rssBefore;
    const sampler = setInterval(() => {
      try {
        rssMax = Math.max(rssMax, stack.rssBytes('gateway'));
      } catch {
        /* gateway gone: asserted by the caller */
      }
    }, 100);
    const end = Date.now() + durationMs;
    // node:http with one keep-alive socket per client (as bench/lib/http-load.ts): fetch()'s pool
    // keeps spare idle connections, and on this starved machine it rarely (a few requests in some
    // runs) saw ECONNRESET on a reused one that the gateway never logged — the HTTP/1.1 keep-alive
    // race, a client-side retry matter, not what this test is about.
    const agent = new Agent({ keepAlive: true, maxSockets: clients });
    const u = new URL(`${stack.url}/v1/topics/t/records`);
    const post = () =>
      new Promise<{ status: number; text: string; retryAfter: string | undefined }>((resolve, reject) => {
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString(),
                retryAfter: res.headers['retry-after'],
              }),
            );
            res.on('error', reject);
          },
        );
        req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end(body);
      });
    const worker = async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        try {
          const res = await post();
          let k = '200';
          if (res.status !== 200) {
            const p = JSON.parse(res.text) as Problem;
            k = `${res.status} ${p.code}`;
            if (res.retryAfter === undefined) missingRetryAfter++;
            if (p.retryable !== true) notRetryable++;
          }
          statuses[k] = (statuses[k] ?? 0) + 1;
          (latency[k] ??= []).push(performance.now() - t0);
        } catch (err) {
          transportErrors++;
          const e = err as Error & { code?: string };
          if (transportErrorKinds.length < 5)
            transportErrorKinds.push(`${e.code ?? ''} ${e.message} after ${(performance.now() - t0).toFixed(0)} ms`);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: clients }, worker));
    } finally {
      clearInterval(sampler);
      agent.destroy();
    }
    const p50 = (k: string) => {
      const l = (latency[k] ?? []).sort((a, b) => a - b);
      return l.length > 0 ? l[l.length >> 1] : NaN;
    };
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    console.log(
      `overload: ${clients} clients × ${durationMs} ms, ${(body.length / 1024).toFixed(0)} KiB bodies: ${JSON.stringify(statuses)}; ` +
        `p50 ${Object.keys(latency)
          .map((k) => `${k}: ${p50(k).toFixed(0)} ms`)
          .join(', ')}; gateway RSS ${mib(rssBefore)} → max ${mib(rssMax)} MiB` +
        (transportErrors > 0 ? `; ${transportErrors} transport errors, e.g. ${transportErrorKinds.join(' | ')}` : ''),
    );
    return { statuses, p50, missingRetryAfter, notRetryable, transportErrors, rssBefore, rssMax };
  }

  test('beyond the bound of produces waiting per partition: 503 OVERLOADED with Retry-After at once, instead of queueing', async () => {
    const gatewayPid = stack.gatewayPid;
    const body = JSON.stringify({ records: [{ partition: 0, value: 'x'.repeat(1024) }] });
    const r = await overload(200, 4000, body);
    expect(r.transportErrors).toBe(0);
    expect(r.missingRetryAfter).toBe(0);
    expect(r.notRetryable).toBe(0);
    expect(r.statuses['200']).toBeGreaterThan(0);
    expect(r.statuses['503 OVERLOADED']).toBeGreaterThan(0);
    // Only successes and load shedding: no timeouts, nothing waited for the deadline.
    expect(Object.keys(r.statuses).sort()).toEqual(['200', '503 OVERLOADED']);
    // No latency bound is asserted: in a closed loop on a shared 2-core box every answer waits in
    // the same line for the gateway's CPU (clients ÷ its rate), shed or served alike. What must
    // not happen is waiting for a replica slot: that would show as 504s at the deadline above.
    expect(r.rssMax).toBeLessThan(r.rssBefore + 150 * 2 ** 20);
    expect(stack.gatewayPid).toBe(gatewayPid);
    const m = (await stack.http<string>('GET', '/metrics')).body;
    expect(
      metricValue(m, 'daftka_gateway_shed_requests_total', { reason: 'produce_queue', kind: 'produce' }),
    ).toBeGreaterThan(0);
    expect((await produce('t', [{ partition: 0, value: 'after the storm' }])).status).toBe(200);
  });

  test('many large bodies at once: request bodies in memory are bounded (maxBodyBytesInFlight), RSS stays bounded', async () => {
    const gatewayPid = stack.gatewayPid;
    // 2 MB bodies from 48 clients: ~100 MB of bodies offered at once (~500 MB of gateway memory
    // if all were held); the gateway holds at most BODY_BUDGET of them.
    const body = JSON.stringify({
      records: Array.from({ length: 250 }, (_, i) => ({ partition: 1, value: `${i}:`.padEnd(8000, 'y') })),
    });
    const r = await overload(48, 4000, body);
    expect(r.transportErrors).toBe(0);
    expect(r.missingRetryAfter).toBe(0);
    expect(r.notRetryable).toBe(0);
    expect(r.statuses['503 OVERLOADED']).toBeGreaterThan(0);
    // Successes, shedding, and (on a starved machine) a commit that outlived the deadline.
    for (const k of Object.keys(r.statuses)) expect(['200', '503 OVERLOADED', '504 COMMIT_UNKNOWN']).toContain(k);
    expect(r.rssMax).toBeLessThan(r.rssBefore + 200 * 2 ** 20);
    expect(stack.gatewayPid).toBe(gatewayPid);
    const m = (await stack.http<string>('GET', '/metrics')).body;
    expect(
      metricValue(m, 'daftka_gateway_shed_requests_total', { reason: 'body_bytes', kind: 'produce' }),
    ).toBeGreaterThan(0);
    expect(metricValue(m, 'daftka_gateway_body_bytes_in_flight')).toBeLessThanOrEqual(BODY_BUDGET);
  });
});
