import { DaftkaError } from '../common/errors';
import type {
  DeadLetterAdminRequest,
  DeadLetterPage,
  DeadLetterQuery,
  GroupLeaseInfo,
  GroupPolicyRequest,
  GroupTarget,
  LeaseAckRequest,
  LeaseAckResult,
  LeasedPartitionClient,
  LeaseFetchRequest,
  LeaseFetchResult,
  ReplayJobQuery,
  ReplayJobRequest,
  ReplayJobStatus,
} from '../common/leased-api';
import type { PartitionClient } from '../common/partition-api';
import type { PartitionRouter } from './router';

/**
 * The leased-group and dead-letter calls, routed to each partition's leader by the
 * PartitionRouter (leader table, redirects, in-flight bounds). The replica clients the router
 * holds (RemotePartitionClient) speak these calls too.
 *
 * Retries on an unknown outcome are safe for all of them: a lease grant whose answer was lost
 * only means those records are redelivered after their lease; acks, policies, archive/purge and
 * job creation are idempotent on the replica.
 */
export class RoutedLeasedClient implements LeasedPartitionClient {
  constructor(private readonly router: PartitionRouter) {}

  private leased(c: PartitionClient): LeasedPartitionClient {
    const l = c as Partial<LeasedPartitionClient> & PartitionClient;
    if (typeof l.leaseFetch !== 'function')
      throw new DaftkaError('NOT_IMPLEMENTED', 'the replica client does not support leased groups');
    return l as LeasedPartitionClient;
  }

  private get timeoutMs(): number {
    return this.router.requestTimeoutMs;
  }

  leaseFetch(req: LeaseFetchRequest): Promise<LeaseFetchResult> {
    return this.router.route(req.topic, req.partition, req.requestId, 'fetch', req.waitMs + this.timeoutMs, (c, rem) =>
      this.leased(c).leaseFetch({
        ...req,
        waitMs: Math.max(0, Math.floor(Math.min(req.waitMs, rem - this.timeoutMs))),
      }),
    );
  }

  leaseAck(req: LeaseAckRequest): Promise<LeaseAckResult[]> {
    return this.router.route(req.topic, req.partition, req.requestId, 'commit', this.timeoutMs, (c) =>
      this.leased(c).leaseAck(req),
    );
  }

  setGroupPolicy(req: GroupPolicyRequest): Promise<GroupLeaseInfo> {
    return this.router.route(req.topic, req.partition, req.requestId, 'commit', this.timeoutMs, (c) =>
      this.leased(c).setGroupPolicy(req),
    );
  }

  getGroupLeases(req: GroupTarget): Promise<GroupLeaseInfo> {
    return this.router.route(req.topic, req.partition, req.requestId, 'offset', this.timeoutMs, (c) =>
      this.leased(c).getGroupLeases(req),
    );
  }

  listDeadLetters(q: DeadLetterQuery): Promise<DeadLetterPage> {
    return this.router.route(q.topic, q.partition, q.requestId, 'offset', this.timeoutMs, (c) =>
      this.leased(c).listDeadLetters(q),
    );
  }

  adminDeadLetters(req: DeadLetterAdminRequest): Promise<{ count: number }> {
    return this.router.route(req.topic, req.partition, req.requestId, 'commit', this.timeoutMs, (c) =>
      this.leased(c).adminDeadLetters(req),
    );
  }

  startReplay(req: ReplayJobRequest): Promise<ReplayJobStatus> {
    return this.router.route(req.topic, req.partition, req.requestId, 'commit', this.timeoutMs, (c) =>
      this.leased(c).startReplay(req),
    );
  }

  getReplay(q: ReplayJobQuery): Promise<ReplayJobStatus | null> {
    return this.router.route(q.topic, q.partition, q.requestId, 'offset', this.timeoutMs, (c) =>
      this.leased(c).getReplay(q),
    );
  }
}
