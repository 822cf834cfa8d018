import { DaftkaError } from '../../../common/errors';
import type { ProduceRequest, ProduceResult } from '../../../common/partition-api';
import { ProduceCoalescer } from '../../../gateway/produce-coalescer';

/** A replica leader whose calls complete when the test says so. */
class ManualRouter {
  next = 0;
  calls: Array<{ req: ProduceRequest; done: (err?: unknown) => void }> = [];
  produce(req: ProduceRequest): Promise<ProduceResult> {
    return new Promise((resolve, reject) => {
      this.calls.push({
        req,
        done: (err) => {
          if (err !== undefined) return reject(err);
          const baseOffset = this.next;
          this.next += req.records.length;
          resolve({ baseOffset, count: req.records.length, duplicate: false });
        },
      });
    });
  }
}

const rec = (v: string) => ({ key: null, value: Buffer.from(v), headers: [], timestampMs: 1 });
const req = (values: string[], over: Partial<ProduceRequest> = {}): ProduceRequest => ({
  topic: 't',
  partition: 0,
  records: values.map(rec),
  requestId: `r-${values.join('')}`,
  timeoutMs: 5000,
  ...over,
});
const tick = () => new Promise((r) => setImmediate(r));

describe('produce coalescing', () => {
  test('an idle partition sends a request at once, alone', async () => {
    const router = new ManualRouter();
    const c = new ProduceCoalescer(router, {
      maxRecords: 100,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 100,
    });
    const p = c.produce(req(['a']), 1);
    expect(router.calls).toHaveLength(1);
    router.calls[0].done();
    await expect(p).resolves.toEqual({ baseOffset: 0, count: 1, duplicate: false });
  });

  test('requests arriving while a call is in flight ride on the next one, offsets in arrival order', async () => {
    const router = new ManualRouter();
    const batches: number[] = [];
    const c = new ProduceCoalescer(router, {
      maxRecords: 100,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 100,
      onBatch: (n) => batches.push(n),
    });
    const first = c.produce(req(['a']), 1);
    const rest = [c.produce(req(['b', 'c']), 2), c.produce(req(['d']), 1), c.produce(req(['e']), 1)];
    expect(router.calls).toHaveLength(1);
    expect(c.waiting).toBe(3);
    router.calls[0].done();
    await first;
    await tick();
    expect(router.calls).toHaveLength(2);
    expect(router.calls[1].req.records.map((r) => Buffer.from(r.value).toString())).toEqual(['b', 'c', 'd', 'e']);
    router.calls[1].done();
    expect(await Promise.all(rest)).toEqual([
      { baseOffset: 1, count: 2, duplicate: false },
      { baseOffset: 3, count: 1, duplicate: false },
      { baseOffset: 4, count: 1, duplicate: false },
    ]);
    expect(batches).toEqual([1, 3]);
  });

  test('a batch never exceeds its byte bound; the rest waits for the following call', async () => {
    const router = new ManualRouter();
    const c = new ProduceCoalescer(router, { maxRecords: 1000, maxBytes: 64, maxBatchesInFlight: 1, maxWaiting: 100 });
    const first = c.produce(req(['first']), 4);
    const rest = Array.from({ length: 17 }, (_, i) => c.produce(req([`r${i}`]), 4));
    router.calls[0].done();
    await first;
    await tick();
    expect(router.calls[1].req.records).toHaveLength(16); // 16 × 4 bytes = 64: one more would pass the bound
    router.calls[1].done();
    await tick();
    expect(router.calls[2].req.records).toHaveLength(1);
    router.calls[2].done();
    expect((await Promise.all(rest)).map((r) => r.baseOffset)).toEqual(Array.from({ length: 17 }, (_, i) => i + 1));
  });

  test('a request that is already a batch goes at once, alone, even while calls are in flight', async () => {
    const router = new ManualRouter();
    const c = new ProduceCoalescer(router, {
      maxRecords: 1000,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 100,
    });
    void c.produce(req(['a']), 1);
    void c.produce(req(['b']), 1); // waits
    void c.produce(req(Array.from({ length: 100 }, (_, i) => `big${i}`)), 100 * 1024); // 100 KB: a batch
    expect(router.calls.map((x) => x.req.records.length)).toEqual([1, 100]);
    expect(c.waiting).toBe(1);
  });

  test('a batch refused for one bad request is resent request by request: only the bad one fails', async () => {
    const router = new ManualRouter();
    const c = new ProduceCoalescer(router, {
      maxRecords: 100,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 100,
    });
    const first = c.produce(req(['a']), 1);
    const good = c.produce(req(['good']), 4);
    const bad = c.produce(req(['bad']), 3);
    router.calls[0].done();
    await first;
    await tick();
    router.calls[1].done(new DaftkaError('INVALID_REQUEST', 'record 1 has a timestamp in the future'));
    await tick();
    expect(router.calls.slice(2).map((x) => x.req.records.length)).toEqual([1, 1]);
    router.calls[2].done();
    router.calls[3].done(new DaftkaError('INVALID_REQUEST', 'record 0 has a timestamp in the future'));
    await expect(good).resolves.toMatchObject({ baseOffset: 1 });
    await expect(bad).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
  });

  test('an outcome the batch shares (COMMIT_UNKNOWN, NOT_LEADER) is every request’s answer', async () => {
    const router = new ManualRouter();
    const c = new ProduceCoalescer(router, {
      maxRecords: 100,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 100,
    });
    const first = c.produce(req(['a']), 1);
    const both = [c.produce(req(['b']), 1), c.produce(req(['c']), 1)];
    router.calls[0].done();
    await first;
    await tick();
    router.calls[1].done(new DaftkaError('COMMIT_UNKNOWN', 'not committed in time'));
    for (const p of both) await expect(p).rejects.toMatchObject({ code: 'COMMIT_UNKNOWN' });
    expect(router.calls).toHaveLength(2); // never resent: the batch may have been written
  });

  test('idempotent and producer-numbered requests are never coalesced', async () => {
    const router = new ManualRouter();
    const c = new ProduceCoalescer(router, {
      maxRecords: 100,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 100,
    });
    void c.produce(req(['a']), 1);
    void c.produce(req(['k'], { idempotencyKey: 'key-1#p0' }), 1);
    void c.produce(req(['p'], { producer: { producerId: 'p', epoch: 0, seq: 0 } }), 1);
    expect(router.calls.map((x) => x.req.records.length)).toEqual([1, 1, 1]);
    expect(c.waiting).toBe(0);
  });

  test('past the waiting bound a produce is refused 503 OVERLOADED at once, and counted', async () => {
    const router = new ManualRouter();
    let shed = 0;
    const c = new ProduceCoalescer(router, {
      maxRecords: 100,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 2,
      onShed: () => shed++,
    });
    void c.produce(req(['a']), 1);
    void c.produce(req(['b']), 1);
    void c.produce(req(['c']), 1);
    await expect(c.produce(req(['d']), 1)).rejects.toMatchObject({ code: 'OVERLOADED', retryAfterMs: 100 });
    expect(shed).toBe(1);
    expect(c.waiting).toBe(2);
  });

  test('partitions coalesce apart', async () => {
    const router = new ManualRouter();
    const c = new ProduceCoalescer(router, {
      maxRecords: 100,
      maxBytes: 1 << 20,
      maxBatchesInFlight: 1,
      maxWaiting: 100,
    });
    void c.produce(req(['a']), 1);
    void c.produce(req(['b'], { partition: 1 }), 1);
    expect(router.calls.map((x) => x.req.partition)).toEqual([0, 1]);
  });
});
