import type { PartitionClient } from '../../../protocol/methods';
import { PassThrough } from 'node:stream';
import { DaftkaError } from '../../../common/errors';
import { createLogger } from '../../../common/log';
import { createRegistry } from '../../../common/metrics';
import type { ProduceRequest } from '../../../common/partition-api';
import { StaticCatalog } from '../../../gateway/catalog';
import { routerMetrics } from '../../../gateway/metrics';
import {
  isNotDelivered,
  LeaderTable,
  PartitionRouter,
  type PartitionRouterOptions,
} from '../../../protocol/leader-router';
import { asReplicaClient, FakePartitions } from '../gateway/fake-partition';
import { topic } from '../gateway/fixtures';
import { startGateway } from '../gateway/harness';

const logger = createLogger('gateway', { stream: new PassThrough().resume() });
const SEEDS = ['a:1', 'b:1', 'c:1'];
const t = topic('orders', { partitions: 1, replicaEndpoints: [SEEDS] });

/** Replica endpoints for the router: each endpoint may override any call with its behaviour. */
class Cluster {
  readonly leaderLog = new FakePartitions();
  leader = 'b:1';
  /** Per endpoint: an error to throw (or a promise to wait on) instead of serving. */
  behaviour = new Map<string, (op: string) => unknown>();
  readonly seen: string[] = [];

  client(endpoint: string): PartitionClient {
    const serve = async <T>(op: string, fn: () => Promise<T>): Promise<T> => {
      this.seen.push(`${op}@${endpoint}`);
      const b = this.behaviour.get(endpoint)?.(op);
      if (b instanceof Promise) await b;
      else if (b !== undefined) throw b;
      if (endpoint !== this.leader) throw new DaftkaError('NOT_LEADER', 'not the leader', { leaderHint: this.leader });
      return fn();
    };
    const l = this.leaderLog;
    return {
      produce: (r) => serve('produce', () => l.produce(r)),
      fetch: (r) => serve('fetch', () => l.fetch(r)),
      commitOffset: (r) => serve('commit', () => l.commitOffset(r)),
      getOffset: (r) => serve('offset', () => l.getOffset(r)),
      status: (req) => serve('status', () => l.status(req)),
    };
  }
}

function router(cluster: Cluster, o: Partial<PartitionRouterOptions> = {}) {
  return new PartitionRouter({
    directory: new StaticCatalog([t]),
    connect: (e) => asReplicaClient(cluster.client(e)),
    logger,
    metrics: routerMetrics(createRegistry('gateway', { defaultMetrics: false }), () => 0),
    retryBackoff: { initialMs: 1, maxMs: 5 },
    ...o,
  });
}

const produceReq = (over: Partial<ProduceRequest> = {}): ProduceRequest => ({
  topic: 'orders',
  partition: 0,
  records: [{ key: null, value: Buffer.from('v'), headers: [], timestampMs: 0 }],
  requestId: 'r-1',
  timeoutMs: 1000,
  ...over,
});

const econnrefused = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

describe('LeaderTable', () => {
  test('accepts a leader only at a term ≥ the known one', () => {
    const lt = new LeaderTable();
    expect(lt.update('t', 0, { leaderId: 'r1', endpoint: 'a:1', term: 5 })).toBe(true);
    expect(lt.update('t', 0, { leaderId: 'r0', endpoint: 'b:1', term: 4 })).toBe(false);
    expect(lt.get('t', 0)).toEqual({ leaderId: 'r1', endpoint: 'a:1', term: 5 });
    expect(lt.update('t', 0, { leaderId: 'r2', endpoint: 'c:1', term: 5 })).toBe(true);
    expect(lt.update('t', 0, { leaderId: 'r2', endpoint: 'c:1', term: 6 })).toBe(true);
    lt.invalidate('t', 0, 'c:1');
    expect(lt.get('t', 0)).toEqual({ leaderId: 'r2', endpoint: null, term: 6 });
    expect(lt.update('t', 0, { leaderId: 'r1', endpoint: 'a:1', term: 5 })).toBe(false);
  });
});

describe('PartitionRouter', () => {
  test('with no leader known, asks a replica and follows its NOT_LEADER hint, then remembers the leader', async () => {
    const c = new Cluster();
    c.leader = 'c:1';
    const r = router(c);
    const res = await r.produce(produceReq());
    expect(res).toEqual({ baseOffset: 0, count: 1, duplicate: false });
    expect(r.table.get('orders', 0)?.endpoint).toBe('c:1');
    c.seen.length = 0;
    await r.produce(produceReq());
    expect(c.seen).toEqual(['produce@c:1']);
  });

  test('a stale table entry is corrected by the redirect', async () => {
    const c = new Cluster();
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r0', endpoint: 'a:1', term: 3 }, 'nats');
    await r.fetch({
      topic: 'orders',
      partition: 0,
      offset: 0,
      maxRecords: 10,
      maxBytes: 1000,
      waitMs: 0,
      requestId: 'x',
    });
    expect(c.seen).toEqual(['fetch@a:1', 'fetch@b:1']);
    expect(r.table.get('orders', 0)).toMatchObject({ endpoint: 'b:1', term: 3 });
  });

  test('a replica that cannot be reached is skipped for the next one', async () => {
    const c = new Cluster();
    c.behaviour.set('b:1', () => econnrefused());
    c.leader = 'c:1';
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    await r.produce(produceReq());
    expect(c.seen[0]).toBe('produce@b:1');
    expect(c.seen.at(-1)).toBe('produce@c:1');
    expect(r.table.get('orders', 0)?.endpoint).toBe('c:1');
  });

  test('UNAVAILABLE not_sent is retried elsewhere even for a produce', async () => {
    const c = new Cluster();
    c.behaviour.set('b:1', () => new DaftkaError('UNAVAILABLE', 'connect failed', { extra: { delivery: 'not_sent' } }));
    c.leader = 'a:1';
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    expect(isNotDelivered(new DaftkaError('UNAVAILABLE', 'x', { extra: { delivery: 'not_sent' } }))).toBe(true);
    await expect(r.produce(produceReq())).resolves.toMatchObject({ baseOffset: 0 });
  });

  test.each([
    [
      'the connection is lost after sending',
      () => new DaftkaError('UNAVAILABLE', 'lost', { extra: { delivery: 'maybe_sent' } }),
    ],
    ['the replica client times out', () => new DaftkaError('TIMEOUT', 'timeout')],
    ['a socket error of unknown effect', () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
  ])('a produce whose outcome is unknown (%s) → COMMIT_UNKNOWN, not resent', async (_why, err) => {
    const c = new Cluster();
    c.behaviour.set('b:1', () => err());
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    await expect(r.produce(produceReq())).rejects.toMatchObject({ code: 'COMMIT_UNKNOWN', status: 504 });
    expect(c.seen).toEqual(['produce@b:1']);
  });

  test('the replica gets whole-millisecond budgets a little under the router deadline', async () => {
    const c = new Cluster();
    const spy = jest.spyOn(c.leaderLog, 'produce');
    const fetchSpy = jest.spyOn(c.leaderLog, 'fetch');
    const r = router(c, { requestTimeoutMs: 1000 });
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    await r.produce(produceReq({ timeoutMs: 1333 }));
    const sent = spy.mock.calls[0][0].timeoutMs;
    expect(Number.isInteger(sent)).toBe(true);
    expect(sent).toBeLessThan(1333);
    expect(sent).toBeGreaterThan(1000);
    await r.fetch({ topic: 'orders', partition: 0, offset: 0, maxRecords: 1, maxBytes: 1, waitMs: 7, requestId: 'x' });
    expect(Number.isInteger(fetchSpy.mock.calls[0][0].waitMs)).toBe(true);
  });

  test('a produce with no answer before its deadline → COMMIT_UNKNOWN', async () => {
    const c = new Cluster();
    c.behaviour.set('b:1', () => new Promise((res) => setTimeout(res, 500)));
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    const started = Date.now();
    await expect(r.produce(produceReq({ timeoutMs: 50 }))).rejects.toMatchObject({ code: 'COMMIT_UNKNOWN' });
    expect(Date.now() - started).toBeLessThan(400);
  });

  test('reads are retried on another replica when the outcome is unknown', async () => {
    const c = new Cluster();
    let n = 0;
    c.behaviour.set('b:1', () =>
      n++ === 0 ? new DaftkaError('UNAVAILABLE', 'lost', { extra: { delivery: 'maybe_sent' } }) : undefined,
    );
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    await expect(r.getOffset({ group: 'g', topic: 'orders', partition: 0, requestId: 'x' })).resolves.toMatchObject({
      offset: null,
    });
  });

  test('replica answers such as NO_QUORUM pass through unchanged', async () => {
    const c = new Cluster();
    c.behaviour.set('b:1', () => new DaftkaError('NO_QUORUM', 'no quorum', { retryAfterMs: 200 }));
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    await expect(r.produce(produceReq())).rejects.toMatchObject({ code: 'NO_QUORUM', retryAfterMs: 200 });
  });

  test('redirects are bounded: replicas pointing at each other end in NOT_LEADER', async () => {
    const c = new Cluster();
    c.behaviour.set('a:1', () => new DaftkaError('NOT_LEADER', 'no', { leaderHint: 'b:1' }));
    c.behaviour.set('b:1', () => new DaftkaError('NOT_LEADER', 'no', { leaderHint: 'a:1' }));
    const r = router(c, { maxRedirects: 3 });
    r.acceptLeader('orders', 0, { leaderId: 'r0', endpoint: 'a:1', term: 2 }, 'nats');
    await expect(r.produce(produceReq())).rejects.toMatchObject({ code: 'NOT_LEADER', status: 503 });
    expect(c.seen).toHaveLength(4);
  });

  test('no leader anywhere until the deadline → 503 UNAVAILABLE (nothing was sent that could commit)', async () => {
    const c = new Cluster();
    for (const e of SEEDS) c.behaviour.set(e, () => econnrefused());
    const r = router(c);
    // A deadline long enough for several backoff rounds even on a loaded CI machine.
    await expect(r.produce(produceReq({ timeoutMs: 300 }))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      retryable: true,
    });
    // It kept trying other seeds until the deadline rather than giving up after the first refusal.
    expect(c.seen.length).toBeGreaterThan(1);
  });

  test('in-flight calls per endpoint are bounded → OVERLOADED with Retry-After', async () => {
    const c = new Cluster();
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    c.behaviour.set('b:1', () => gate);
    const r = router(c, { maxInflightPerEndpoint: 2, overloadRetryAfterMs: 700 });
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    const a = r.produce(produceReq());
    const b = r.produce(produceReq());
    await expect(r.produce(produceReq())).rejects.toMatchObject({ code: 'OVERLOADED', retryAfterMs: 700 });
    release();
    await Promise.all([a, b]);
    await expect(r.produce(produceReq())).resolves.toBeDefined();
  });

  test('announcements for unknown topics, partitions or bad endpoints are ignored (the table stays bounded)', () => {
    const r = router(new Cluster());
    expect(r.acceptLeader('other', 0, { leaderId: 'x', endpoint: 'x:1', term: 1 }, 'nats')).toBe(false);
    expect(r.acceptLeader('orders', 1, { leaderId: 'x', endpoint: 'x:1', term: 1 }, 'nats')).toBe(false);
    expect(r.acceptLeader('orders', 0, { leaderId: 'x', endpoint: 'not an endpoint', term: 1 }, 'nats')).toBe(false);
    expect(r.table.size).toBe(0);
  });

  test('through HTTP: unknown produce outcome → 504 COMMIT_UNKNOWN with Retry-After', async () => {
    const c = new Cluster();
    c.behaviour.set('b:1', () => new DaftkaError('UNAVAILABLE', 'lost', { extra: { delivery: 'maybe_sent' } }));
    const r = router(c);
    r.acceptLeader('orders', 0, { leaderId: 'r1', endpoint: 'b:1', term: 2 }, 'nats');
    const gw = await startGateway({ topics: [t], router: r });
    try {
      const res = await gw.req('POST', '/v1/topics/orders/records', { body: { records: [{ value: 'x' }] } });
      expect(res.status).toBe(504);
      expect(res.json).toMatchObject({ code: 'COMMIT_UNKNOWN', retryable: true });
      expect(res.headers.get('retry-after')).toBe('1');
    } finally {
      await gw.close();
    }
  });
});
