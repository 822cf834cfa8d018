import { DaftkaError, isDaftkaError } from '../../common/errors';
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
} from '../../common/leased-api';
import type {
  AddLearnerRequest,
  FetchRequest,
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  GroupOffsetQuery,
  MemberRequest,
  PartitionAdmin,
  PartitionClient,
  PartitionStatus,
  ProduceRequest,
  ProduceResult,
  TransferLeadershipRequest,
} from '../../common/partition-api';
import { CodecError } from '../transport/bytes';
import * as codec from './partition-api-codec';
import { PARTITION_METHODS as M } from './partition-api-codec';
import * as lc from './leased-codec';
import { deliveryOf, type RpcClient } from './rpc-client';

export interface RemotePartitionClientOptions {
  /** RPC budget for calls that carry no timeout of their own (offsets, status, admin). Default 5000 ms. */
  defaultTimeoutMs?: number;
  /**
   * Extra time a produce's RPC waits beyond the request's own `timeoutMs`, so the replica's
   * COMMIT_UNKNOWN answer arrives before the client gives up. Default 1000 ms.
   */
  produceGraceMs?: number;
}

export const REMOTE_CLIENT_DEFAULTS = { defaultTimeoutMs: 5000, produceGraceMs: 1000 } as const;

/**
 * The partition API of one replica, over its client port. The gateway keeps one per leader
 * endpoint. Errors are DaftkaErrors; for produce, any failure after the request may have
 * reached the replica — TIMEOUT, or UNAVAILABLE with the connection lost mid-call, or an answer
 * that does not decode — becomes COMMIT_UNKNOWN (DESIGN §3): the batch may or may not be
 * committed, and a retry with the same idempotency key is safe. Failures before sending
 * (client OVERLOADED, connection refused) keep their code: nothing was written.
 */
export class RemotePartitionClient implements PartitionClient, PartitionAdmin, LeasedPartitionClient {
  private readonly defaultTimeoutMs: number;
  private readonly produceGraceMs: number;

  constructor(
    readonly rpc: RpcClient,
    opts: RemotePartitionClientOptions = {},
  ) {
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? REMOTE_CLIENT_DEFAULTS.defaultTimeoutMs;
    this.produceGraceMs = opts.produceGraceMs ?? REMOTE_CLIENT_DEFAULTS.produceGraceMs;
  }

  async produce(req: ProduceRequest): Promise<ProduceResult> {
    const encoded = encode(codec.encodeProduceRequest, req);
    try {
      const body = await this.rpc.call(M.produce, encoded, {
        timeoutMs: req.timeoutMs + this.produceGraceMs,
        requestId: req.requestId,
      });
      return codec.decodeProduceResult(body);
    } catch (e) {
      throw produceFailure(e, this.rpc.endpoint);
    }
  }

  async fetch(req: FetchRequest): Promise<FetchResult> {
    return this.call(M.fetch, encode(codec.encodeFetchRequest, req), req.requestId, codec.decodeFetchResult, {
      timeoutMs: req.waitMs + this.defaultTimeoutMs,
    });
  }

  async commitOffset(req: GroupOffsetCommit): Promise<void> {
    await this.call(M.commitOffset, encode(codec.encodeGroupOffsetCommit, req), req.requestId, (b) =>
      codec.decodeEmpty(b, 'commitOffset'),
    );
  }

  async getOffset(req: GroupOffsetQuery): Promise<GroupOffset> {
    return this.call(M.getOffset, encode(codec.encodeGroupOffsetQuery, req), req.requestId, codec.decodeGroupOffset);
  }

  async status(topic: string, partition: number, requestId: string): Promise<PartitionStatus> {
    const body = encode(() => codec.encodePartitionRef(topic, partition), undefined);
    return this.call(M.status, body, requestId, codec.decodeStatus);
  }

  async transferLeadership(req: TransferLeadershipRequest): Promise<void> {
    await this.admin(M.transferLeadership, encode(codec.encodeTransferLeadership, req), req.requestId);
  }

  async addLearner(req: AddLearnerRequest): Promise<void> {
    await this.admin(M.addLearner, encode(codec.encodeAddLearner, req), req.requestId);
  }

  async promote(req: MemberRequest): Promise<void> {
    await this.admin(M.promote, encode(codec.encodeMemberRequest, req), req.requestId);
  }

  async removeMember(req: MemberRequest): Promise<void> {
    await this.admin(M.removeMember, encode(codec.encodeMemberRequest, req), req.requestId);
  }

  // ---- leased groups and dead letters (replica/client-protocol/leased-codec.ts) ----

  async leaseFetch(req: LeaseFetchRequest): Promise<LeaseFetchResult> {
    return this.call(
      lc.LEASED_METHODS.leaseFetch,
      encode(lc.encodeLeaseFetch, req),
      req.requestId,
      lc.decodeLeaseFetchResult,
      {
        timeoutMs: req.waitMs + this.defaultTimeoutMs,
      },
    );
  }

  async leaseAck(req: LeaseAckRequest): Promise<LeaseAckResult[]> {
    return this.call(
      lc.LEASED_METHODS.leaseAck,
      encode(lc.encodeLeaseAck, req),
      req.requestId,
      lc.decodeLeaseAckResults,
    );
  }

  async setGroupPolicy(req: GroupPolicyRequest): Promise<GroupLeaseInfo> {
    return this.call(
      lc.LEASED_METHODS.setGroupPolicy,
      encode(lc.encodeGroupPolicy, req),
      req.requestId,
      lc.decodeGroupLeaseInfo,
    );
  }

  async getGroupLeases(req: GroupTarget): Promise<GroupLeaseInfo> {
    return this.call(
      lc.LEASED_METHODS.getGroupLeases,
      encode(lc.encodeGroupTarget, req),
      req.requestId,
      lc.decodeGroupLeaseInfo,
    );
  }

  async listDeadLetters(q: DeadLetterQuery): Promise<DeadLetterPage> {
    return this.call(
      lc.LEASED_METHODS.listDeadLetters,
      encode(lc.encodeDeadLetterQuery, q),
      q.requestId,
      lc.decodeDeadLetterPage,
    );
  }

  async adminDeadLetters(req: DeadLetterAdminRequest): Promise<{ count: number }> {
    return this.call(
      lc.LEASED_METHODS.adminDeadLetters,
      encode(lc.encodeDeadLetterAdmin, req),
      req.requestId,
      lc.decodeCount,
    );
  }

  async startReplay(req: ReplayJobRequest): Promise<ReplayJobStatus> {
    const s = await this.call(
      lc.LEASED_METHODS.startReplay,
      encode(lc.encodeReplayJob, req),
      req.requestId,
      lc.decodeReplayStatus,
    );
    if (s === null) throw new DaftkaError('INTERNAL', `replay job ${req.jobId} was not created`);
    return s;
  }

  async getReplay(q: ReplayJobQuery): Promise<ReplayJobStatus | null> {
    return this.call(lc.LEASED_METHODS.getReplay, encode(lc.encodeReplayQuery, q), q.requestId, lc.decodeReplayStatus);
  }

  private async admin(method: string, body: Buffer, requestId: string): Promise<void> {
    return this.call(method, body, requestId, (b) => codec.decodeEmpty(b, method));
  }

  private async call<T>(
    method: string,
    body: Buffer,
    requestId: string,
    decode: (b: Buffer) => T,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    const res = await this.rpc.call(method, body, { timeoutMs: opts.timeoutMs ?? this.defaultTimeoutMs, requestId });
    try {
      return decode(res);
    } catch (e) {
      if (e instanceof CodecError)
        throw new DaftkaError('INTERNAL', `malformed ${method} answer from ${this.rpc.endpoint}: ${e.message}`);
      throw e;
    }
  }
}

/** Encoding failures are the caller's input (a value out of range): INVALID_REQUEST, nothing sent. */
function encode<T>(fn: (x: T) => Buffer, x: T): Buffer {
  try {
    return fn(x);
  } catch (e) {
    if (e instanceof CodecError) throw new DaftkaError('INVALID_REQUEST', e.message);
    throw e;
  }
}

function produceFailure(e: unknown, endpoint: string): unknown {
  if (!isDaftkaError(e)) {
    if (e instanceof CodecError)
      return new DaftkaError('COMMIT_UNKNOWN', `malformed produce answer from ${endpoint}: ${e.message}`, { cause: e });
    return e;
  }
  if (e.code === 'TIMEOUT' || (e.code === 'UNAVAILABLE' && deliveryOf(e) === 'maybe_sent'))
    return new DaftkaError(
      'COMMIT_UNKNOWN',
      `produce to ${endpoint}: ${e.message}; the batch may or may not be committed`,
      {
        cause: e,
      },
    );
  return e;
}
