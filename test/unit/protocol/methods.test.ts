import { PassThrough } from 'node:stream';
import { createLogger } from '../../../common/log';
import { createRegistry } from '../../../common/metrics';
import {
  CLIENT_METHOD_NAMES,
  METHOD_NAMES,
  METHODS,
  methodByWire,
  type MethodName,
  type PartitionService,
  type RequestOf,
  type ResponseOf,
} from '../../../protocol/methods';
import { RemotePartitionClient } from '../../../protocol/partition-client';
import { RpcClient } from '../../../protocol/rpc-client';
import { RpcServer } from '../../../protocol/rpc-server';
import { servePartition } from '../../../protocol/serve';

/**
 * The method table is the one description of the client port: each entry's codecs must be each
 * other's inverse, and the client stub and server dispatch derived from it must carry every
 * method end to end. A sample request and answer per method; a method added to the table
 * without one fails the first test.
 */

const bytes = (s: string) => new Uint8Array(Buffer.from(s));
const record = {
  key: bytes('k'),
  value: bytes('v'),
  headers: [['h', bytes('x')]] as Array<[string, Uint8Array]>,
  timestampMs: 7,
};
const policy = {
  maxAttempts: 3,
  leaseMs: 1000,
  backoffInitialMs: 10,
  backoffMaxMs: 100,
  backoffMultiplier: 2,
  deadLetter: true,
  ordered: false,
  orderingKey: false,
  expired: 'dead_letter' as const,
};
const job = {
  jobId: 'j1',
  topic: 'orders',
  partition: 0,
  state: 'running' as const,
  dryRun: false,
  ratePerSec: 10,
  matched: 2,
  written: 1,
  skipped: 0,
  createdMs: 5,
  finishedMs: null,
  target: null,
};
const t = { topic: 'orders', partition: 1, requestId: 'rq-1' };
const g = { ...t, group: 'billing' };

const SAMPLES: { [K in MethodName]: { req: RequestOf<K>; res: ResponseOf<K> } } = {
  produce: {
    req: {
      ...t,
      records: [record],
      idempotencyKey: 'ik',
      producer: { producerId: 'p', epoch: 1, seq: 4 },
      timeoutMs: 900,
    },
    res: { baseOffset: 10, count: 1, duplicate: false },
  },
  fetch: {
    req: { ...t, offset: 3, maxRecords: 10, maxBytes: 4096, waitMs: 50 },
    res: { records: [{ ...record, offset: 3 }], nextOffset: 4, highWatermark: 9, logStartOffset: 0 },
  },
  commitOffset: { req: { ...g, offset: 5, metadata: 'm' }, res: undefined },
  getOffset: {
    req: g,
    res: { group: 'billing', topic: 'orders', partition: 1, offset: 5, highWatermark: 9, logStartOffset: 0, lag: 4 },
  },
  status: {
    req: t,
    res: {
      topic: 'orders',
      partition: 1,
      replicaId: '0.abc',
      role: 'leader',
      term: 3,
      leaderId: '0.abc',
      leaderEndpoint: '127.0.0.1:9092',
      highWatermark: 9,
      logStartOffset: 0,
      commitIndex: 12,
      appliedIndex: 12,
      lastIndex: 12,
      logBytes: 100,
      voters: ['0.abc'],
      learners: [],
    },
  },
  transferLeadership: { req: { ...t, to: '1.def' }, res: undefined },
  addLearner: { req: { ...t, id: '2.ghi', endpoint: 'r2:9093' }, res: undefined },
  promote: { req: { ...t, id: '2.ghi' }, res: undefined },
  removeMember: { req: { ...t, id: '2.old' }, res: undefined },
  leaseFetch: {
    req: { ...g, maxRecords: 5, waitMs: 100, leaseMs: 2000 },
    res: {
      records: [{ ...record, offset: 3, attempt: 2, leaseUntilMs: 99 }],
      available: true,
      highWatermark: 9,
      committedOffset: 3,
    },
  },
  leaseAck: {
    req: { ...g, items: [{ offset: 3, attempt: 2, action: 'release', delayMs: 50, error: 'Boom: x' }] },
    res: [{ status: 'ok', deadLettered: true }],
  },
  setGroupPolicy: {
    req: { ...g, policy: { maxAttempts: 3 } },
    res: {
      group: 'billing',
      topic: 'orders',
      partition: 1,
      override: { maxAttempts: 3 },
      effective: policy,
      committedOffset: null,
      highWatermark: 9,
      leased: 1,
      waiting: 0,
      done: 0,
      known: true,
    },
  },
  getGroupLeases: {
    req: g,
    res: {
      group: 'billing',
      topic: 'orders',
      partition: 1,
      override: null,
      effective: policy,
      committedOffset: 2,
      highWatermark: 9,
      leased: 0,
      waiting: 0,
      done: 0,
      known: false,
    },
  },
  listDeadLetters: {
    req: { ...t, filter: { group: 'billing', states: ['active'] }, afterSeq: 1, limit: 10 },
    res: {
      items: [
        {
          topic: 'orders',
          partition: 1,
          seq: 2,
          group: 'billing',
          originOffset: 3,
          record,
          attempts: 2,
          lastError: 'Boom: x',
          errorClass: 'Boom',
          firstDeliveryMs: 1,
          lastDeliveryMs: 2,
          deadLetteredMs: 3,
          state: 'active',
        },
      ],
      nextAfterSeq: null,
    },
  },
  adminDeadLetters: { req: { ...t, action: 'archive', filter: { seqs: [2] } }, res: { count: 1 } },
  startReplay: {
    req: { ...t, jobId: 'j1', filter: {}, ratePerSec: 10, dryRun: false, target: { topic: 'other', partitions: 3 } },
    res: job,
  },
  getReplay: { req: { ...t, jobId: 'j1' }, res: job },
  listGroups: {
    req: { ...t, limit: 50 },
    res: { groups: ['alpha', 'billing'], truncated: true },
  },
};

/** Decoded byte fields come back as views; compare contents. */
const plain = (v: unknown) =>
  v === undefined ? undefined : JSON.parse(JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? [...x] : x)));

describe('the client-port method table', () => {
  test.each(METHOD_NAMES)(
    '%s: request and answer codecs are inverse, the request id travels outside the body',
    (name) => {
      const spec = METHODS[name] as unknown as {
        encodeRequest(r: unknown): Buffer;
        decodeRequest(b: Buffer, id: string): { requestId: string };
        encodeResponse(r: unknown): Buffer;
        decodeResponse(b: Buffer): unknown;
      };
      const { req, res } = SAMPLES[name] as { req: { requestId: string }; res: unknown };
      const body = spec.encodeRequest(req);
      expect(body.includes(Buffer.from(req.requestId))).toBe(false);
      expect(plain(spec.decodeRequest(body, req.requestId))).toEqual(plain(req));
      expect(plain(spec.decodeResponse(spec.encodeResponse(res)))).toEqual(plain(res));
    },
  );

  test('wire names are unique printable ASCII and map back to their entry; admin methods are not routed', () => {
    for (const n of METHOD_NAMES) {
      expect(METHODS[n].wire).toMatch(/^[\x21-\x7e]{1,255}$/);
      expect(methodByWire(METHODS[n].wire)).toBe(n);
    }
    expect(METHOD_NAMES.filter((n) => !CLIENT_METHOD_NAMES.includes(n as never))).toEqual([
      'transferLeadership',
      'addLearner',
      'promote',
      'removeMember',
    ]);
  });

  test('the derived client and server carry every method of the table end to end', async () => {
    const seen: string[] = [];
    const impl = Object.fromEntries(
      METHOD_NAMES.map((n) => [
        n,
        async (req: { requestId: string }) => {
          seen.push(`${n}:${req.requestId}`);
          return SAMPLES[n].res;
        },
      ]),
    ) as unknown as PartitionService;
    const logger = createLogger('test', { level: 'error', stream: new PassThrough() });
    const server = new RpcServer({ host: '127.0.0.1', port: 0, logger, registry: createRegistry('test') });
    servePartition(server, impl);
    const { port } = await server.start();
    const rpc = new RpcClient({ host: '127.0.0.1', port });
    try {
      const client = new RemotePartitionClient(rpc);
      for (const n of METHOD_NAMES) {
        const got = await (client[n] as (r: unknown) => Promise<unknown>)(SAMPLES[n].req);
        expect(plain(got)).toEqual(plain(SAMPLES[n].res));
      }
      expect(seen).toEqual(METHOD_NAMES.map((n) => `${n}:rq-1`));
    } finally {
      rpc.close();
      await server.close();
    }
  });
});
