import { DaftkaError } from '../../../common/errors';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

describe('gateway consumer groups (cumulative mode)', () => {
  let gw: Harness;
  beforeEach(async () => {
    gw = await startGateway({ topics: [topic('orders', { partitions: 2 }), topic('audit', { partitions: 1 })] });
    for (let i = 0; i < 5; i++)
      await gw.req('POST', '/v1/topics/orders/records', { body: { records: [{ value: `${i}`, partition: 0 }] } });
    await gw.req('POST', '/v1/topics/orders/records', {
      body: {
        records: [
          { value: 'a', partition: 1 },
          { value: 'b', partition: 1 },
        ],
      },
    });
  });
  afterEach(() => gw.close());

  test('commit, then read position and lag per partition', async () => {
    const c = await gw.req('POST', '/v1/groups/billing/offsets', {
      body: { offsets: [{ topic: 'orders', partition: 0, offset: 3, metadata: 'host-a' }] },
    });
    expect(c.status).toBe(200);
    expect(c.json).toEqual({ offsets: [{ topic: 'orders', partition: 0, offset: 3 }] });
    const r = await gw.req('GET', '/v1/groups/billing/offsets?topic=orders');
    expect(r.json).toEqual({
      group: 'billing',
      topic: 'orders',
      lag: 2 + 2,
      partitions: [
        { partition: 0, offset: 3, metadata: 'host-a', high_watermark: 5, log_start_offset: 0, lag: 2 },
        { partition: 1, offset: null, high_watermark: 2, log_start_offset: 0, lag: 2 },
      ],
    });
  });

  test('a commit request is validated whole before any partition is committed', async () => {
    const r = await gw.req('POST', '/v1/groups/billing/offsets', {
      body: {
        offsets: [
          { topic: 'orders', partition: 0, offset: 1 },
          { topic: 'orders', partition: 9, offset: 1 },
        ],
      },
    });
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ code: 'PARTITION_NOT_FOUND', pointer: '/offsets/1/partition' });
    const dup = await gw.req('POST', '/v1/groups/billing/offsets', {
      body: {
        offsets: [
          { topic: 'orders', partition: 0, offset: 1 },
          { topic: 'orders', partition: 0, offset: 2 },
        ],
      },
    });
    expect(dup.json).toMatchObject({ code: 'INVALID_REQUEST', pointer: '/offsets/1' });
    expect(gw.fake.calls.filter((x) => x.op === 'commit')).toHaveLength(0);
  });

  test('a failed partition in a multi-partition commit → its problem with partial_results', async () => {
    gw.fake.fail = (op, _t, p) =>
      op === 'commit' && p === 1 ? new DaftkaError('NO_QUORUM', 'no quorum', { retryAfterMs: 500 }) : undefined;
    const r = await gw.req('POST', '/v1/groups/billing/offsets', {
      body: {
        offsets: [
          { topic: 'orders', partition: 0, offset: 1 },
          { topic: 'orders', partition: 1, offset: 1 },
        ],
      },
    });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.json.partial_results).toEqual([
      { topic: 'orders', partition: 0, status: 'committed' },
      { topic: 'orders', partition: 1, status: 'failed', code: 'NO_QUORUM' },
    ]);
  });

  test('reset to earliest, latest and a clamped offset; dry_run commits nothing', async () => {
    const dry = await gw.req('POST', '/v1/groups/g/offsets:reset', {
      body: { topic: 'orders', to: 'latest', dry_run: true },
    });
    expect(dry.json).toEqual({
      group: 'g',
      topic: 'orders',
      to: 'latest',
      dry_run: true,
      partitions: [
        { partition: 0, previous_offset: null, new_offset: 5, high_watermark: 5, log_start_offset: 0 },
        { partition: 1, previous_offset: null, new_offset: 2, high_watermark: 2, log_start_offset: 0 },
      ],
    });
    expect(gw.fake.calls.filter((x) => x.op === 'commit')).toHaveLength(0);

    await gw.req('POST', '/v1/groups/g/offsets:reset', { body: { topic: 'orders', to: 'latest' } });
    expect((await gw.req('GET', '/v1/groups/g/offsets?topic=orders')).json.lag).toBe(0);

    const off = await gw.req('POST', '/v1/groups/g/offsets:reset', {
      body: { topic: 'orders', to: 'offset', offset: 4 },
    });
    expect(off.json.partitions.map((p: { new_offset: number }) => p.new_offset)).toEqual([4, 2]);

    const early = await gw.req('POST', '/v1/groups/g/offsets:reset', {
      body: { topic: 'orders', to: 'earliest', partitions: [1] },
    });
    expect(early.json.partitions).toEqual([
      { partition: 1, previous_offset: 2, new_offset: 0, high_watermark: 2, log_start_offset: 0 },
    ]);
    expect(
      (await gw.req('GET', '/v1/groups/g/offsets?topic=orders')).json.partitions.map(
        (p: { offset: number }) => p.offset,
      ),
    ).toEqual([4, 0]);
  });

  test('reset to a timestamp: the first offset at or after it on each partition, by binary search', async () => {
    // 'audit' (one partition) gets 100 records stamped 1000, 1010, … (offset i at 1000 + 10 i).
    await gw.req('POST', '/v1/topics/audit/records', {
      body: { records: Array.from({ length: 100 }, (_, i) => ({ value: `${i}`, timestamp: 1000 + 10 * i })) },
    });
    const reset = (timestamp: number) =>
      gw.req('POST', '/v1/groups/t/offsets:reset', {
        body: { topic: 'audit', to: 'timestamp', timestamp, dry_run: true },
      });
    const at = async (timestamp: number) => (await reset(timestamp)).json.partitions[0].new_offset;
    expect(await at(0)).toBe(0);
    expect(await at(1000)).toBe(0);
    expect(await at(1001)).toBe(1);
    expect(await at(1500)).toBe(50);
    expect(await at(1990)).toBe(99);
    // Past the last record: the high watermark (nothing to re-read).
    expect(await at(5000)).toBe(100);
    // A binary search, not a scan: about log2(100) single-record reads.
    const before = gw.fake.calls.filter((x) => x.op === 'fetch').length;
    await at(1234);
    const reads = gw.fake.calls.filter((x) => x.op === 'fetch').length - before;
    expect(reads).toBeGreaterThanOrEqual(6);
    expect(reads).toBeLessThanOrEqual(8);
    // And committed when not a dry run.
    const done = await gw.req('POST', '/v1/groups/t/offsets:reset', {
      body: { topic: 'audit', to: 'timestamp', timestamp: 1500 },
    });
    expect(done.json.partitions[0]).toMatchObject({ previous_offset: null, new_offset: 50 });
    expect((await gw.req('GET', '/v1/groups/t/offsets?topic=audit')).json.partitions[0].offset).toBe(50);
    // Without the timestamp: refused, naming it.
    const bad = await gw.req('POST', '/v1/groups/t/offsets:reset', { body: { topic: 'audit', to: 'timestamp' } });
    expect([bad.status, bad.json.detail]).toEqual([400, expect.stringContaining('timestamp')]);
  });

  test('GET /v1/groups/{g}: lag per partition for the topics given, or for the topics it committed on', async () => {
    await gw.req('POST', '/v1/groups/g/offsets', { body: { offsets: [{ topic: 'orders', partition: 1, offset: 1 }] } });
    const known = await gw.req('GET', '/v1/groups/g');
    expect(known.json.group).toBe('g');
    expect(known.json.topics.map((t: { topic: string }) => t.topic)).toEqual(['orders']);
    expect(known.json.lag).toBe(5 + 1);
    const named = await gw.req('GET', '/v1/groups/g?topic=orders,audit');
    expect(named.json.topics.map((t: { topic: string }) => t.topic)).toEqual(['orders', 'audit']);
    const repeated = await gw.req('GET', '/v1/groups/g?topic=audit&topic=orders');
    expect(repeated.json.topics.map((t: { topic: string }) => t.topic)).toEqual(['audit', 'orders']);
    const none = await gw.req('GET', '/v1/groups/nobody');
    expect(none.status).toBe(404);
    expect(none.json.code).toBe('GROUP_NOT_FOUND');
  });
});

describe('gateway introspection and health', () => {
  test('GET /v1/topics/{t} shows leader, term and watermarks per partition; failures per partition', async () => {
    const gw = await startGateway({ topics: [topic('orders', { partitions: 2, quotas: { recordsPerSecond: 10 } })] });
    try {
      gw.fake.fail = (op, _t, p) => (op === 'status' && p === 1 ? new DaftkaError('UNAVAILABLE', 'down') : undefined);
      const r = await gw.req('GET', '/v1/topics/orders');
      expect(r.json).toEqual({
        name: 'orders',
        partition_count: 2,
        cleanup: 'delete',
        max_record_bytes: 1024,
        quotas: { records_per_second: 10 },
        rights: ['produce', 'consume', 'admin'],
        partitions: [
          {
            partition: 0,
            leader: 'r0',
            term: 7,
            high_watermark: 0,
            log_start_offset: 0,
            voters: 3,
            replicas: 3,
            under_replicated: false,
          },
          { partition: 1, leader: null, error: { code: 'UNAVAILABLE', detail: 'down' } },
        ],
      });
      const l = await gw.req('GET', '/v1/limits');
      expect(l.json).toMatchObject({
        max_records_per_request: 1000,
        fetch_max_wait_ms: 30000,
        request_timeout_ms: 5000,
      });
    } finally {
      await gw.close();
    }
  });

  test('readiness: ready with NATS, degraded (still 200) without it', async () => {
    const gw = await startGateway({ topics: [topic('orders')], nats: true });
    try {
      expect((await gw.req('GET', '/readyz')).json).toEqual({ status: 'ready', nats: 'connected' });
      gw.natsUp.value = false;
      const d = await gw.req('GET', '/readyz');
      expect(d.status).toBe(200);
      expect(d.json).toMatchObject({ status: 'degraded', nats: 'disconnected' });
      expect((await gw.req('GET', '/healthz')).json).toEqual({ status: 'ok' });
    } finally {
      await gw.close();
    }
  });

  test('readiness: 503 not_ready until topic metadata is loaded', async () => {
    const gw = await startGateway({
      topics: [],
      catalog: { list: () => [], get: () => undefined, ready: () => false },
    });
    try {
      const r = await gw.req('GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.json.status).toBe('not_ready');
    } finally {
      await gw.close();
    }
  });
});
