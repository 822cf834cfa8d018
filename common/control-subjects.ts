/**
 * The NATS control channel (DESIGN §5): versioned subjects, JSON payloads with a `v` field.
 * NATS is the control channel only; losing it never stops reads or writes.
 */
import { parseControlAuth, type ControlAuth } from './control-auth';

export const SUBJECTS = {
  leader: (topic: string, partition: number) => `daftka.v1.leader.${topic}.${partition}`,
  leaderAll: 'daftka.v1.leader.>',
  status: (topic: string, partition: number, replica: string) =>
    `daftka.v1.status.${topic}.${partition}.${replica.replace(/[.*>\s]/g, '_')}`,
  statusAll: 'daftka.v1.status.>',
  ctl: (topic: string, partition: number) => `daftka.v1.ctl.${topic}.${partition}`,
  discover: (topic: string) => `daftka.v1.discover.${topic}`,
  /** Each operator instance's health, every few seconds (the gateway's readiness report reads it). */
  operatorHealth: 'daftka.v1.operator.health',
} as const;

/** How often each operator instance publishes its health. */
export const OPERATOR_HEALTH_INTERVAL_MS = 5000;

/** An operator instance's health report (SUBJECTS.operatorHealth). */
export interface OperatorHealth {
  v: 1;
  instance: string;
  /** Holds the Lease: the instance that reconciles. */
  leader: boolean;
  /** Its caches are synced (a leader that is not yet synced does not reconcile). */
  synced: boolean;
  /** Reconcile errors since it started leading. */
  reconcileErrors: number;
  /** The latest reconcile error: when, what kind, the message (≤ 300 characters). */
  lastError: { atMs: number; kind: string; message: string } | null;
  ts: number;
}

export interface LeaderAnnouncement {
  v: 1;
  topic: string;
  partition: number;
  term: number;
  leaderId: string;
  /** host:port of the leader's client port. */
  endpoint: string;
  highWatermark: number;
  ts: number;
  /** protocol/rpc-auth.ts leaderSig with the topic's client key (absent: the replica has no secret). */
  sig?: string;
}

export interface StatusReport {
  v: 1;
  topic: string;
  partition: number;
  replicaId: string;
  incarnation: string;
  role: string;
  term: number;
  leaderId: string | null;
  lastIndex: number;
  commitIndex: number;
  appliedIndex: number;
  highWatermark: number;
  logStartOffset: number;
  logBytes: number;
  /** Leader only: entries each follower is behind. */
  lag?: Record<string, number>;
  voters: string[];
  learners: string[];
  ready: boolean;
  /** Free and total bytes of the data directory's filesystem (statfs); absent before the first check. */
  freeBytes?: number;
  capacityBytes?: number;
  /** Produce is refused STORAGE_FULL: free space below the reserve, or a write held after ENOSPC. */
  diskFull?: boolean;
  ts: number;
  /** HMAC with the topic's client key (common/control-auth.ts reportSig). */
  sig?: string;
}

export interface DiscoverReply {
  v: 1;
  partitions: Array<{ partition: number; leaderId: string; endpoint: string; term: number; sig?: string }>;
}

/** `auth`: the operator's signature with the topic's admin key (common/control-auth.ts); never on status. */
export type ControlRequest =
  | { v: 1; op: 'status' }
  | { v: 1; op: 'transferLeadership'; to: string; auth?: ControlAuth }
  | { v: 1; op: 'addLearner'; id: string; endpoint?: string; auth?: ControlAuth }
  | { v: 1; op: 'promote'; id: string; auth?: ControlAuth }
  | { v: 1; op: 'removeMember'; id: string; auth?: ControlAuth };

export type ControlReply = { v: 1; ok: true; status?: unknown } | { v: 1; ok: false; code: string; detail: string };

/** Validate a control request at the boundary; returns a precise error message or the request. */
export function parseControlRequest(raw: unknown): ControlRequest | string {
  const req = parseControlOp(raw);
  if (typeof req === 'string' || req.op === 'status') return req;
  const r = raw as Record<string, unknown>;
  if (r.auth === undefined) return req;
  const auth = parseControlAuth(r.auth);
  return typeof auth === 'string' ? auth : { ...req, auth };
}

function parseControlOp(raw: unknown): ControlRequest | string {
  if (typeof raw !== 'object' || raw === null) return 'control request must be a JSON object';
  const r = raw as Record<string, unknown>;
  if (r.v !== 1) return `unsupported control request version ${JSON.stringify(r.v)}; expected 1`;
  const str = (k: string) => (typeof r[k] === 'string' && (r[k] as string).length > 0 ? (r[k] as string) : undefined);
  switch (r.op) {
    case 'status':
      return { v: 1, op: 'status' };
    case 'transferLeadership':
      return str('to')
        ? { v: 1, op: 'transferLeadership', to: str('to')! }
        : 'transferLeadership needs "to" (a replica id)';
    case 'addLearner':
      return str('id')
        ? { v: 1, op: 'addLearner', id: str('id')!, endpoint: str('endpoint') }
        : 'addLearner needs "id"';
    case 'promote':
    case 'removeMember':
      return str('id') ? { v: 1, op: r.op, id: str('id')! } : `${r.op} needs "id"`;
    default:
      return `unknown control op ${JSON.stringify(r.op)}; expected status, transferLeadership, addLearner, promote or removeMember`;
  }
}
