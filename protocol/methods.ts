import type {
  DeadLetterAdminRequest,
  DeadLetterPage,
  DeadLetterQuery,
  GroupLeaseInfo,
  GroupList,
  GroupListRequest,
  GroupPolicyRequest,
  GroupTarget,
  LeaseAckRequest,
  LeaseAckResult,
  LeaseFetchRequest,
  LeaseFetchResult,
  ReplayJobQuery,
  ReplayJobRequest,
  ReplayJobStatus,
} from '../common/leased-api';
import type {
  AddLearnerRequest,
  FetchRequest,
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  GroupOffsetQuery,
  MemberRequest,
  PartitionStatus,
  ProduceRequest,
  ProduceResult,
  StatusRequest,
  TransferLeadershipRequest,
} from '../common/partition-api';
import { CodecError } from './bytes';
import * as lc from './codecs/leased';
import * as pc from './codecs/partition';

/**
 * THE description of the client port: one entry per RPC method, in the manner of a gRPC
 * service definition. Everything else is derived from this table:
 *  - the client stub (protocol/partition-client.ts: one method per entry),
 *  - the server dispatch (protocol/serve.ts: one handler per entry, bodies decoded here),
 *  - the gateway's routing (protocol/leader-router.ts: deadline, retry rule and in-flight bound by `kind`),
 *  - the types the replica implements (`PartitionService` below).
 * Adding a method is one entry here plus its handler in the replica.
 *
 * Bodies are laid out in docs/wire-protocol.md. The request id never sits in a body: it travels
 * once, in the RPC header, and decoders take it as an argument.
 */

/**
 * How a caller treats the method — its budget, whether it may be resent, which in-flight bound
 * it counts against:
 *  - `produce`: a write whose outcome can be unknown. Budget = the request's own `timeoutMs`;
 *    never resent after it may have reached a replica (that failure is COMMIT_UNKNOWN; a retry
 *    with the same idempotency key is the client's call).
 *  - `poll`: a read that may long-poll (`waitMs`). Budget = waitMs + the default timeout; resent
 *    elsewhere on an unknown outcome; counted against the separate long-poll bound.
 *  - `write`: an idempotent write (offset commits, acks, policies, dead-letter admin, replay
 *    jobs): resending after an unknown outcome is safe.
 *  - `read`: a read without waiting: resent freely.
 *  - `admin`: membership and leadership changes (the operator's credential); not routed by the
 *    gateway.
 */
export type MethodKind = 'produce' | 'poll' | 'write' | 'read' | 'admin';

/**
 * The credential a connection must have proven (protocol/rpc-auth.ts) for the server to run the
 * method: `topic` = the topic's client key (the gateway, peers, tools), `admin` = the operator's
 * admin key. Checked from the RPC header alone, before the body is decoded.
 */
export type MethodAccess = 'topic' | 'admin';

export interface MethodSpec<Req extends { requestId: string }, Res> {
  /** Name on the wire (printable ASCII; a bounded metric label on the server). */
  readonly wire: string;
  readonly kind: MethodKind;
  readonly access: MethodAccess;
  /**
   * Only the partition's leader answers it (a follower says NOT_LEADER with a hint); an answer
   * therefore tells the caller where the leader is. `status` and `fetch` are answered by any replica.
   */
  readonly needsLeader: boolean;
  encodeRequest(req: Req): Buffer;
  decodeRequest(body: Buffer, requestId: string): Req;
  encodeResponse(res: Res): Buffer;
  decodeResponse(body: Buffer): Res;
}

/** An entry; `access` follows from `kind` (membership and leadership need the admin key). */
function method<Req extends { requestId: string }, Res>(
  spec: Omit<MethodSpec<Req, Res>, 'access'>,
): MethodSpec<Req, Res> {
  return { ...spec, access: spec.kind === 'admin' ? 'admin' : 'topic' };
}

const EMPTY = Buffer.alloc(0);

/** An entry whose answer is an empty body. */
function noAnswer<Req extends { requestId: string }>(
  wire: string,
  kind: MethodKind,
  encodeRequest: (req: Req) => Buffer,
  decodeRequest: (body: Buffer, requestId: string) => Req,
): MethodSpec<Req, void> {
  return method({
    wire,
    kind,
    needsLeader: true,
    encodeRequest,
    decodeRequest,
    encodeResponse: () => EMPTY,
    decodeResponse: (b) => pc.decodeEmpty(b, wire),
  });
}

export const METHODS = {
  // ---- the partition API ----
  produce: method<ProduceRequest, ProduceResult>({
    wire: 'partition.produce',
    kind: 'produce',
    needsLeader: true,
    encodeRequest: pc.encodeProduceRequest,
    decodeRequest: pc.decodeProduceRequest,
    encodeResponse: pc.encodeProduceResult,
    decodeResponse: pc.decodeProduceResult,
  }),
  fetch: method<FetchRequest, FetchResult>({
    wire: 'partition.fetch',
    kind: 'poll',
    needsLeader: false,
    encodeRequest: pc.encodeFetchRequest,
    decodeRequest: pc.decodeFetchRequest,
    encodeResponse: pc.encodeFetchResult,
    decodeResponse: pc.decodeFetchResult,
  }),
  commitOffset: noAnswer<GroupOffsetCommit>(
    'partition.commitOffset',
    'write',
    pc.encodeGroupOffsetCommit,
    pc.decodeGroupOffsetCommit,
  ),
  getOffset: method<GroupOffsetQuery, GroupOffset>({
    wire: 'partition.getOffset',
    kind: 'read',
    needsLeader: true,
    encodeRequest: pc.encodeGroupOffsetQuery,
    decodeRequest: pc.decodeGroupOffsetQuery,
    encodeResponse: pc.encodeGroupOffset,
    decodeResponse: pc.decodeGroupOffset,
  }),
  status: method<StatusRequest, PartitionStatus>({
    wire: 'partition.status',
    kind: 'read',
    needsLeader: false,
    encodeRequest: (r) => pc.encodePartitionRef(r.topic, r.partition),
    decodeRequest: (b, requestId) => ({ ...pc.decodePartitionRef(b), requestId }),
    encodeResponse: pc.encodeStatus,
    decodeResponse: pc.decodeStatus,
  }),

  // ---- membership and leadership (the operator) ----
  transferLeadership: noAnswer<TransferLeadershipRequest>(
    'admin.transferLeadership',
    'admin',
    pc.encodeTransferLeadership,
    pc.decodeTransferLeadership,
  ),
  addLearner: noAnswer<AddLearnerRequest>('admin.addLearner', 'admin', pc.encodeAddLearner, pc.decodeAddLearner),
  promote: noAnswer<MemberRequest>('admin.promote', 'admin', pc.encodeMemberRequest, pc.decodeMemberRequest),
  removeMember: noAnswer<MemberRequest>('admin.removeMember', 'admin', pc.encodeMemberRequest, pc.decodeMemberRequest),

  // ---- leased groups ----
  // A lease grant whose answer was lost only means those records come again after their lease,
  // so leased fetch is resent like any poll; acks and policies are idempotent on the replica.
  leaseFetch: method<LeaseFetchRequest, LeaseFetchResult>({
    wire: 'leased.fetch',
    kind: 'poll',
    needsLeader: true,
    encodeRequest: lc.encodeLeaseFetch,
    decodeRequest: lc.decodeLeaseFetch,
    encodeResponse: lc.encodeLeaseFetchResult,
    decodeResponse: lc.decodeLeaseFetchResult,
  }),
  leaseAck: method<LeaseAckRequest, LeaseAckResult[]>({
    wire: 'leased.ack',
    kind: 'write',
    needsLeader: true,
    encodeRequest: lc.encodeLeaseAck,
    decodeRequest: lc.decodeLeaseAck,
    encodeResponse: lc.encodeLeaseAckResults,
    decodeResponse: lc.decodeLeaseAckResults,
  }),
  setGroupPolicy: method<GroupPolicyRequest, GroupLeaseInfo>({
    wire: 'leased.setPolicy',
    kind: 'write',
    needsLeader: true,
    encodeRequest: lc.encodeGroupPolicy,
    decodeRequest: lc.decodeGroupPolicy,
    encodeResponse: lc.encodeGroupLeaseInfo,
    decodeResponse: lc.decodeGroupLeaseInfo,
  }),
  getGroupLeases: method<GroupTarget, GroupLeaseInfo>({
    wire: 'leased.group',
    kind: 'read',
    needsLeader: true,
    encodeRequest: lc.encodeGroupTarget,
    decodeRequest: lc.decodeGroupTarget,
    encodeResponse: lc.encodeGroupLeaseInfo,
    decodeResponse: lc.decodeGroupLeaseInfo,
  }),

  // Any replica may answer (the state is replicated; a follower's list may trail by a commit).
  listGroups: method<GroupListRequest, GroupList>({
    wire: 'partition.listGroups',
    kind: 'read',
    needsLeader: false,
    encodeRequest: lc.encodeGroupListRequest,
    decodeRequest: lc.decodeGroupListRequest,
    encodeResponse: lc.encodeGroupList,
    decodeResponse: lc.decodeGroupList,
  }),

  // ---- dead letters and replay jobs ----
  listDeadLetters: method<DeadLetterQuery, DeadLetterPage>({
    wire: 'deadletters.list',
    kind: 'read',
    needsLeader: true,
    encodeRequest: lc.encodeDeadLetterQuery,
    decodeRequest: lc.decodeDeadLetterQuery,
    encodeResponse: lc.encodeDeadLetterPage,
    decodeResponse: lc.decodeDeadLetterPage,
  }),
  adminDeadLetters: method<DeadLetterAdminRequest, { count: number }>({
    wire: 'deadletters.admin',
    kind: 'write',
    needsLeader: true,
    encodeRequest: lc.encodeDeadLetterAdmin,
    decodeRequest: lc.decodeDeadLetterAdmin,
    encodeResponse: lc.encodeCount,
    decodeResponse: lc.decodeCount,
  }),
  startReplay: method<ReplayJobRequest, ReplayJobStatus>({
    wire: 'replay.start',
    kind: 'write',
    needsLeader: true,
    encodeRequest: lc.encodeReplayJob,
    decodeRequest: lc.decodeReplayJob,
    encodeResponse: lc.encodeReplayStatus,
    decodeResponse: (b) => {
      const s = lc.decodeReplayStatus(b);
      if (s === null) throw new CodecError('bad_value', 'replay.start answered no job');
      return s;
    },
  }),
  getReplay: method<ReplayJobQuery, ReplayJobStatus | null>({
    wire: 'replay.get',
    kind: 'read',
    needsLeader: true,
    encodeRequest: lc.encodeReplayQuery,
    decodeRequest: lc.decodeReplayQuery,
    encodeResponse: lc.encodeReplayStatus,
    decodeResponse: lc.decodeReplayStatus,
  }),
} as const;

export type Methods = typeof METHODS;
export type MethodName = keyof Methods;
export type RequestOf<K extends MethodName> = Methods[K] extends MethodSpec<infer Q, infer _R> ? Q : never;
export type ResponseOf<K extends MethodName> = Methods[K] extends MethodSpec<infer _Q, infer R> ? R : never;

export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];

/** Every method of the client port as a function: what a replica implements and a client offers. */
export type PartitionService = { [K in MethodName]: (req: RequestOf<K>) => Promise<ResponseOf<K>> };

/** Membership and leadership (the operator's calls): exactly the entries of kind `admin`. */
export type AdminMethodName = 'transferLeadership' | 'addLearner' | 'promote' | 'removeMember';
export type PartitionAdmin = Pick<PartitionService, AdminMethodName>;

/** Everything the gateway asks of a partition, wherever its leader lives: all but admin. */
export type ClientMethodName = Exclude<MethodName, AdminMethodName>;
export type ReplicaClient = Pick<PartitionService, ClientMethodName>;
export const CLIENT_METHOD_NAMES = METHOD_NAMES.filter((n) => METHODS[n].kind !== 'admin') as ClientMethodName[];
// The type-level list above and the table's kinds must agree (types cannot read the kinds).
for (const n of METHOD_NAMES)
  if (
    (METHODS[n].kind === 'admin') !==
    (['transferLeadership', 'addLearner', 'promote', 'removeMember'] as const).includes(n as AdminMethodName)
  )
    throw new Error(`method ${n}: its kind and AdminMethodName disagree`);

/** Records and cumulative group offsets. */
export type PartitionMethodName = 'produce' | 'fetch' | 'commitOffset' | 'getOffset' | 'status';
export type PartitionClient = Pick<PartitionService, PartitionMethodName>;

/** Leased groups, dead letters and replay jobs. */
export type LeasedMethodName = Exclude<ClientMethodName, PartitionMethodName>;
export type LeasedPartitionClient = Pick<PartitionService, LeasedMethodName>;

/** Look a method up by its wire name (the server's dispatch). */
export function methodByWire(wire: string): MethodName | undefined {
  return BY_WIRE.get(wire);
}

const BY_WIRE = new Map<string, MethodName>(METHOD_NAMES.map((n) => [METHODS[n].wire, n]));
if (BY_WIRE.size !== METHOD_NAMES.length) throw new Error('two client-port methods share a wire name');
