import type { PartitionAdmin, PartitionClient } from '../../../protocol/methods';
import net from 'node:net';
import { DaftkaError } from '../../../common/errors';
import type {
  AddLearnerRequest,
  FetchRequest,
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  GroupOffsetQuery,
  MemberRequest,
  PartitionStatus,
  StatusRequest,
  ProduceRequest,
  ProduceResult,
  RecordOut,
  TransferLeadershipRequest,
} from '../../../common/partition-api';
import { METHODS } from '../../../protocol/methods';
import { RemotePartitionClient } from '../../../protocol/partition-client';
import { RpcClient } from '../../../protocol/rpc-client';
import { RpcServer } from '../../../protocol/rpc-server';
import { servePartition } from '../../../protocol/serve';
import { quietLogger, sleepMs, testRegistry } from '../../helpers/observe';

/**
 * A test-only in-memory partition: one log, idempotency keys, group offsets, and switches to
 * act as a follower or to hang. Enough to drive every call and error path over the wire.
 */
class MemoryPartition implements PartitionClient, PartitionAdmin {
  log: RecordOut[] = [];
  dedup = new Map<string, ProduceResult>();
  offsets = new Map<string, { offset: number; metadata?: string }>();
  follower = false;
  hangProduceMs = 0;
  seenRequestIds: string[] = [];
  adminCalls: unknown[] = [];

  private check(topic: string, partition: number, requestId: string) {
    this.seenRequestIds.push(requestId);
    if (topic !== 'orders' || partition !== 0) throw new DaftkaError('PARTITION_NOT_FOUND', `${topic}/${partition}`);
    if (this.follower)
      throw new DaftkaError('NOT_LEADER', 'this replica follows', { leaderHint: '127.0.0.1:7001', retryAfterMs: 0 });
  }

  async produce(req: ProduceRequest): Promise<ProduceResult> {
    this.check(req.topic, req.partition, req.requestId);
    if (this.hangProduceMs) await sleepMs(this.hangProduceMs);
    if (req.idempotencyKey !== undefined) {
      const prior = this.dedup.get(req.idempotencyKey);
      if (prior) return { ...prior, duplicate: true };
    }
    const baseOffset = this.log.length;
    for (const r of req.records)
      this.log.push({
        key: r.key && Buffer.from(r.key),
        value: Buffer.from(r.value),
        headers: r.headers.map(([k, v]) => [k, Buffer.from(v)]),
        timestampMs: r.timestampMs,
        offset: this.log.length,
      });
    const res = { baseOffset, count: req.records.length, duplicate: false };
    if (req.idempotencyKey !== undefined) this.dedup.set(req.idempotencyKey, res);
    return res;
  }

  async fetch(req: FetchRequest): Promise<FetchResult> {
    this.check(req.topic, req.partition, req.requestId);
    if (req.offset > this.log.length) throw new DaftkaError('OFFSET_OUT_OF_RANGE', `offset ${req.offset}`);
    const records = this.log.slice(req.offset, req.offset + req.maxRecords);
    return { records, nextOffset: req.offset + records.length, highWatermark: this.log.length, logStartOffset: 0 };
  }

  async commitOffset(req: GroupOffsetCommit): Promise<void> {
    this.check(req.topic, req.partition, req.requestId);
    this.offsets.set(req.group, { offset: req.offset, metadata: req.metadata });
  }

  async getOffset(req: GroupOffsetQuery): Promise<GroupOffset> {
    this.check(req.topic, req.partition, req.requestId);
    const o = this.offsets.get(req.group);
    const hw = this.log.length;
    return {
      group: req.group,
      topic: req.topic,
      partition: req.partition,
      offset: o?.offset ?? null,
      ...(o?.metadata !== undefined ? { metadata: o.metadata } : {}),
      highWatermark: hw,
      logStartOffset: 0,
      lag: hw - (o?.offset ?? 0),
    };
  }

  async status({ topic, partition, requestId }: StatusRequest): Promise<PartitionStatus> {
    this.seenRequestIds.push(requestId);
    return {
      topic,
      partition,
      replicaId: 'r0',
      role: this.follower ? 'follower' : 'leader',
      term: 3,
      leaderId: this.follower ? 'r1' : 'r0',
      leaderEndpoint: this.follower ? '127.0.0.1:7001' : null,
      highWatermark: this.log.length,
      logStartOffset: 0,
      commitIndex: this.log.length,
      appliedIndex: this.log.length,
      lastIndex: this.log.length,
      logBytes: 0,
      voters: ['r0', 'r1', 'r2'],
      learners: [],
    };
  }

  async transferLeadership(req: TransferLeadershipRequest) {
    this.adminCalls.push(['transferLeadership', req]);
  }
  async addLearner(req: AddLearnerRequest) {
    this.adminCalls.push(['addLearner', req]);
  }
  async promote(req: MemberRequest) {
    if (req.id === 'lagging') throw new DaftkaError('CONFLICT', 'learner lagging is not caught up');
    this.adminCalls.push(['promote', req]);
  }
  async removeMember(req: MemberRequest) {
    this.adminCalls.push(['removeMember', req]);
  }
}

jest.setTimeout(20_000);

let server: RpcServer;
let impl: MemoryPartition;
let rpc: RpcClient;
let remote: RemotePartitionClient;

beforeEach(async () => {
  impl = new MemoryPartition();
  server = new RpcServer({ host: '127.0.0.1', port: 0, logger: quietLogger(), registry: testRegistry() });
  servePartition(server, impl);
  const { port } = await server.start();
  rpc = new RpcClient({ host: '127.0.0.1', port });
  remote = new RemotePartitionClient(rpc, { produceGraceMs: 50 });
});
afterEach(async () => {
  rpc.close();
  await server.close();
});

async function rejection(p: Promise<unknown>): Promise<DaftkaError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DaftkaError);
    return e as DaftkaError;
  }
  throw new Error('expected a rejection');
}

const rec = (i: number) => ({
  key: i % 3 === 0 ? null : Buffer.from([0, 255, i & 0xff]),
  value: i % 5 === 0 ? new Uint8Array(0) : Buffer.alloc(1024, i & 0xff),
  headers: [
    ['trace', Buffer.from([0xde, 0xad, i & 0xff])],
    ['ünïcode', Buffer.alloc(0)],
  ] as Array<[string, Uint8Array]>,
  timestampMs: 1_700_000_000_000 + i,
});

describe('RemotePartitionClient ↔ servePartition', () => {
  it('produces a batch and fetches it back byte for byte, with the request id carried through', async () => {
    const records = Array.from({ length: 100 }, (_, i) => rec(i));
    const res = await remote.produce({ topic: 'orders', partition: 0, records, requestId: 'req-1', timeoutMs: 1000 });
    expect(res).toEqual({ baseOffset: 0, count: 100, duplicate: false });

    const got = await remote.fetch({
      topic: 'orders',
      partition: 0,
      offset: 0,
      maxRecords: 1000,
      maxBytes: 1 << 20,
      waitMs: 0,
      requestId: 'req-2',
    });
    expect(got.highWatermark).toBe(100);
    expect(got.nextOffset).toBe(100);
    got.records.forEach((r, i) => {
      expect(r.offset).toBe(i);
      expect(r.key === null ? null : Buffer.from(r.key).toString('hex')).toBe(
        records[i].key === null ? null : Buffer.from(records[i].key!).toString('hex'),
      );
      expect(Buffer.from(r.value).equals(Buffer.from(records[i].value))).toBe(true);
      expect(r.headers.map(([k, v]) => [k, Buffer.from(v).toString('hex')])).toEqual(
        records[i].headers.map(([k, v]) => [k, Buffer.from(v).toString('hex')]),
      );
      expect(r.timestampMs).toBe(records[i].timestampMs);
    });
    expect(impl.seenRequestIds).toEqual(['req-1', 'req-2']);
  });

  it('a retry with the same idempotency key returns the original offsets', async () => {
    const req = {
      topic: 'orders',
      partition: 0,
      records: [rec(1)],
      idempotencyKey: 'k-1',
      requestId: 'a',
      timeoutMs: 1000,
    };
    await remote.produce({ ...req, records: [rec(0)], idempotencyKey: undefined });
    expect(await remote.produce(req)).toEqual({ baseOffset: 1, count: 1, duplicate: false });
    expect(await remote.produce(req)).toEqual({ baseOffset: 1, count: 1, duplicate: true });
  });

  it('commits and reads group offsets, and reports status', async () => {
    await remote.produce({ topic: 'orders', partition: 0, records: [rec(1), rec(2)], requestId: 'a', timeoutMs: 500 });
    const q = { group: 'billing', topic: 'orders', partition: 0, requestId: 'q' };
    expect((await remote.getOffset(q)).offset).toBeNull();
    await remote.commitOffset({ ...q, offset: 1, metadata: 'host-7' });
    expect(await remote.getOffset(q)).toEqual({
      group: 'billing',
      topic: 'orders',
      partition: 0,
      offset: 1,
      metadata: 'host-7',
      highWatermark: 2,
      logStartOffset: 0,
      lag: 1,
    });
    const s = await remote.status({ topic: 'orders', partition: 0, requestId: 'st' });
    expect(s.role).toBe('leader');
    expect(s.voters).toEqual(['r0', 'r1', 'r2']);
  });

  it('admin calls reach the PartitionAdmin and errors come back typed', async () => {
    const t = { topic: 'orders', partition: 0, requestId: 'adm' };
    await remote.transferLeadership({ ...t, to: 'r2' });
    await remote.addLearner({ ...t, id: 'r3', endpoint: 'orders-0-3.orders:9093' });
    await remote.promote({ ...t, id: 'r3' });
    await remote.removeMember({ ...t, id: 'r0' });
    expect(impl.adminCalls.map((c) => (c as [string])[0])).toEqual([
      'transferLeadership',
      'addLearner',
      'promote',
      'removeMember',
    ]);
    expect((await rejection(remote.promote({ ...t, id: 'lagging' }))).code).toBe('CONFLICT');
  });

  it('a follower answers NOT_LEADER with the leader hint, on every method', async () => {
    impl.follower = true;
    const e = await rejection(
      remote.produce({ topic: 'orders', partition: 0, records: [rec(1)], requestId: 'x', timeoutMs: 100 }),
    );
    expect([e.code, e.leaderHint, e.retryable]).toEqual(['NOT_LEADER', '127.0.0.1:7001', true]);
    const f = await rejection(
      remote.fetch({ topic: 'orders', partition: 0, offset: 0, maxRecords: 1, maxBytes: 1, waitMs: 0, requestId: 'y' }),
    );
    expect(f.leaderHint).toBe('127.0.0.1:7001');
  });

  it('the wrong partition is PARTITION_NOT_FOUND; an offset past the end is OFFSET_OUT_OF_RANGE', async () => {
    expect(
      (await rejection(remote.getOffset({ group: 'g', topic: 'orders', partition: 9, requestId: 'r' }))).code,
    ).toBe('PARTITION_NOT_FOUND');
    expect(
      (
        await rejection(
          remote.fetch({
            topic: 'orders',
            partition: 0,
            offset: 5,
            maxRecords: 1,
            maxBytes: 1,
            waitMs: 0,
            requestId: 'r',
          }),
        )
      ).code,
    ).toBe('OFFSET_OUT_OF_RANGE');
  });

  it('a produce that outlives its timeout is COMMIT_UNKNOWN, not TIMEOUT', async () => {
    impl.hangProduceMs = 500;
    const e = await rejection(
      remote.produce({ topic: 'orders', partition: 0, records: [rec(1)], requestId: 'slow', timeoutMs: 20 }),
    );
    expect(e.code).toBe('COMMIT_UNKNOWN');
    expect(e.status).toBe(504);
  });

  it('a produce in flight when the connection drops is COMMIT_UNKNOWN; one that never left is UNAVAILABLE', async () => {
    impl.hangProduceMs = 1000;
    const p = remote.produce({ topic: 'orders', partition: 0, records: [rec(1)], requestId: 'x', timeoutMs: 5000 });
    await sleepMs(50);
    await server.close();
    expect((await rejection(p)).code).toBe('COMMIT_UNKNOWN');
    const again = await rejection(
      remote.produce({ topic: 'orders', partition: 0, records: [rec(1)], requestId: 'y', timeoutMs: 100 }),
    );
    expect(again.code).toBe('UNAVAILABLE');
  });

  it('a malformed request body is INVALID_REQUEST and the connection stays up', async () => {
    const e = await rejection(rpc.call(METHODS.produce.wire, Buffer.from([1, 2, 3])));
    expect(e.code).toBe('INVALID_REQUEST');
    expect(await remote.status({ topic: 'orders', partition: 0, requestId: 's' })).toMatchObject({ role: 'leader' });
  });

  it('values the wire cannot carry are refused client-side as INVALID_REQUEST', async () => {
    const e = await rejection(
      remote.fetch({
        topic: 'orders',
        partition: -1,
        offset: 0,
        maxRecords: 1,
        maxBytes: 1,
        waitMs: 0,
        requestId: 'r',
      }),
    );
    expect(e.code).toBe('INVALID_REQUEST');
  });

  it('methods the implementation lacks are unknown on that server (INVALID_REQUEST)', async () => {
    const s2 = new RpcServer({ host: '127.0.0.1', port: 0, logger: quietLogger(), registry: testRegistry() });
    servePartition(s2, { produce: (r) => impl.produce(r), status: (r) => impl.status(r) });
    const { port } = await s2.start();
    const c2 = new RpcClient({ host: '127.0.0.1', port });
    try {
      const e = await rejection(
        new RemotePartitionClient(c2).promote({ topic: 'orders', partition: 0, id: 'r1', requestId: 'r' }),
      );
      expect(e.code).toBe('INVALID_REQUEST');
    } finally {
      c2.close();
      await s2.close();
    }
  });

  it('a garbage answer to a produce is COMMIT_UNKNOWN', async () => {
    const liar = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end(Buffer.from('garbage garbage garbage')));
    });
    await new Promise<void>((r) => liar.listen(0, '127.0.0.1', r));
    const c = new RpcClient({ host: '127.0.0.1', port: (liar.address() as net.AddressInfo).port });
    try {
      const e = await rejection(
        new RemotePartitionClient(c).produce({
          topic: 'orders',
          partition: 0,
          records: [rec(1)],
          requestId: 'r',
          timeoutMs: 500,
        }),
      );
      expect(e.code).toBe('COMMIT_UNKNOWN');
    } finally {
      c.close();
      await new Promise((r) => liar.close(r));
    }
  });
});

it('a produce whose values the wire cannot carry is INVALID_REQUEST (nothing sent), not COMMIT_UNKNOWN', async () => {
  const r = { ...rec(1), timestampMs: 1.5 };
  const e = await rejection(
    remote.produce({ topic: 'orders', partition: 0, records: [r], requestId: 'r', timeoutMs: 100 }),
  );
  expect(e.code).toBe('INVALID_REQUEST');
  expect(impl.log).toHaveLength(0);
});
