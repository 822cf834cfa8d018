import type { LeasedPartitionClient } from '../../protocol/methods';
import { createHash } from 'node:crypto';
import { DaftkaError, isDaftkaError } from '../../common/errors';
import type {
  DeadLetter,
  DeadLetterAdminRequest,
  DeadLetterPage,
  DeadLetterQuery,
  GroupLeaseInfo,
  GroupPolicyRequest,
  GroupTarget,
  LeaseAckRequest,
  LeaseAckResult,
  LeasedRecord,
  LeaseFetchRequest,
  LeaseFetchResult,
  LeasePolicy,
  LeasePolicyOverride,
  ReplayJobQuery,
  ReplayJobRequest,
  ReplayJobStatus,
} from '../../common/leased-api';
import type { Logger } from '../../common/log';
import { counter, gauge, type promClient } from '../../common/metrics';
import type { RecordIn } from '../../common/partition-api';
import { CommandKind, decodeCommand, encodeCommand } from '../state/commands';
import type { DeadLetterRow } from '../../common/leased-api';
import type { ReplayJobRow, ReplayWritten } from './dead-letters';
import type { TopicWriter } from '../control/topic-writer';
import { partitionForKey } from '../../common/partitioner';
import { LEASE_POLICY_BOUNDS, MAX_WAIT_MS } from '../../common/limits';
import { GROUP_NAME_MAX_CHARS, TOPIC_NAME_RE } from '../../common/names';
import { effectivePolicy } from './commands';
import type { LeasedApplyOutput } from './state';
import type { LogBounds } from './leases';
import type { Entry } from '../raft';
import type { ApplyResult, PartitionState } from '../state/partition-state';

/**
 * The leader's side of leased groups and dead letters: turns partition API calls into Raft
 * commands (replica/leased-commands.ts) and answers from what they applied. Lease state is in
 * the replicated state machine; this class keeps nothing that a new leader would need — only
 * waiters of long-polls, the rate buckets of replay jobs, and metrics.
 *
 * Three loops run on the leader:
 *  - long-polls wait for a change (a record committed, an ack, a lease or backoff coming due)
 *    without proposing anything: an empty poll costs no Raft entry;
 *  - the sweep dead-letters records whose last lease expired (the command carries their bytes,
 *    read from the log here) and purges dead letters past their retention;
 *  - the replay runner writes back the next batch of each running job at its rate.
 */

export interface LeasedSettings {
  /** The topic's defaults; a group's policy overrides them field by field. */
  defaults: LeasePolicy;
  /** Dead letters older than this are purged (ms; < 0 keeps them forever). */
  deadLetterRetentionMs: number;
  /** Period of the sweep (exhausted leases, retention) and of the replay runner. */
  sweepIntervalMs: number;
  /** Long-polls waiting at once; more are answered at once (empty). */
  maxWaiters: number;
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

const PROPOSE_TIMEOUT_MS = 5000;
const MAX_GRANT = 10_000;
const MAX_ACKS = 10_000;
const SWEEP_BATCH = 500;
const REPLAY_BATCH = 100;
const REPLAY_SCAN = 5000;
const RETENTION_CHECK_MS = 10_000;
/** Groups that get their own metric label; the rest share `other` (labels stay bounded). */
const MAX_GROUP_LABELS = 100;

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

function leasedOut<K extends LeasedApplyOutput['op']>(r: ApplyResult, op: K): Extract<LeasedApplyOutput, { op: K }> {
  if (r.kind === 'refused') throw r.error;
  if (r.kind !== 'leased' || r.out.op !== op)
    throw new DaftkaError('INTERNAL', `unexpected apply result ${r.kind} for a ${op} command`);
  return r.out as Extract<LeasedApplyOutput, { op: K }>;
}

function badRequest(detail: string): DaftkaError {
  return new DaftkaError('INVALID_REQUEST', detail);
}

function checkGroup(group: string): void {
  if (typeof group !== 'string' || group.length === 0 || group.length > GROUP_NAME_MAX_CHARS)
    throw badRequest(`group must be 1–${GROUP_NAME_MAX_CHARS} characters`);
}

export class LeasedService implements LeasedPartitionClient {
  private waiters = new Set<() => void>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping = false;
  private replaying = false;
  private lastRetentionCheckMs = 0;
  private readonly buckets = new Map<string, { tokens: number; lastMs: number }>();
  /** Last failure writing a target job's batch (leader-local; shown in the job's status). */
  private readonly jobErrors = new Map<string, string>();
  private readonly groupLabels = new Set<string>();
  private readonly m;

  constructor(private readonly h: LeasedHost) {
    const reg = h.registry;
    const tpg = ['topic', 'partition', 'group'] as const;
    const store = () => h.state.leased.deadLetters;
    const lbl = { topic: h.topic, partition: String(h.partition) };
    this.m = {
      redeliveries: counter(reg, {
        name: 'daftka_lease_redeliveries_total',
        help: 'Records delivered again (attempt > 1) by this replica as leader',
        labelNames: tpg,
      }),
      expiries: counter(reg, {
        name: 'daftka_lease_expiries_total',
        help: 'Leases that ended without an ack (redelivered or dead-lettered)',
        labelNames: tpg,
      }),
      acks: counter(reg, {
        name: 'daftka_lease_acks_total',
        help: 'Acks by action and result (ok, lease_expired, stale_attempt)',
        labelNames: ['topic', 'partition', 'group', 'action', 'result'] as const,
      }),
      deadLetterWrites: counter(reg, {
        name: 'daftka_dead_letter_writes_total',
        help: 'Records written to the dead-letter stream, by reason (reject, max_attempts)',
        labelNames: ['topic', 'partition', 'group', 'reason'] as const,
      }),
      discarded: counter(reg, {
        name: 'daftka_lease_discarded_total',
        help: 'Records that ended without a dead letter (dead-lettering off, or removed by retention)',
        labelNames: tpg,
      }),
      replays: counter(reg, {
        name: 'daftka_dead_letter_replays_total',
        help: 'Dead letters in replay batches by outcome (attempted, written, skipped)',
        labelNames: ['topic', 'partition', 'outcome'] as const,
      }),
    };
    gauge(reg, {
      name: 'daftka_dead_letter_entries',
      help: 'Entries in the dead-letter stream by state',
      labelNames: ['topic', 'partition', 'state'] as const,
      collect() {
        for (const [state, n] of Object.entries(store().countByState())) this.set({ ...lbl, state }, n);
      },
    });
  }

  // ---- lifecycle ----

  start(): void {
    this.sweepTimer ??= setInterval(() => {
      void this.sweep();
      void this.runReplays();
    }, this.h.settings.sweepIntervalMs);
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.wakeAll();
  }

  /** Called by the replica after every applied batch: long-polls look again. */
  onApplied(): void {
    this.wakeAll();
  }

  private wakeAll(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const f of w) f();
  }

  private waitChange(ms: number): Promise<void> {
    if (this.waiters.size >= this.h.settings.maxWaiters) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, Math.max(1, ms));
      this.waiters.add(done);
    });
  }

  // ---- helpers ----

  private lbl(group: string) {
    if (!this.groupLabels.has(group) && this.groupLabels.size < MAX_GROUP_LABELS) this.groupLabels.add(group);
    return {
      topic: this.h.topic,
      partition: String(this.h.partition),
      group: this.groupLabels.has(group) ? group : 'other',
    };
  }

  private bounds(): LogBounds {
    return { start: this.h.state.logStartOffset, end: this.h.state.nextOffset };
  }

  policyOf(group: string): LeasePolicy {
    return effectivePolicy(this.h.settings.defaults, this.h.state.leased.policies.get(group));
  }

  private committed(group: string): number | null {
    return this.h.state.groups.get(group)?.offset ?? null;
  }

  /** The records at `offsets` that this replica's log still has. */
  async readRecords(offsets: readonly number[]): Promise<Map<number, RecordIn>> {
    const out = new Map<number, RecordIn>();
    const cache = new Map<number, RecordIn[] | null>();
    for (const o of offsets) {
      if (o < this.h.state.logStartOffset || o >= this.h.state.nextOffset) continue;
      const row = this.h.state.rowsFrom(o).next().value;
      if (!row || o < row.base || o >= row.base + row.count) continue;
      let recs = cache.get(row.logIndex);
      if (recs === undefined) {
        recs = null;
        const e = await this.h.readEntry(row.logIndex);
        if (e !== undefined && e.index === row.logIndex) {
          const cmd = decodeCommand(e.data);
          if (cmd.kind === CommandKind.Produce) recs = cmd.records;
        }
        cache.set(row.logIndex, recs);
      }
      const r = recs?.[o - row.base];
      if (r) out.set(o, r);
    }
    return out;
  }

  // ---- leased fetch and acks ----

  async leaseFetch(req: LeaseFetchRequest): Promise<LeaseFetchResult> {
    this.h.checkTarget(req.topic, req.partition);
    this.h.requireLeader();
    checkGroup(req.group);
    if (!Number.isSafeInteger(req.maxRecords) || req.maxRecords < 0 || req.maxRecords > MAX_GRANT)
      throw badRequest(`maxRecords must be 0–${MAX_GRANT}`);
    const policy = this.policyOf(req.group);
    const leaseMs = req.leaseMs ?? policy.leaseMs;
    const lb = LEASE_POLICY_BOUNDS.leaseMs;
    if (!Number.isSafeInteger(leaseMs) || leaseMs < lb.min || leaseMs > lb.max)
      throw badRequest(`leaseMs must be ${lb.min}–${lb.max}`);
    const deadline = Date.now() + Math.min(Math.max(0, req.waitMs), MAX_WAIT_MS);
    for (;;) {
      this.h.requireLeader();
      const now = Date.now();
      if (this.h.state.leased.book.wouldGrant(req.group, now, policy, this.bounds())) {
        if (req.maxRecords === 0) return this.fetchResult(req.group, [], true);
        const r = await this.h.propose(
          encodeCommand({
            kind: CommandKind.LeaseGrant,
            leaderTimeMs: now,
            group: req.group,
            policy,
            leaseMs,
            max: req.maxRecords,
          }),
          PROPOSE_TIMEOUT_MS,
        );
        const { grant } = leasedOut(r, 'grant');
        const l = this.lbl(req.group);
        if (grant.expired.length) this.m.expiries.inc(l, grant.expired.length);
        const redelivered = grant.grants.filter((g) => g.attempt > 1).length;
        if (redelivered) this.m.redeliveries.inc(l, redelivered);
        if (grant.discarded.length) this.m.discarded.inc(l, grant.discarded.length);
        if (grant.grants.length > 0) {
          const recs = await this.readRecords(grant.grants.map((g) => g.offset));
          const out: LeasedRecord[] = [];
          // A record removed by retention meanwhile is not served; its lease simply expires.
          for (const g of grant.grants) {
            const rec = recs.get(g.offset);
            if (rec) out.push({ ...rec, offset: g.offset, attempt: g.attempt, leaseUntilMs: g.leaseUntilMs });
          }
          if (out.length > 0) return this.fetchResult(req.group, out, true);
        }
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return this.fetchResult(req.group, [], false);
      const due = this.h.state.leased.book.nextDueMs(req.group, now);
      await this.waitChange(Math.min(remaining, due !== undefined ? due - now + 1 : remaining));
    }
  }

  private fetchResult(group: string, records: LeasedRecord[], available: boolean): LeaseFetchResult {
    return { records, available, highWatermark: this.h.state.nextOffset, committedOffset: this.committed(group) };
  }

  async leaseAck(req: LeaseAckRequest): Promise<LeaseAckResult[]> {
    this.h.checkTarget(req.topic, req.partition);
    this.h.requireLeader();
    checkGroup(req.group);
    if (req.items.length === 0 || req.items.length > MAX_ACKS) throw badRequest(`1–${MAX_ACKS} acks per call`);
    for (const it of req.items) {
      if (!Number.isSafeInteger(it.offset) || it.offset < 0) throw badRequest('ack offset must be ≥ 0');
      if (!Number.isSafeInteger(it.attempt) || it.attempt < 1 || it.attempt > 0xffffffff)
        throw badRequest('ack attempt must be ≥ 1');
      if (it.delayMs !== undefined && (!Number.isSafeInteger(it.delayMs) || it.delayMs < 0))
        throw badRequest('delayMs must be a non-negative integer');
      const lb = LEASE_POLICY_BOUNDS.leaseMs;
      if (it.leaseMs !== undefined && (!Number.isSafeInteger(it.leaseMs) || it.leaseMs < lb.min || it.leaseMs > lb.max))
        throw badRequest(`leaseMs must be ${lb.min}–${lb.max}`);
    }
    const policy = this.policyOf(req.group);
    // Records that may end in the dead-letter stream travel with the command.
    const needBytes = policy.deadLetter
      ? req.items
          .filter((it) => it.action === 'reject' || (it.action === 'release' && it.attempt >= policy.maxAttempts))
          .map((it) => it.offset)
      : [];
    const recs = needBytes.length ? await this.readRecords(needBytes) : new Map<number, RecordIn>();
    const withBytes = new Set(needBytes);
    const items = req.items.map((it) => {
      const rec = withBytes.has(it.offset) ? recs.get(it.offset) : undefined;
      return {
        offset: it.offset,
        attempt: it.attempt,
        action: it.action,
        ...(it.delayMs !== undefined ? { delayMs: it.delayMs } : {}),
        ...(it.leaseMs !== undefined ? { leaseMs: it.leaseMs } : {}),
        ...(it.error !== undefined ? { error: it.error.slice(0, 4096) } : {}),
        ...(it.errorClass !== undefined ? { errorClass: it.errorClass.slice(0, 128) } : {}),
        ...(rec ? { record: rec } : {}),
      };
    });
    const r = await this.h.propose(
      encodeCommand({ kind: CommandKind.LeaseAck, leaderTimeMs: Date.now(), group: req.group, policy, items }),
      PROPOSE_TIMEOUT_MS,
    );
    const { outcomes } = leasedOut(r, 'ack');
    const l = this.lbl(req.group);
    return outcomes.map((o, i): LeaseAckResult => {
      const action = req.items[i].action;
      this.m.acks.inc({ ...l, action, result: o.status });
      if (o.status === 'lease_expired')
        return { status: o.status, detail: 'the lease ended before this ack; the record will be delivered again' };
      if (o.status === 'stale_attempt')
        return {
          status: o.status,
          detail:
            o.why === 'superseded'
              ? 'the record was delivered again since this lease; ack the newer delivery'
              : o.why === 'finished'
                ? 'this delivery was already acknowledged, dead-lettered or committed'
                : 'no such delivery of this record',
        };
      if (o.deadLetter) this.m.deadLetterWrites.inc({ ...l, reason: action === 'reject' ? 'reject' : 'max_attempts' });
      if (o.discarded) this.m.discarded.inc(l);
      return {
        status: 'ok',
        ...(o.leaseUntilMs !== undefined ? { leaseUntilMs: o.leaseUntilMs } : {}),
        ...(o.deadLetter ? { deadLettered: true } : {}),
        ...(o.discarded ? { discarded: true } : {}),
      };
    });
  }

  // ---- policies ----

  async setGroupPolicy(req: GroupPolicyRequest): Promise<GroupLeaseInfo> {
    this.h.checkTarget(req.topic, req.partition);
    this.h.requireLeader();
    checkGroup(req.group);
    if (req.policy !== null) {
      checkPolicyOverride(req.policy);
      const eff = effectivePolicy(this.h.settings.defaults, req.policy);
      if (eff.backoffMaxMs < eff.backoffInitialMs)
        throw badRequest('policy backoffMaxMs must be at least backoffInitialMs');
    }
    const r = await this.h.propose(
      encodeCommand({
        kind: CommandKind.GroupPolicy,
        leaderTimeMs: Date.now(),
        group: req.group,
        override: req.policy,
      }),
      PROPOSE_TIMEOUT_MS,
    );
    leasedOut(r, 'policy');
    return this.info(req.group, req.topic, req.partition);
  }

  async getGroupLeases(req: GroupTarget): Promise<GroupLeaseInfo> {
    this.h.checkTarget(req.topic, req.partition);
    this.h.requireLeader();
    checkGroup(req.group);
    return this.info(req.group, req.topic, req.partition);
  }

  private info(group: string, topic: string, partition: number): GroupLeaseInfo {
    const s = this.h.state;
    const summary = s.leased.book.summary(group, Date.now());
    return {
      group,
      topic,
      partition,
      override: s.leased.policies.get(group) ?? null,
      effective: this.policyOf(group),
      committedOffset: this.committed(group),
      highWatermark: s.nextOffset,
      ...summary,
      known: s.leased.book.groups.has(group) || s.leased.policies.has(group) || s.groups.has(group),
    };
  }

  // ---- dead letters ----

  private deadLetterOut(row: DeadLetterRow): DeadLetter {
    return {
      topic: this.h.topic,
      partition: this.h.partition,
      seq: row.seq,
      group: row.group,
      originOffset: row.originOffset,
      record: row.record,
      attempts: row.attempts,
      lastError: row.lastError,
      errorClass: row.errorClass,
      firstDeliveryMs: row.firstDeliveryMs,
      lastDeliveryMs: row.lastDeliveryMs,
      deadLetteredMs: row.deadLetteredMs,
      state: row.state,
      ...(row.replay ? { replay: { ...row.replay } } : {}),
    };
  }

  async listDeadLetters(q: DeadLetterQuery): Promise<DeadLetterPage> {
    this.h.checkTarget(q.topic, q.partition);
    this.h.requireLeader();
    const limit = Math.min(Math.max(1, q.limit), 1000);
    const { rows, more } = this.h.state.leased.deadLetters.query(q.filter, q.afterSeq ?? -1, limit);
    return {
      items: rows.map((r) => this.deadLetterOut(r)),
      nextAfterSeq: more && rows.length > 0 ? rows[rows.length - 1].seq : null,
    };
  }

  async adminDeadLetters(req: DeadLetterAdminRequest): Promise<{ count: number }> {
    this.h.checkTarget(req.topic, req.partition);
    this.h.requireLeader();
    const r = await this.h.propose(
      encodeCommand({
        kind: CommandKind.DeadLetterAdmin,
        leaderTimeMs: Date.now(),
        action: req.action,
        filter: req.filter,
      }),
      PROPOSE_TIMEOUT_MS,
    );
    return { count: leasedOut(r, 'deadletters').count };
  }

  // ---- replay jobs ----

  private jobOut(j: ReplayJobRow): ReplayJobStatus {
    return {
      jobId: j.jobId,
      topic: this.h.topic,
      partition: this.h.partition,
      state: j.state,
      dryRun: j.dryRun,
      ratePerSec: j.ratePerSec,
      matched: j.matched,
      written: j.written,
      skipped: j.skipped,
      createdMs: j.createdMs,
      finishedMs: j.finishedMs,
      target: j.target ? { ...j.target } : null,
      ...(this.jobErrors.has(j.jobId) ? { lastError: this.jobErrors.get(j.jobId) } : {}),
    };
  }

  async startReplay(req: ReplayJobRequest): Promise<ReplayJobStatus> {
    this.h.checkTarget(req.topic, req.partition);
    this.h.requireLeader();
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(req.jobId)) throw badRequest('job id must be 1–128 of [A-Za-z0-9._-]');
    if (!(req.ratePerSec > 0) || req.ratePerSec > 1_000_000) throw badRequest('ratePerSec must be > 0 and ≤ 1e6');
    if (req.target) {
      if (!TOPIC_NAME_RE.test(req.target.topic))
        throw badRequest(`target topic '${req.target.topic}' is not a topic name`);
      if (req.target.topic === this.h.topic)
        throw badRequest("the target topic is the dead letters' own topic: replay to the origin instead");
      if (!Number.isSafeInteger(req.target.partitions) || req.target.partitions < 1 || req.target.partitions > 100_000)
        throw badRequest('target partitions must be an integer from 1 to 100000');
      if (this.h.topicWriter() === null)
        throw new DaftkaError(
          'UNAVAILABLE',
          'replay to another topic needs the NATS control channel (to find its leaders), and this replica runs without one',
        );
    }
    const existing = this.h.state.leased.deadLetters.jobs.get(req.jobId);
    if (existing) return this.jobOut(existing);
    const r = await this.h.propose(
      encodeCommand({
        kind: CommandKind.ReplayJob,
        leaderTimeMs: Date.now(),
        op: 'create',
        jobId: req.jobId,
        filter: req.filter,
        ratePerSec: req.ratePerSec,
        dryRun: req.dryRun,
        ...(req.target ? { target: { topic: req.target.topic, partitions: req.target.partitions } } : {}),
      }),
      PROPOSE_TIMEOUT_MS,
    );
    const { job } = leasedOut(r, 'job');
    if (!job) throw new DaftkaError('INTERNAL', 'replay job was not created');
    this.h.logger.info('replay_job_created', {
      job_id: job.jobId,
      matched: job.matched,
      dry_run: job.dryRun,
      target: job.target?.topic ?? 'origin',
    });
    return this.jobOut(job);
  }

  async getReplay(q: ReplayJobQuery): Promise<ReplayJobStatus | null> {
    this.h.checkTarget(q.topic, q.partition);
    this.h.requireLeader();
    const j = this.h.state.leased.deadLetters.jobs.get(q.jobId);
    return j ? this.jobOut(j) : null;
  }

  // ---- the leader's loops ----

  /** Dead-letter exhausted leases; purge dead letters past retention. */
  async sweep(): Promise<void> {
    if (this.sweeping || !this.h.isLeader()) return;
    this.sweeping = true;
    try {
      const book = this.h.state.leased.book;
      for (const group of [...book.groups.keys()]) {
        const now = Date.now();
        const policy = this.policyOf(group);
        const ex = book.exhausted(group, now, policy, this.bounds(), SWEEP_BATCH);
        if (ex.length === 0) continue;
        const recs = policy.deadLetter ? await this.readRecords(ex.map((e) => e.offset)) : new Map<number, RecordIn>();
        const r = await this.h.propose(
          encodeCommand({
            kind: CommandKind.LeaseExpire,
            leaderTimeMs: now,
            group,
            policy,
            items: ex.map((e) => {
              const rec = recs.get(e.offset);
              return rec
                ? { offset: e.offset, attempt: e.attempt, record: rec }
                : { offset: e.offset, attempt: e.attempt };
            }),
          }),
          PROPOSE_TIMEOUT_MS,
        );
        const out = leasedOut(r, 'expire');
        const l = this.lbl(group);
        this.m.expiries.inc(l, out.deadLettered + out.discarded);
        if (out.deadLettered) this.m.deadLetterWrites.inc({ ...l, reason: 'max_attempts' }, out.deadLettered);
        if (out.discarded) this.m.discarded.inc(l, out.discarded);
        if (out.deadLettered)
          this.h.logger.info('dead_lettered_exhausted', { group, records: out.deadLettered, discarded: out.discarded });
      }
      const now = Date.now();
      const retention = this.h.settings.deadLetterRetentionMs;
      if (retention >= 0 && now - this.lastRetentionCheckMs >= Math.min(RETENTION_CHECK_MS, retention)) {
        this.lastRetentionCheckMs = now;
        const oldest = this.h.state.leased.deadLetters.oldestMs();
        if (oldest !== undefined && oldest < now - retention) {
          const r = await this.h.propose(
            encodeCommand({
              kind: CommandKind.DeadLetterAdmin,
              leaderTimeMs: now,
              action: 'purge',
              filter: { toMs: now - retention },
            }),
            PROPOSE_TIMEOUT_MS,
          );
          this.h.logger.info('dead_letters_retention_purged', { count: leasedOut(r, 'deadletters').count });
        }
      }
    } catch (err) {
      if (!(err instanceof DaftkaError && (err.code === 'NOT_LEADER' || err.code === 'COMMIT_UNKNOWN')))
        this.h.logger.warn('lease_sweep_failed', { error: (err as Error).message });
    } finally {
      this.sweeping = false;
    }
  }

  /** Write back the next batch of every running replay job, at its rate. */
  async runReplays(): Promise<void> {
    if (this.replaying || !this.h.isLeader()) return;
    this.replaying = true;
    try {
      const store = this.h.state.leased.deadLetters;
      for (const job of [...store.jobs.values()]) {
        if (job.state !== 'running') {
          this.buckets.delete(job.jobId);
          this.jobErrors.delete(job.jobId);
          continue;
        }
        const now = Date.now();
        const b = this.buckets.get(job.jobId) ?? { tokens: 1, lastMs: now };
        b.tokens = Math.min(Math.max(1, job.ratePerSec), b.tokens + (job.ratePerSec * (now - b.lastMs)) / 1000);
        b.lastMs = now;
        this.buckets.set(job.jobId, b);
        if (job.target) {
          await this.runTargetBatch(job, b, now);
          continue;
        }
        const n = Math.min(REPLAY_BATCH, Math.floor(b.tokens));
        if (n < 1) continue;
        const plan = store.planReplay(job.jobId, n, REPLAY_SCAN);
        if (!plan) continue;
        if (plan.seqs.length === 0) {
          leasedOut(
            await this.h.propose(
              encodeCommand({
                kind: CommandKind.ReplayJob,
                leaderTimeMs: now,
                op: 'advance',
                jobId: job.jobId,
                cursorTo: plan.cursorTo,
                done: plan.done,
              }),
              PROPOSE_TIMEOUT_MS,
            ),
            'job',
          );
          if (plan.done) this.h.logger.info('replay_job_done', { job_id: job.jobId });
          continue;
        }
        const rows = plan.seqs.map((s) => store.entries.get(s)!);
        const records = rows.map((row) => this.replayRecord(row, job.jobId, now));
        const lbl = { topic: this.h.topic, partition: String(this.h.partition) };
        this.m.replays.inc({ ...lbl, outcome: 'attempted' }, rows.length);
        const r = await this.h.propose(
          encodeCommand({
            kind: CommandKind.Produce,
            leaderTimeMs: now,
            idempotencyKey: this.replayKey(job.jobId, rows),
            records,
            replay: { jobId: job.jobId, seqs: plan.seqs, cursorTo: plan.cursorTo },
          }),
          PROPOSE_TIMEOUT_MS,
        );
        if (r.kind === 'written') {
          b.tokens -= r.count;
          this.m.replays.inc({ ...lbl, outcome: 'written' }, r.count);
        } else {
          // duplicate (same batch already written) or refused (no longer eligible): nothing written.
          this.m.replays.inc({ ...lbl, outcome: 'skipped' }, rows.length);
        }
      }
    } catch (err) {
      if (!(err instanceof DaftkaError && (err.code === 'NOT_LEADER' || err.code === 'COMMIT_UNKNOWN')))
        this.h.logger.warn('replay_batch_failed', { error: (err as Error).message });
    } finally {
      this.replaying = false;
    }
  }

  /**
   * One step of a job that writes to another topic: prepare the next batch (replicated), write it
   * to the target's partitions under idempotency keys derived from the job and the records'
   * origin coordinates, commit where each record went (replicated). A batch left pending by a
   * failure or a lost leadership is sent again as it is, under the same keys: never twice.
   */
  private async runTargetBatch(job: ReplayJobRow, b: { tokens: number }, now: number): Promise<void> {
    const store = this.h.state.leased.deadLetters;
    const lbl = { topic: this.h.topic, partition: String(this.h.partition) };
    const target = job.target!;
    if (!job.pending) {
      const n = Math.min(REPLAY_BATCH, Math.floor(b.tokens));
      if (n < 1) return;
      const plan = store.planReplay(job.jobId, n, REPLAY_SCAN);
      if (!plan) return;
      const cmd =
        plan.seqs.length === 0
          ? { op: 'advance' as const, cursorTo: plan.cursorTo, done: plan.done }
          : { op: 'prepare' as const, seqs: plan.seqs, cursorTo: plan.cursorTo };
      const out = leasedOut(
        await this.h.propose(
          encodeCommand({ kind: CommandKind.ReplayJob, leaderTimeMs: now, jobId: job.jobId, ...cmd }),
          PROPOSE_TIMEOUT_MS,
        ),
        'job',
      );
      if (plan.seqs.length === 0) {
        if (plan.done) this.h.logger.info('replay_job_done', { job_id: job.jobId, target: target.topic });
        return;
      }
      if (out.refused !== undefined || !out.job?.pending) return; // planned again on the next pass
      job = out.job;
    }
    const pending = job.pending!;
    const writer = this.h.topicWriter();
    if (writer === null) {
      this.jobErrors.set(job.jobId, "no NATS control channel: cannot find the target topic's leaders");
      return;
    }
    const rows = pending.seqs.flatMap((s) => store.entries.get(s) ?? []);
    // Keyed records go where Kafka's partitioner puts their key; keyless ones keep the origin's
    // partition (mod the target's count), so their relative order is kept.
    const byPartition = new Map<number, DeadLetterRow[]>();
    for (const row of rows) {
      const p =
        row.record.key !== null
          ? partitionForKey(row.record.key, target.partitions)
          : this.h.partition % target.partitions;
      byPartition.set(p, [...(byPartition.get(p) ?? []), row]);
    }
    const written: ReplayWritten[] = [];
    let duplicates = 0;
    this.m.replays.inc({ ...lbl, outcome: 'attempted' }, rows.length);
    try {
      for (const [partition, part] of [...byPartition].sort(([a], [b]) => a - b)) {
        const r = await writer.produce({
          topic: target.topic,
          partition,
          records: part.map((row) => this.replayRecord(row, job.jobId, now)),
          idempotencyKey: `${this.replayKey(job.jobId, part)}:${partition}`,
          requestId: `replay-${job.jobId}`,
          timeoutMs: PROPOSE_TIMEOUT_MS,
        });
        if (r.duplicate) duplicates += part.length;
        part.forEach((row, i) => written.push({ seq: row.seq, partition, offset: r.baseOffset + i }));
      }
    } catch (err) {
      const e = err as Error;
      const why = `writing to ${target.topic}: ${isDaftkaError(e) ? `${e.code} ` : ''}${e.message}`;
      if (this.jobErrors.get(job.jobId) !== why)
        this.h.logger.warn('replay_target_write_failed', { job_id: job.jobId, target: target.topic, error: why });
      this.jobErrors.set(job.jobId, why);
      return;
    }
    this.jobErrors.delete(job.jobId);
    const out = leasedOut(
      await this.h.propose(
        encodeCommand({ kind: CommandKind.ReplayJob, leaderTimeMs: now, op: 'commit', jobId: job.jobId, written }),
        PROPOSE_TIMEOUT_MS,
      ),
      'job',
    );
    if (out.refused !== undefined) {
      this.h.logger.warn('replay_commit_refused', { job_id: job.jobId, reason: out.refused });
      return;
    }
    b.tokens -= written.length;
    // Records the target already had (a batch sent again after a failover) were not written twice.
    this.m.replays.inc({ ...lbl, outcome: 'written' }, written.length - duplicates);
    if (duplicates) this.m.replays.inc({ ...lbl, outcome: 'skipped' }, duplicates);
  }

  /**
   * The write's idempotency key, derived from the job and the origin coordinates of its records:
   * a retried batch is answered as a duplicate by the dedup table, on top of the replayed marks.
   */
  private replayKey(jobId: string, rows: DeadLetterRow[]): string {
    const h = createHash('sha256');
    for (const r of rows) h.update(`${this.h.topic}/${this.h.partition}/${r.originOffset}/${r.group}/${r.seq};`);
    return `replay:${jobId}:${h.digest('base64url').slice(0, 32)}`;
  }

  /** The original record, stamped now, with headers naming where it came from. */
  private replayRecord(row: DeadLetterRow, jobId: string, nowMs: number): RecordIn {
    return {
      key: row.record.key,
      value: row.record.value,
      headers: [
        ...row.record.headers,
        ['daftka-replay-of', Buffer.from(`${this.h.topic}/${this.h.partition}/${row.originOffset}`)],
        ['daftka-replay-job', Buffer.from(jobId)],
        ['daftka-dead-letter-group', Buffer.from(row.group)],
        ['daftka-original-timestamp', Buffer.from(String(row.record.timestampMs))],
      ],
      timestampMs: nowMs,
    };
  }
}
