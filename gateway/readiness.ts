/**
 * The launch-readiness report (DESIGN §6, docs/readiness.md): what the gateway measured (the
 * signals) → one status per check → an overall `ready | warning | not_ready`. A pure function of
 * its inputs; gathering the signals (replica status calls, NATS status reports, the gateway's own
 * counters, dead-letter listings) is readiness-service.ts.
 *
 * A check whose signal the gateway cannot reach is `unknown`, with the reason, never a guess.
 * `unknown` does not change the overall status (local mode would otherwise never be ready); the
 * report counts unknown checks so a launch review sees what was not measured.
 */

export type CheckStatus = 'ok' | 'warning' | 'not_ready' | 'unknown';
export type OverallStatus = 'ready' | 'warning' | 'not_ready';

export const CHECK_IDS = [
  'leaderless_partitions',
  'under_replicated_partitions',
  'replica_lag',
  'storage_pressure',
  'free_disk',
  'produce_error_rate',
  'produce_latency',
  'shedding',
  'throttling',
  'dead_letter_load',
  'dead_letter_growth',
  'nats',
  'operator_reconcile',
] as const;
export type CheckId = (typeof CHECK_IDS)[number];

export interface Check {
  id: CheckId;
  status: CheckStatus;
  /** What was measured (null when nothing could be). */
  value: number | string | null;
  /** The bound the value is held to (`warning` and/or `not_ready`); null when the check has none. */
  threshold: { warning?: number; not_ready?: number } | null;
  unit: string;
  reason: string;
}

export interface ReadinessReport {
  status: OverallStatus;
  /** ms since the epoch. */
  at: number;
  checks: Check[];
  summary: Record<CheckStatus, number>;
}

/** The thresholds (gateway config `readiness*`; defaults in docs/readiness.md). */
export interface ReadinessThresholds {
  /** Entries a follower may be behind its leader: warning above, not_ready above the second. */
  lagWarnEntries: number;
  lagNotReadyEntries: number;
  /** Produce answers that were 5xx, as a fraction of produce answers in the window. */
  produceErrorWarnRatio: number;
  produceErrorNotReadyRatio: number;
  /** Produce answers slower than the latency SLO's 50 ms, as a fraction. */
  produceSlowWarnRatio: number;
  produceSlowNotReadyRatio: number;
  /** Requests answered 503 OVERLOADED by a gateway bound, as a fraction of all requests. */
  shedWarnRatio: number;
  shedNotReadyRatio: number;
  /** Requests answered 429 QUOTA_EXCEEDED, as a fraction of all requests (warning only). */
  throttleWarnRatio: number;
  /** Active dead letters across all topics. */
  deadLetterWarnEntries: number;
  /** Active dead letters added per hour. */
  deadLetterGrowthWarnPerHour: number;
  /** Free share of a replica's data volume below which free_disk is a warning. */
  freeDiskWarnRatio: number;
  /** Fewer requests than this in the window are too few to judge a ratio (the check says ok). */
  minRequests: number;
}

export const DEFAULT_THRESHOLDS: ReadinessThresholds = {
  lagWarnEntries: 10_000,
  lagNotReadyEntries: 100_000,
  produceErrorWarnRatio: 0.001,
  produceErrorNotReadyRatio: 0.0144,
  produceSlowWarnRatio: 0.01,
  produceSlowNotReadyRatio: 0.144,
  shedWarnRatio: 0.01,
  shedNotReadyRatio: 0.1,
  throttleWarnRatio: 0.05,
  deadLetterWarnEntries: 1000,
  deadLetterGrowthWarnPerHour: 100,
  freeDiskWarnRatio: 0.1,
  minRequests: 100,
};

/** One partition as the gateway saw it. */
export interface PartitionSignal {
  topic: string;
  partition: number;
  /** Replicas the catalog lists for it (its replication factor). */
  replicas: number;
  /** From a replica's status answer; absent when no replica answered. */
  status?: { leaderId: string | null; term: number; voters: number; learners: number; logBytes: number };
  error?: string;
}

/** From the replicas' periodic NATS status reports (daftka.v1.status.>), fresh ones only. */
export interface ReportSignals {
  /** Reports received and still fresh. */
  replicas: number;
  /** Replicas reporting not ready, as `topic/partition/replica`. */
  notReady: string[];
  /** Largest follower lag any leader reported, and where. */
  maxLagEntries: number;
  maxLagAt: string | null;
  maxLogBytes: number;
  /** Free disk of the replicas' data directories (reports that carry it; absent: none does). */
  disk?: {
    /** Reports with free and total bytes. */
    reporting: number;
    /** Replicas that refuse produce for lack of space (STORAGE_FULL), as `topic/partition/replica`. */
    full: string[];
    /** The replica with the least free share: its free bytes and share. */
    minFreeBytes: number | null;
    minFreeRatio: number | null;
    minFreeAt: string | null;
  };
}

/** Counter differences over the rate window (readiness-service.ts keeps the samples). */
export interface TrafficSignals {
  windowSeconds: number;
  produce: number;
  produceErrors: number;
  produceSlow: number;
  requests: number;
  shed: number;
  throttled: number;
}

export interface DeadLetterSignals {
  /** Active dead letters counted; `atLeast` when a partition had more than the scan bound. */
  active: number;
  atLeast: boolean;
  /** Active dead letters added per hour, from the history; null before there is an hour-old sample. */
  growthPerHour: number | null;
  growthWindowSeconds: number;
  /** Partitions whose dead letters could not be listed. */
  errors: number;
  /** Leased groups and dead letters are not served by this gateway. */
  disabled: boolean;
}

/** The operator's own health report (daftka.v1.operator.health), its leading instance's. */
export interface OperatorSignals {
  instance: string;
  leader: boolean;
  synced: boolean;
  /** Since the gateway received it. */
  reportAgeMs: number;
  reconcileErrors: number;
  lastError: { atMs: number; kind: string; message: string; ageMs: number } | null;
}

export interface ReadinessSignals {
  at: number;
  partitions: PartitionSignal[];
  /** null: NATS is off, or no status report has arrived. */
  reports: ReportSignals | null;
  /** null: no operator was ever heard (local mode, NATS off, an operator before this report). */
  operator?: OperatorSignals | null;
  nats: 'connected' | 'disconnected' | 'disabled';
  traffic: TrafficSignals;
  deadLetters: DeadLetterSignals;
}

const pct = (x: number) => `${Number((x * 100).toPrecision(3))}%`;

function graded(
  id: CheckId,
  value: number,
  warn: number | undefined,
  notReady: number | undefined,
  unit: string,
  reasons: { ok: string; warning: string; not_ready: string },
): Check {
  const status: CheckStatus =
    notReady !== undefined && value > notReady ? 'not_ready' : warn !== undefined && value > warn ? 'warning' : 'ok';
  return {
    id,
    status,
    value,
    threshold: {
      ...(warn !== undefined ? { warning: warn } : {}),
      ...(notReady !== undefined ? { not_ready: notReady } : {}),
    },
    unit,
    reason: reasons[status as 'ok' | 'warning' | 'not_ready'],
  };
}

function listed(xs: string[], max = 5): string {
  return xs.length <= max ? xs.join(', ') : `${xs.slice(0, max).join(', ')} and ${xs.length - max} more`;
}

/** A ratio over the window; with no traffic there is nothing to judge (ok, value null). */
function ratioCheck(
  id: CheckId,
  bad: number,
  total: number,
  windowSeconds: number,
  warn: number,
  notReady: number | undefined,
  what: string,
  minRequests: number,
): Check {
  const win = `the last ${Math.round(windowSeconds)} s`;
  if (total < Math.max(1, minRequests))
    return {
      id,
      status: 'ok',
      value: total === 0 ? null : bad / total,
      threshold: { warning: warn, ...(notReady !== undefined ? { not_ready: notReady } : {}) },
      unit: 'ratio',
      reason:
        total === 0
          ? `no requests in ${win}: nothing to judge`
          : `${bad} of ${total} requests ${what} in ${win}: fewer than ${minRequests} requests are too few to judge`,
    };
  const r = bad / total;
  return graded(id, r, warn, notReady, 'ratio', {
    ok: `${pct(r)} of ${total} requests ${what} in ${win}`,
    warning: `${pct(r)} of ${total} requests ${what} in ${win}, above ${pct(warn)}`,
    not_ready: `${pct(r)} of ${total} requests ${what} in ${win}, above ${pct(notReady ?? 0)}`,
  });
}

export function evaluateReadiness(s: ReadinessSignals, t: ReadinessThresholds): ReadinessReport {
  const checks: Check[] = [];
  const name = (p: PartitionSignal) => `${p.topic}/${p.partition}`;

  // Quorum: a partition nobody leads cannot take writes.
  const leaderless = s.partitions.filter((p) => p.status === undefined || p.status.leaderId === null);
  checks.push(
    graded('leaderless_partitions', leaderless.length, undefined, 0, 'partitions', {
      ok: `every one of ${s.partitions.length} partitions has a leader`,
      warning: '',
      not_ready: `no leader: ${listed(leaderless.map((p) => (p.error ? `${name(p)} (${p.error})` : name(p))))}`,
    }),
  );

  // Under-replicated: fewer voters than the catalog's replicas, a learner still catching up, or a
  // replica reporting not ready (a lagging or restarting follower).
  const under = new Set<string>();
  for (const p of s.partitions)
    if (p.status && (p.status.voters < p.replicas || p.status.learners > 0)) under.add(name(p));
  for (const r of s.reports?.notReady ?? []) under.add(r.split('/').slice(0, 2).join('/'));
  checks.push(
    graded('under_replicated_partitions', under.size, 0, undefined, 'partitions', {
      ok: 'every partition has all its replicas as voters' + (s.reports ? ', all reporting ready' : ''),
      warning: `fewer voters than replicas, a learner catching up, or a replica not ready: ${listed([...under])}`,
      not_ready: '',
    }),
  );

  // Replica lag: only the leaders know their followers' progress; they report it on NATS.
  if (s.reports === null)
    checks.push({
      id: 'replica_lag',
      status: 'unknown',
      value: null,
      threshold: { warning: t.lagWarnEntries, not_ready: t.lagNotReadyEntries },
      unit: 'entries',
      reason:
        s.nats === 'disabled'
          ? 'NATS is off: follower lag reaches the gateway only in the leaders’ NATS status reports'
          : 'no replica status report received on NATS yet',
    });
  else
    checks.push(
      graded('replica_lag', s.reports.maxLagEntries, t.lagWarnEntries, t.lagNotReadyEntries, 'entries', {
        ok: `largest follower lag ${s.reports.maxLagEntries} entries (${s.reports.replicas} replicas reporting)`,
        warning: `a follower of ${s.reports.maxLagAt} is ${s.reports.maxLagEntries} entries behind its leader`,
        not_ready: `a follower of ${s.reports.maxLagAt} is ${s.reports.maxLagEntries} entries behind its leader`,
      }),
    );

  // Storage: the largest replica log; the volume itself is judged by free_disk below.
  const logBytes = Math.max(
    0,
    s.reports?.maxLogBytes ?? 0,
    ...s.partitions.map((p) => (p.status ? p.status.logBytes : 0)),
  );
  checks.push({
    id: 'storage_pressure',
    status: 'unknown',
    value: logBytes,
    threshold: null,
    unit: 'bytes',
    reason:
      `largest replica log ${logBytes} bytes; a log has no bound of its own here (retention sets it), ` +
      'the space left on its volume is the free_disk check',
  });
  // Free disk: each replica reports statfs of its data directory and whether it is disk-full
  // (produce refused STORAGE_FULL, docs/crash-matrix.md). Any such replica is not_ready; the
  // least free share below the threshold is a warning.
  const disk = s.reports?.disk;
  if (s.reports === null || disk === undefined || (disk.reporting === 0 && disk.full.length === 0))
    checks.push({
      id: 'free_disk',
      status: 'unknown',
      value: null,
      threshold: { warning: t.freeDiskWarnRatio },
      unit: 'ratio',
      reason:
        s.nats === 'disabled'
          ? 'NATS is off: free disk reaches the gateway only in the replicas’ NATS status reports'
          : s.reports === null
            ? 'no replica status report received on NATS yet'
            : 'no replica reported its free disk yet',
    });
  else {
    const ratio = disk.minFreeRatio;
    const least =
      ratio === null
        ? 'no free space reported'
        : `${pct(ratio)} (${disk.minFreeBytes} bytes) free on ${disk.minFreeAt}`;
    checks.push({
      id: 'free_disk',
      status: disk.full.length > 0 ? 'not_ready' : ratio !== null && ratio < t.freeDiskWarnRatio ? 'warning' : 'ok',
      value: ratio,
      threshold: { warning: t.freeDiskWarnRatio },
      unit: 'ratio',
      reason:
        disk.full.length > 0
          ? `disk full, produce refused (STORAGE_FULL): ${listed(disk.full)}; least free ${least}`
          : ratio !== null && ratio < t.freeDiskWarnRatio
            ? `least free ${least}, below ${pct(t.freeDiskWarnRatio)}`
            : `least free ${least} (${disk.reporting} replicas reporting)`,
    });
  }

  // The gateway's own counters, over the rate window: what clients saw.
  const tr = s.traffic;
  checks.push(
    ratioCheck(
      'produce_error_rate',
      tr.produceErrors,
      tr.produce,
      tr.windowSeconds,
      t.produceErrorWarnRatio,
      t.produceErrorNotReadyRatio,
      'answered 5xx',
      t.minRequests,
    ),
  );
  checks.push(
    ratioCheck(
      'produce_latency',
      tr.produceSlow,
      tr.produce,
      tr.windowSeconds,
      t.produceSlowWarnRatio,
      t.produceSlowNotReadyRatio,
      'slower than 50 ms',
      t.minRequests,
    ),
  );
  checks.push(
    ratioCheck(
      'shedding',
      tr.shed,
      tr.requests,
      tr.windowSeconds,
      t.shedWarnRatio,
      t.shedNotReadyRatio,
      'shed (503 OVERLOADED by a gateway bound)',
      t.minRequests,
    ),
  );
  checks.push(
    ratioCheck(
      'throttling',
      tr.throttled,
      tr.requests,
      tr.windowSeconds,
      t.throttleWarnRatio,
      undefined,
      'throttled (429 QUOTA_EXCEEDED)',
      t.minRequests,
    ),
  );

  // Dead letters: the load (active entries) and its growth (from the history of snapshots).
  const dl = s.deadLetters;
  if (dl.disabled) {
    for (const id of ['dead_letter_load', 'dead_letter_growth'] as const)
      checks.push({
        id,
        status: 'unknown',
        value: null,
        threshold: null,
        unit: id === 'dead_letter_load' ? 'entries' : 'entries/h',
        reason: 'this gateway does not serve leased groups and dead letters',
      });
  } else {
    const load = graded('dead_letter_load', dl.active, t.deadLetterWarnEntries, undefined, 'entries', {
      ok: `${dl.atLeast ? 'at least ' : ''}${dl.active} active dead letters`,
      warning: `${dl.atLeast ? 'at least ' : ''}${dl.active} active dead letters: replay or archive them`,
      not_ready: '',
    });
    if (dl.errors > 0) load.reason += `; ${dl.errors} partition(s) could not be listed`;
    checks.push(load);
    if (dl.growthPerHour === null)
      checks.push({
        id: 'dead_letter_growth',
        status: 'unknown',
        value: null,
        threshold: { warning: t.deadLetterGrowthWarnPerHour },
        unit: 'entries/h',
        reason: 'not enough snapshot history to compare with yet (5 minutes, or the growth window if shorter)',
      });
    else {
      const g = Math.round(dl.growthPerHour * 10) / 10;
      const over = `over the last ${Math.round(dl.growthWindowSeconds)} s`;
      checks.push(
        graded('dead_letter_growth', g, t.deadLetterGrowthWarnPerHour, undefined, 'entries/h', {
          ok: `${g} active dead letters per hour ${over}`,
          warning: `${g} active dead letters per hour ${over}: consumers keep rejecting or timing out`,
          not_ready: '',
        }),
      );
    }
  }

  checks.push(
    s.nats === 'disconnected'
      ? {
          id: 'nats',
          status: 'warning',
          value: 'disconnected',
          threshold: null,
          unit: '',
          reason:
            'NATS unreachable: serving from the leader table and redirects; leader updates and status reports paused',
        }
      : {
          id: 'nats',
          status: 'ok',
          value: s.nats,
          threshold: null,
          unit: '',
          reason:
            s.nats === 'connected' ? 'connected' : 'NATS is off (natsUrl=off): routing by replica redirects alone',
        },
  );

  checks.push(operatorCheck(s.operator ?? null));

  const summary: Record<CheckStatus, number> = { ok: 0, warning: 0, not_ready: 0, unknown: 0 };
  for (const c of checks) summary[c.status]++;
  const status: OverallStatus = summary.not_ready > 0 ? 'not_ready' : summary.warning > 0 ? 'warning' : 'ready';
  return { status, at: s.at, checks, summary };
}

/** A reconcile error younger than this makes the operator check a warning. */
export const OPERATOR_ERROR_WINDOW_MS = 5 * 60_000;
/** The operator's leader is silent past this (it reports every 5 s). */
export const OPERATOR_SILENT_MS = 30_000;

/** The operator's reconciling, from its health report: never not_ready (it is off the data path). */
function operatorCheck(o: OperatorSignals | null): Check {
  const base = { id: 'operator_reconcile' as const, threshold: null, unit: '' };
  if (o === null)
    return {
      ...base,
      status: 'unknown',
      value: null,
      reason: 'no operator health report (local mode, NATS off, or no operator running)',
    };
  if (o.reportAgeMs > OPERATOR_SILENT_MS)
    return {
      ...base,
      status: 'warning',
      value: o.reconcileErrors,
      reason: `no operator report for ${Math.round(o.reportAgeMs / 1000)} s (last from ${o.instance})`,
    };
  if (!o.leader)
    return { ...base, status: 'warning', value: o.reconcileErrors, reason: 'no operator instance holds the Lease' };
  if (!o.synced)
    return {
      ...base,
      status: 'warning',
      value: o.reconcileErrors,
      reason: 'the leading operator is syncing its caches',
    };
  if (o.lastError !== null && o.lastError.ageMs < OPERATOR_ERROR_WINDOW_MS)
    return {
      ...base,
      status: 'warning',
      value: o.reconcileErrors,
      reason: `reconcile error ${Math.round(o.lastError.ageMs / 1000)} s ago (${o.lastError.kind}): ${o.lastError.message}`,
    };
  return {
    ...base,
    status: 'ok',
    value: o.reconcileErrors,
    reason: `reconciling (${o.instance}); no error in the last ${OPERATOR_ERROR_WINDOW_MS / 60_000} min`,
  };
}

/** The compact form of a snapshot in the history: overall, and each check's status and value. */
export interface HistoryEntry {
  at: number;
  status: OverallStatus;
  checks: Record<string, { status: CheckStatus; value: number | string | null }>;
}

/** What the readiness routes read (readiness-service.ts; a fake in unit tests). */
export interface ReadinessSource {
  readonly intervalMs: number;
  readonly historyCapacity: number;
  /** A fresh report. */
  report(): Promise<ReadinessReport>;
  /** The newest `limit` snapshots, oldest first. */
  historyEntries(limit?: number): HistoryEntry[];
}

/** Numeric form of a status, for the metric: ok/ready 0, warning 1, not_ready 2, unknown -1. */
export function statusValue(s: CheckStatus | OverallStatus): number {
  return s === 'ok' || s === 'ready' ? 0 : s === 'warning' ? 1 : s === 'not_ready' ? 2 : -1;
}

/** A bounded ring of snapshots, oldest first. */
export class SnapshotHistory<T> {
  private readonly items: T[] = [];
  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('history capacity must be at least 1');
  }
  push(x: T): void {
    this.items.push(x);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }
  /** The newest `n` (all when absent), oldest first. */
  last(n?: number): T[] {
    return n === undefined ? [...this.items] : this.items.slice(Math.max(0, this.items.length - n));
  }
  get size(): number {
    return this.items.length;
  }
}
