import type { LeasedPartitionClient } from '../../../protocol/methods';
import { DaftkaError } from '../../../common/errors';
import type {
  DeadLetterAdminRequest,
  DeadLetterPage,
  DeadLetterQuery,
  GroupLeaseInfo,
  GroupPolicyRequest,
  GroupList,
  GroupListRequest,
  GroupTarget,
  LeaseAckRequest,
  LeaseAckResult,
  LeaseFetchRequest,
  LeaseFetchResult,
  LeasePolicy,
  ReplayJobQuery,
  ReplayJobRequest,
  ReplayJobStatus,
} from '../../../common/leased-api';
import { createLogger } from '../../../common/log';
import { createRegistry } from '../../../common/metrics';
import { CommandKind, encodeCommand } from '../../../replica/state/commands';
import { LeasedService } from '../../../replica/leased/service';
import { DEFAULT_LEASE_POLICY } from '../../../replica/leased/leases';
import type { Entry } from '../../../replica/raft';
import { PartitionState } from '../../../replica/state/partition-state';
import { PassThrough } from 'node:stream';

/**
 * Leased partitions for gateway unit tests: the real state machine and the real leader service
 * (replica/leased/service.ts) per partition, with a "Raft" that applies each proposal at once.
 * So the gateway is tested against the actual lease rules, not a re-implementation of them.
 */
interface Part {
  state: PartitionState;
  service: LeasedService;
  entries: Map<number, Uint8Array>;
  index: number;
}

export class FakeLeased implements LeasedPartitionClient {
  readonly parts = new Map<string, Part>();
  readonly calls: Array<{ op: string; topic: string; partition: number }> = [];
  /** Return an error to throw for a call, or undefined to serve it. */
  fail: (op: string, topic: string, partition: number) => unknown = () => undefined;

  constructor(
    private readonly defaults: LeasePolicy = { ...DEFAULT_LEASE_POLICY, leaseMs: 1000, backoffInitialMs: 0 },
  ) {}

  part(topic: string, partition: number): Part {
    const k = `${topic}/${partition}`;
    const p = this.parts.get(k);
    if (p) return p;
    const state = new PartitionState({ dedupWindowMs: 3600_000 });
    const entries = new Map<number, Uint8Array>();
    const part: Part = { state, entries, index: 0, service: undefined as unknown as LeasedService };
    part.service = new LeasedService({
      topic,
      partition,
      state,
      checkTarget: (t, pp) => {
        if (t !== topic || pp !== partition) throw new DaftkaError('PARTITION_NOT_FOUND', 'wrong partition');
      },
      requireLeader: () => {},
      isLeader: () => true,
      propose: async (data) => {
        const i = ++part.index;
        entries.set(i, data);
        const r = state.apply(i, data).result;
        queueMicrotask(() => part.service.onApplied());
        return r;
      },
      topicWriter: () => null,
      readEntry: async (i): Promise<Entry | undefined> => {
        const data = entries.get(i);
        return data === undefined ? undefined : { index: i, term: 1, type: 0 as Entry['type'], data };
      },
      logger: createLogger('fake-leased', { stream: new PassThrough(), level: 'error' }),
      registry: createRegistry('fake', { defaultMetrics: false }),
      settings: { defaults: this.defaults, deadLetterRetentionMs: -1, sweepIntervalMs: 50, maxWaiters: 100 },
    });
    this.parts.set(k, part);
    return part;
  }

  /** Append records to a partition (as a committed produce). */
  produce(topic: string, partition: number, values: string[], key: string | null = null): void {
    const p = this.part(topic, partition);
    const data = encodeCommand({
      kind: CommandKind.Produce,
      leaderTimeMs: Date.now(),
      records: values.map((v) => ({
        key: key === null ? null : Buffer.from(key),
        value: Buffer.from(v),
        headers: [['origin', Buffer.from('test')]],
        timestampMs: 1_700_000_000_000,
      })),
    });
    const i = ++p.index;
    p.entries.set(i, data);
    p.state.apply(i, data);
    p.service.onApplied();
  }

  /** Run the leader loops of every partition once (exhausted leases, replay batches). */
  async tick(): Promise<void> {
    for (const p of this.parts.values()) {
      await p.service.sweep();
      await p.service.runReplays();
    }
  }

  private svc(op: string, topic: string, partition: number): LeasedService {
    this.calls.push({ op, topic, partition });
    const e = this.fail(op, topic, partition);
    if (e !== undefined) throw e;
    return this.part(topic, partition).service;
  }

  leaseFetch(req: LeaseFetchRequest): Promise<LeaseFetchResult> {
    return this.svc('leaseFetch', req.topic, req.partition).leaseFetch(req);
  }
  leaseAck(req: LeaseAckRequest): Promise<LeaseAckResult[]> {
    return this.svc('leaseAck', req.topic, req.partition).leaseAck(req);
  }
  setGroupPolicy(req: GroupPolicyRequest): Promise<GroupLeaseInfo> {
    return this.svc('setGroupPolicy', req.topic, req.partition).setGroupPolicy(req);
  }
  listGroups(req: GroupListRequest): Promise<GroupList> {
    return this.svc('listGroups', req.topic, req.partition).listGroups(req);
  }

  getGroupLeases(req: GroupTarget): Promise<GroupLeaseInfo> {
    return this.svc('getGroupLeases', req.topic, req.partition).getGroupLeases(req);
  }
  listDeadLetters(q: DeadLetterQuery): Promise<DeadLetterPage> {
    return this.svc('listDeadLetters', q.topic, q.partition).listDeadLetters(q);
  }
  adminDeadLetters(req: DeadLetterAdminRequest): Promise<{ count: number }> {
    return this.svc('adminDeadLetters', req.topic, req.partition).adminDeadLetters(req);
  }
  startReplay(req: ReplayJobRequest): Promise<ReplayJobStatus> {
    return this.svc('startReplay', req.topic, req.partition).startReplay(req);
  }
  getReplay(q: ReplayJobQuery): Promise<ReplayJobStatus | null> {
    return this.svc('getReplay', q.topic, q.partition).getReplay(q);
  }
}
