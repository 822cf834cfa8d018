import { DaftkaError } from '../../../common/errors';
import { QuotaManager } from '../../../gateway/quotas';
import { topic } from './fixtures';

function refusal(fn: () => void): DaftkaError {
  try {
    fn();
  } catch (e) {
    return e as DaftkaError;
  }
  throw new Error('expected a refusal');
}

describe('QuotaManager', () => {
  test('admits produce within the byte rate and refuses beyond it with the time to refill', () => {
    let now = 0;
    const q = new QuotaManager({ nowMs: () => now });
    const t = topic('t', { quotas: { produceBytesPerSecond: 1000 } });
    q.admitProduce(t, 'alice', 600, 1);
    const e = refusal(() => q.admitProduce(t, 'alice', 600, 1));
    expect(e.code).toBe('QUOTA_EXCEEDED');
    expect(e.extra).toMatchObject({ reason: 'produce_bytes' });
    // 400 tokens left, 600 needed, 1000/s → 200 ms
    expect(e.retryAfterMs).toBe(200);
    now = 200;
    q.admitProduce(t, 'alice', 600, 1);
  });

  test('refuses the whole request without taking from either bucket', () => {
    const now = 0;
    const q = new QuotaManager({ nowMs: () => now });
    const t = topic('t', { quotas: { produceBytesPerSecond: 1000, recordsPerSecond: 10 } });
    q.admitProduce(t, 'alice', 10, 5);
    const e = refusal(() => q.admitProduce(t, 'alice', 10, 6));
    expect(e.extra).toMatchObject({ reason: 'produce_records' });
    // The refused request took no bytes: 990 bytes and 5 records still fit.
    q.admitProduce(t, 'alice', 990, 5);
  });

  test('keeps buckets per principal and per topic', () => {
    const q = new QuotaManager({ nowMs: () => 0 });
    const t = topic('t', { quotas: { recordsPerSecond: 1 } });
    q.admitProduce(t, 'alice', 1, 1);
    q.admitProduce(t, 'bob', 1, 1);
    q.admitProduce(topic('u', { quotas: { recordsPerSecond: 1 } }), 'alice', 1, 1);
    expect(() => q.admitProduce(t, 'alice', 1, 1)).toThrow(DaftkaError);
  });

  test('admits a request larger than the burst once the bucket is full, then the debt is waited out', () => {
    let now = 0;
    const q = new QuotaManager({ nowMs: () => now });
    const t = topic('t', { quotas: { produceBytesPerSecond: 100 } });
    q.admitProduce(t, 'a', 500, 1);
    const e = refusal(() => q.admitProduce(t, 'a', 1, 1));
    expect(e.retryAfterMs).toBe(4010); // from −400 up to 1 at 100/s
    now = 4010;
    q.admitProduce(t, 'a', 1, 1);
  });

  test('fetch is admitted until the bucket is in debt and charged with what it returned', () => {
    let now = 0;
    const q = new QuotaManager({ nowMs: () => now });
    const t = topic('t', { quotas: { fetchBytesPerSecond: 1000 } });
    q.admitFetch(t, 'a');
    q.chargeFetch(t, 'a', 1500);
    const e = refusal(() => q.admitFetch(t, 'a'));
    expect(e.extra).toMatchObject({ reason: 'fetch_bytes' });
    expect(e.retryAfterMs).toBe(500);
    now = 500;
    q.admitFetch(t, 'a');
  });

  test('topics without quotas are never throttled and keep no state', () => {
    const q = new QuotaManager();
    for (let i = 0; i < 100; i++) q.admitProduce(topic('t'), `p${i}`, 1e9, 1e6);
    expect(q.size).toBe(0);
  });

  test('memory is bounded: the least recently used bucket is evicted', () => {
    const q = new QuotaManager({ maxBuckets: 10, nowMs: () => 0 });
    const t = topic('t', { quotas: { recordsPerSecond: 1 } });
    for (let i = 0; i < 1000; i++) q.admitProduce(t, `p${i}`, 1, 1);
    expect(q.size).toBe(10);
  });
});
