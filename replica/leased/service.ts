import type { LeasedPartitionClient } from '../../protocol/methods';
import { DaftkaError } from '../../common/errors';
import type {
  GroupList,
  GroupListRequest,
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
  ReplayJobQuery,
  ReplayJobRequest,
  ReplayJobStatus,
} from '../../common/leased-api';
import type { RecordIn } from '../../common/partition-api';
import { CommandKind, decodeCommand, encodeCommand, recordsBySpan } from '../state/commands';
import type { DeadLetterRow } from '../../common/leased-api';
import type { ReplayJobRow } from './dead-letters';
import { LEASE_POLICY_BOUNDS, MAX_GROUP_LIST, MAX_WAIT_MS } from '../../common/limits';
import { TOPIC_NAME_RE } from '../../common/names';
import { effectivePolicy } from './commands';
import { badRequest, checkGroup, checkPolicyOverride, leasedOut, PROPOSE_TIMEOUT_MS, type LeasedHost } from './host';
import { leasedMetrics, type LeasedMetrics } from './metrics';
import { ReplayRunner } from './replay-runner';
import { LEASE_WINDOW, plainGrantMax, type GrantResult, type LogBounds, type PlanResult } from './leases';
import { RecordFactsCache } from './facts';
import type { LeaseGrantPlan } from './commands';

/**
 * The leader's side of leased groups and dead letters: turns partition API calls into Raft
 * commands (replica/leased/commands.ts) and answers from what they applied. Lease state is in
 * the replicated state machine; this class keeps nothing that a new leader would need — only
 * waiters of long-polls, the rate buckets of replay jobs, and metrics.
 *
 * Three loops run on the leader (the replay runner in replay-runner.ts):
 *  - long-polls wait for a change (a record committed, an ack, a lease or backoff coming due)
 *    without proposing anything: an empty poll costs no Raft entry;
 *  - the sweep dead-letters records whose last lease expired (the command carries their bytes,
 *    read from the log here) and purges dead letters past their retention;
 *  - the replay runner writes back the next batch of each running job at its rate.
 */

/** Retry-After of a leased long-poll refused because maxFetchWaiters are already waiting. */
const WAITERS_FULL_RETRY_AFTER_MS = 1000;
const MAX_GRANT = 10_000;
const MAX_ACKS = 10_000;
const SWEEP_BATCH = 500;
/** Expired records one fetch's grant ends at most (each may carry its bytes for a dead letter). */
const EXPIRE_BATCH = 100;
/** Facts the leader keeps by default (facts.ts, DAFTKA_LEASE_FACTS_CACHE_ENTRIES): two lease windows, so one plan's scan always fits. */
export const FACTS_CACHE_ENTRIES = 2 * LEASE_WINDOW;
/** First read of facts when a plan reaches unloaded offsets; doubles up to the maximum. */
const FACTS_CHUNK_MIN = 256;
const FACTS_CHUNK_MAX = 8192;
/** Loads one plan may need before giving up (OVERLOADED): others evicting what it loaded. */
const MAX_PLAN_LOADS = 64;
const RETENTION_CHECK_MS = 10_000;
/** Groups that get their own metric label; the rest share `other` (labels stay bounded). */
const MAX_GROUP_LABELS = 100;

export { checkPolicyOverride, type LeasedHost, type LeasedSettings } from './host';

export class LeasedService implements LeasedPartitionClient {
  private waiters = new Set<() => void>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping = false;
  private lastRetentionCheckMs = 0;
  private readonly groupLabels = new Set<string>();
  private readonly m: LeasedMetrics;
  private readonly replays: ReplayRunner;
  private readonly facts: RecordFactsCache;
  /** Per group, the end of its queue of grants (grantLocked); removed when the queue empties. */
  private readonly grantTails = new Map<string, Promise<void>>();

  constructor(private readonly h: LeasedHost) {
    this.facts = new RecordFactsCache(h, Math.max(LEASE_WINDOW, h.settings.factsCacheEntries ?? FACTS_CACHE_ENTRIES));
    this.m = leasedMetrics(h, this.facts);
    this.replays = new ReplayRunner(h, this.m.replays);
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

  /**
   * Park until the state changes or `ms` passes. Over the bound (maxWaiters, shared with the
   * partition's fetch long-polls' setting) the call is refused OVERLOADED with a retry hint:
   * returning at once would make leaseFetch's loop spin on microtasks until its deadline, with
   * no timers or I/O running (heartbeats stop, elections follow).
   */
  private waitChange(ms: number): Promise<void> {
    if (this.waiters.size >= this.h.settings.maxWaiters) {
      this.m.waitersFull.inc({ topic: this.h.topic, partition: String(this.h.partition) });
      throw new DaftkaError('OVERLOADED', `more than ${this.h.settings.maxWaiters} leased long-polls are waiting`, {
        retryAfterMs: WAITERS_FULL_RETRY_AFTER_MS,
      });
    }
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
    const cache = new Map<number, Array<RecordIn | undefined> | null>();
    for (const o of offsets) {
      if (o < this.h.state.logStartOffset || o >= this.h.state.nextOffset) continue;
      const row = await this.h.state.rowAt(o);
      if (!row || o < row.base || o >= row.base + row.count) continue;
      let recs = cache.get(row.logIndex);
      if (recs === undefined) {
        recs = null;
        const e = await this.h.readEntry(row.logIndex);
        if (e !== undefined && e.index === row.logIndex) {
          const cmd = decodeCommand(e.data);
          // By offset within the batch: key compaction may have removed some (docs/compaction.md).
          if (cmd.kind === CommandKind.Produce) recs = recordsBySpan(cmd);
        }
        cache.set(row.logIndex, recs);
      }
      const r = recs?.[o - row.base];
      if (r) out.set(o, r);
    }
    return out;
  }

  /**
   * The leader's plan for a grant (leases.ts plan), with the facts of the records it passes
   * over loaded from the log as it reaches them.
   */
  private async planGrant(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    max: number,
    maxExpire: number,
  ): Promise<PlanResult> {
    const book = this.h.state.leased.book;
    let chunk = FACTS_CHUNK_MIN;
    for (let loads = 0; ; loads++) {
      const plan = book.plan(group, nowMs, policy, this.bounds(), max, maxExpire, (o) => this.facts.get(o));
      if (plan.missing === undefined) return plan;
      if (loads >= MAX_PLAN_LOADS)
        throw new DaftkaError('OVERLOADED', 'the leased fetch could not read the records it needs (try again)', {
          retryAfterMs: WAITERS_FULL_RETRY_AFTER_MS,
        });
      await this.facts.load(plan.missing, plan.missing + chunk);
      chunk = Math.min(FACTS_CHUNK_MAX, chunk * 2);
    }
  }

  /** The command's plan: expired records carry their bytes when they go to the dead-letter stream. */
  private async commandPlan(plan: PlanResult, policy: LeasePolicy): Promise<LeaseGrantPlan> {
    const toDeadLetter = policy.deadLetter && policy.expired === 'dead_letter';
    const recs = toDeadLetter && plan.expire.length ? await this.readRecords(plan.expire.map((e) => e.offset)) : null;
    return {
      offers: plan.offers,
      ...(plan.defer.length ? { defer: plan.defer } : {}),
      expire: plan.expire.map((e) => {
        const record = recs?.get(e.offset);
        return record
          ? { offset: e.offset, expiresAtMs: e.expiresAtMs, record }
          : { offset: e.offset, expiresAtMs: e.expiresAtMs };
      }),
    };
  }

  /** Count what a grant ended because the records expired (or compaction removed them: discarded). */
  private countTtl(group: string, all: Array<{ offset: number; deadLetter?: unknown }>, plan: LeaseGrantPlan): void {
    if (all.length === 0) return;
    const l = this.lbl(group);
    const gone = new Set(plan.expire.filter((e) => e.expiresAtMs === 0).map((e) => e.offset));
    const ttl = all.filter((x) => !gone.has(x.offset));
    if (all.length > ttl.length) this.m.discarded.inc(l, all.length - ttl.length);
    const dl = ttl.filter((x) => x.deadLetter !== undefined).length;
    if (dl) {
      this.m.ttlExpired.inc({ ...l, outcome: 'dead_lettered' }, dl);
      this.m.deadLetterWrites.inc({ ...l, reason: 'expired' }, dl);
    }
    if (ttl.length - dl) this.m.ttlExpired.inc({ ...l, outcome: 'dropped' }, ttl.length - dl);
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
    let replans = 0;
    for (;;) {
      this.h.requireLeader();
      const step = await this.grantLocked(req.group, () => this.grantStep(req.group, policy, leaseMs, req.maxRecords));
      const { now, plan, grant, cmdPlan } = step;
      if (plan.work > 0 && req.maxRecords === 0) return this.fetchResult(req.group, [], true);
      if (step.discarded && ++replans <= 8) continue;
      if (grant) {
        const l = this.lbl(req.group);
        if (grant.expired.length) this.m.expiries.inc(l, grant.expired.length);
        const redelivered = grant.grants.filter((g) => g.attempt > 1).length;
        if (redelivered) this.m.redeliveries.inc(l, redelivered);
        if (grant.discarded.length) this.m.discarded.inc(l, grant.discarded.length);
        if (cmdPlan) this.countTtl(req.group, grant.ttlExpired, cmdPlan);
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
        // Records ended (expired, discarded) or held apart: what they held back may go now — plan
        // again (a few times at most: each round changed the state).
        if ((grant.ttlExpired.length > 0 || grant.discarded.length > 0 || plan.defer.length > 0) && ++replans <= 8)
          continue;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return this.fetchResult(req.group, [], false);
      let due = this.h.state.leased.book.nextDueMs(req.group, now);
      // A delayed record wakes the poll when it comes due.
      if (plan.nextDeliverMs !== undefined && (due === undefined || plan.nextDeliverMs < due)) due = plan.nextDeliverMs;
      await this.waitChange(Math.min(remaining, due !== undefined ? due - now + 1 : remaining));
    }
  }

  /**
   * Run `fn` — plan a grant of `group`, propose it and wait for its apply — after the group's
   * previous one. A plan is then made from the state its command applies to (unless a leader
   * change or retention moved it in between), which a plain grant command relies on
   * (leases.ts plainGrantMax); and two racing fetches of a group no longer make one stale plan
   * that grants nothing. Bounded: one link per fetch in progress (maxWaiters) and the sweep.
   */
  private async grantLocked<T>(group: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.grantTails.get(group) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.grantTails.set(group, tail);
    try {
      return await run;
    } finally {
      if (this.grantTails.get(group) === tail) this.grantTails.delete(group);
    }
  }

  /**
   * One grant of a fetch: plan it and, when there is something to do, propose it — without its
   * plan when the plan-less command means exactly the same (leases.ts plainGrantMax: the format
   * a replica of a release before issue 19 can apply, so a rolling upgrade does not stop the
   * group), else with it.
   */
  private async grantStep(
    group: string,
    policy: LeasePolicy,
    leaseMs: number,
    maxRecords: number,
  ): Promise<{ now: number; plan: PlanResult; grant?: GrantResult; cmdPlan?: LeaseGrantPlan; discarded?: number }> {
    const now = Date.now();
    const plan = await this.planGrant(group, now, policy, Math.max(1, maxRecords), EXPIRE_BATCH);
    if (maxRecords === 0 || (plan.work === 0 && plan.expire.length === 0 && plan.defer.length === 0))
      return { now, plan };
    const plainMax = plainGrantMax(plan, policy);
    // Only discards: end them as the sweep does, with a LeaseExpire (a command every release
    // decodes, plainGrantMax), and plan again.
    if (plainMax === 0) return { now, plan, discarded: await this.discardExhausted(group, now, policy) };
    // Held apart and due: a first delivery (attempt 0 → 1) the plan counted without an offer.
    const unoffered = plainMax === undefined ? null : this.zeroAttemptFlights(group);
    const cmdPlan = plainMax === undefined ? await this.commandPlan(plan, policy) : undefined;
    const r = await this.h.propose(
      encodeCommand({
        kind: CommandKind.LeaseGrant,
        leaderTimeMs: now,
        group,
        policy,
        leaseMs,
        max: plainMax ?? maxRecords,
        ...(cmdPlan ? { plan: cmdPlan } : {}),
      }),
      PROPOSE_TIMEOUT_MS,
    );
    const { grant } = leasedOut(r, 'grant');
    this.m.grantCommands.inc({
      topic: this.h.topic,
      partition: String(this.h.partition),
      kind: cmdPlan ? 'plan' : 'plain',
    });
    if (unoffered) this.checkPlain(group, plan, grant, unoffered);
    return cmdPlan ? { now, plan, grant, cmdPlan } : { now, plan, grant };
  }

  /** The exhausted leases of a group with dead-lettering off, discarded by a LeaseExpire command: how many. */
  private async discardExhausted(group: string, now: number, policy: LeasePolicy): Promise<number> {
    const ex = this.h.state.leased.book.exhausted(group, now, policy, this.bounds(), SWEEP_BATCH);
    if (ex.length === 0) return 0;
    const out = await this.expireExhausted(group, now, policy, ex, new Map());
    return out.discarded + out.deadLettered;
  }

  /**
   * One LeaseExpire command for exhausted leases: each is dead-lettered with its record (when
   * `records` has it) or discarded; counted in the metrics. Returns the command's outcome.
   */
  private async expireExhausted(
    group: string,
    now: number,
    policy: LeasePolicy,
    ex: ReadonlyArray<{ offset: number; attempt: number }>,
    records: Map<number, RecordIn>,
  ): Promise<{ deadLettered: number; discarded: number }> {
    const r = await this.h.propose(
      encodeCommand({
        kind: CommandKind.LeaseExpire,
        leaderTimeMs: now,
        group,
        policy,
        items: ex.map((e) => {
          const rec = records.get(e.offset);
          return rec ? { offset: e.offset, attempt: e.attempt, record: rec } : { offset: e.offset, attempt: e.attempt };
        }),
      }),
      PROPOSE_TIMEOUT_MS,
    );
    const out = leasedOut(r, 'expire');
    const l = this.lbl(group);
    this.m.expiries.inc(l, out.deadLettered + out.discarded);
    if (out.deadLettered) this.m.deadLetterWrites.inc({ ...l, reason: 'max_attempts' }, out.deadLettered);
    if (out.discarded) this.m.discarded.inc(l, out.discarded);
    return out;
  }

  private zeroAttemptFlights(group: string): Set<number> {
    const out = new Set<number>();
    for (const [o, f] of this.h.state.leased.book.groups.get(group) ?? []) if (f.attempt === 0) out.add(o);
    return out;
  }

  /**
   * A plain grant applied to the state its plan was made from gives first deliveries only to the
   * records the plan offered (or held apart). One that did not (its state moved: a leader change,
   * retention) is counted and logged: it may have handed out a record without its facts checked.
   */
  private checkPlain(group: string, plan: PlanResult, grant: GrantResult, unoffered: Set<number>): void {
    const offered = new Set(plan.offers.map((o) => o.offset));
    const stray = grant.grants.filter((g) => g.attempt === 1 && !offered.has(g.offset) && !unoffered.has(g.offset));
    if (stray.length === 0) return;
    this.m.unplannedGrants.inc({ topic: this.h.topic, partition: String(this.h.partition) }, stray.length);
    this.h.logger.warn('lease_unplanned_grants', { group, records: stray.length, first_offset: stray[0].offset });
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
      if (eff.ordered && eff.orderingKey)
        throw badRequest(
          'policy ordered (one lease holder per partition) and orderingKey (one per key) exclude each other',
        );
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

  /** The groups this partition knows, sorted, at most `limit` (the group tables are bounded). */
  async listGroups(req: GroupListRequest): Promise<GroupList> {
    this.h.checkTarget(req.topic, req.partition);
    const s = this.h.state;
    const names = new Set<string>([...s.groups.keys(), ...s.leased.policies.keys(), ...s.leased.book.groups.keys()]);
    const sorted = [...names].sort();
    const limit = Math.min(req.limit, MAX_GROUP_LIST);
    return { groups: sorted.slice(0, limit), truncated: sorted.length > limit };
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
      ...(this.replays.lastError(j.jobId) !== undefined ? { lastError: this.replays.lastError(j.jobId) } : {}),
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

  /** Write back the next batch of every running replay job, at its rate (replay-runner.ts). */
  runReplays(): Promise<void> {
    return this.replays.run();
  }

  /** Dead-letter exhausted leases; purge dead letters past retention. */
  async sweep(): Promise<void> {
    if (this.sweeping || !this.h.isLeader()) return;
    this.sweeping = true;
    try {
      const book = this.h.state.leased.book;
      for (const group of [...book.groups.keys()]) {
        const now = Date.now();
        const policy = this.policyOf(group);
        // Expired records among those the group has reached end without waiting for a fetch
        // (queued with the group's fetches: grantLocked).
        await this.grantLocked(group, async () => {
          const at = Date.now();
          const plan = await this.planGrant(group, at, policy, 0, SWEEP_BATCH);
          if (plan.expire.length === 0 && plan.defer.length === 0) return;
          const cmdPlan = await this.commandPlan(plan, policy);
          const r = await this.h.propose(
            encodeCommand({
              kind: CommandKind.LeaseGrant,
              leaderTimeMs: at,
              group,
              policy,
              leaseMs: policy.leaseMs,
              max: 0,
              plan: cmdPlan,
            }),
            PROPOSE_TIMEOUT_MS,
          );
          const { grant } = leasedOut(r, 'grant');
          this.m.grantCommands.inc({ topic: this.h.topic, partition: String(this.h.partition), kind: 'plan' });
          this.countTtl(group, grant.ttlExpired, cmdPlan);
          if (grant.ttlExpired.length)
            this.h.logger.info('lease_records_expired', { group, records: grant.ttlExpired.length });
        });
        const ex = book.exhausted(group, now, policy, this.bounds(), SWEEP_BATCH);
        if (ex.length === 0) continue;
        const recs = policy.deadLetter ? await this.readRecords(ex.map((e) => e.offset)) : new Map<number, RecordIn>();
        const out = await this.expireExhausted(group, now, policy, ex, recs);
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
}
