import { DaftkaError } from '../../common/errors';
import type { LeasePolicy, LeasePolicyOverride } from '../../common/leased-api';
import type { Logger } from '../../common/log';
import type { promClient } from '../../common/metrics';
import { LEASE_POLICY_BOUNDS } from '../../common/limits';
import { GROUP_NAME_MAX_CHARS } from '../../common/names';
import type { TopicWriter } from '../control/topic-writer';
import type { Entry } from '../raft';
import type { ApplyResult, PartitionState } from '../state/partition-state';
import type { LeasedApplyOutput } from './state';

/** What the leased stack needs of its replica (wired in replica/replica.ts), and shared checks. */

export const PROPOSE_TIMEOUT_MS = 5000;

export interface LeasedSettings {
  /** The topic's defaults; a group's policy overrides them field by field. */
  defaults: LeasePolicy;
  /** Dead letters older than this are purged (ms; < 0 keeps them forever). */
  deadLetterRetentionMs: number;
  /** Period of the sweep (exhausted leases, retention) and of the replay runner. */
  sweepIntervalMs: number;
  /** Long-polls waiting at once; more are answered at once (empty). */
  maxWaiters: number;
  /** Records whose grant facts the leader caches (facts.ts); default FACTS_CACHE_ENTRIES. */
  factsCacheEntries?: number;
}

export interface LeasedHost {
  topic: string;
  partition: number;
  state: PartitionState;
  /** Throws PARTITION_NOT_FOUND. */
  checkTarget(topic: string, partition: number): void;
  /** Throws NOT_LEADER (with a hint). */
  requireLeader(): void;
  isLeader(): boolean;
  /** Propose a command; resolves with what applying it returned. */
  propose(data: Uint8Array, timeoutMs: number): Promise<ApplyResult>;
  /** One log entry, if this replica has it. */
  readEntry(logIndex: number): Promise<Entry | undefined>;
  /** Writes to other topics (replay with a target topic); null without the NATS control channel. */
  topicWriter(): TopicWriter | null;
  logger: Logger;
  registry: promClient.Registry;
  settings: LeasedSettings;
}

/** Check a policy override (INVALID_REQUEST naming the field). Shared with the gateway's validation. */
export function checkPolicyOverride(o: LeasePolicyOverride): void {
  for (const [k, b] of Object.entries(LEASE_POLICY_BOUNDS)) {
    const v = o[k as keyof typeof LEASE_POLICY_BOUNDS];
    if (v === undefined) continue;
    const integer = k !== 'backoffMultiplier';
    if (typeof v !== 'number' || (integer && !Number.isSafeInteger(v)) || v < b.min || v > b.max)
      throw new DaftkaError(
        'INVALID_REQUEST',
        `policy ${k} must be ${integer ? 'an integer' : 'a number'} from ${b.min} to ${b.max}`,
      );
  }
}

export function leasedOut<K extends LeasedApplyOutput['op']>(
  r: ApplyResult,
  op: K,
): Extract<LeasedApplyOutput, { op: K }> {
  if (r.kind === 'refused') throw r.error;
  if (r.kind !== 'leased' || r.out.op !== op)
    throw new DaftkaError('INTERNAL', `unexpected apply result ${r.kind} for a ${op} command`);
  return r.out as Extract<LeasedApplyOutput, { op: K }>;
}

export function badRequest(detail: string): DaftkaError {
  return new DaftkaError('INVALID_REQUEST', detail);
}

export function checkGroup(group: string): void {
  if (typeof group !== 'string' || group.length === 0 || group.length > GROUP_NAME_MAX_CHARS)
    throw badRequest(`group must be 1–${GROUP_NAME_MAX_CHARS} characters`);
}
