import type client from 'prom-client';
import type { LeasedPartitionClient, PartitionClient } from '../protocol/methods';
import type { Logger } from '../common/log';
import { gauge } from '../common/metrics';
import { replicationFactorOf, type TopicCatalog } from './catalog';
import { errorEntry, mapPool } from './handlers/context';
import {
  CHECK_IDS,
  DEFAULT_THRESHOLDS,
  evaluateReadiness,
  SnapshotHistory,
  statusValue,
  type DeadLetterSignals,
  type HistoryEntry,
  type PartitionSignal,
  type ReadinessReport,
  type ReadinessSource,
  type ReadinessThresholds,
  type OperatorSignals,
  type ReportSignals,
  type TrafficSignals,
} from './readiness';

/**
 * Gathers the readiness signals and keeps the report's history (docs/readiness.md):
 *  - partitions: one `status` call per partition through the router (any replica answers);
 *  - replica lag, readiness and log size: the replicas' NATS status reports (readiness-feed.ts);
 *  - produce errors and latency, shedding, throttling: the gateway's own counters in its metrics
 *    registry, as differences over the rate window (samples taken at each snapshot);
 *  - dead letters: the active entries of every partition (bounded scan), growth from the samples.
 * A snapshot is taken every `intervalMs`; the last `historySize` are kept (bounded) and the
 * overall status is exported as `daftka_gateway_readiness_status` (0 ready, 1 warning,
 * 2 not_ready) with one `daftka_gateway_readiness_check_status{kind}` per check (-1 unknown).
 * A GET evaluates afresh; concurrent GETs share one evaluation.
 */

/** The latency SLO's threshold: a bucket boundary of the request-duration histogram. */
export const PRODUCE_SLOW_SECONDS = 0.05;
/** The dead-letter growth is judged over at least this much history (or the whole window if shorter). */
export const GROWTH_MIN_SPAN_MS = 300_000;
/** Dead letters counted per partition and evaluation at most (one listing page). */
export const DEAD_LETTER_SCAN_MAX = 1000;

export interface ReadinessOptions {
  catalog: TopicCatalog;
  router: PartitionClient;
  /** Dead letters; absent when the gateway does not serve leased groups. */
  leased?: LeasedPartitionClient;
  registry: client.Registry;
  logger: Logger;
  nats?: { connected(): boolean };
  reports?: { signals(): ReportSignals | null; operator?(): OperatorSignals | null };
  thresholds?: Partial<ReadinessThresholds>;
  /** Snapshot period (ms). Default 30000. */
  intervalMs?: number;
  /** Snapshots kept. Default 240. */
  historySize?: number;
  /** Window of the traffic ratios (ms). Default 300000. */
  windowMs?: number;
  /** Window of the dead-letter growth (ms). Default 3600000. */
  growthWindowMs?: number;
  nowMs?: () => number;
}

interface Sample {
  atMs: number;
  produce: number;
  produceErrors: number;
  produceFast: number;
  requests: number;
  shed: number;
  throttled: number;
  deadLetters: number | null;
}

export class ReadinessService implements ReadinessSource {
  readonly thresholds: ReadinessThresholds;
  readonly intervalMs: number;
  private readonly history: SnapshotHistory<HistoryEntry>;
  private readonly samples: Sample[] = [];
  private readonly maxSamples: number;
  private readonly windowMs: number;
  private readonly growthWindowMs: number;
  private readonly now: () => number;
  private inflight: Promise<ReadinessReport> | null = null;
  private latest: ReadinessReport | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly startedMs: number;

  constructor(private readonly o: ReadinessOptions) {
    this.thresholds = { ...DEFAULT_THRESHOLDS, ...(o.thresholds ?? {}) };
    this.intervalMs = o.intervalMs ?? 30_000;
    this.windowMs = o.windowMs ?? 300_000;
    this.growthWindowMs = o.growthWindowMs ?? 3_600_000;
    this.now = o.nowMs ?? Date.now;
    this.startedMs = this.now();
    this.history = new SnapshotHistory(o.historySize ?? 240);
    // Enough samples to reach back over the longer window, and never more.
    this.maxSamples = Math.ceil(Math.max(this.windowMs, this.growthWindowMs) / this.intervalMs) + 2;
    const latest = () => this.latest;
    gauge(o.registry, {
      name: 'daftka_gateway_readiness_status',
      help: 'Launch readiness of the last snapshot: 0 ready, 1 warning, 2 not_ready (GET /v1/readiness)',
      collect() {
        const r = latest();
        if (r) this.set(statusValue(r.status));
      },
    });
    gauge(o.registry, {
      name: 'daftka_gateway_readiness_check_status',
      help: 'Each readiness check of the last snapshot: 0 ok, 1 warning, 2 not_ready, -1 unknown',
      labelNames: ['kind'] as const,
      collect() {
        const r = latest();
        if (r) for (const c of r.checks) this.set({ kind: c.id }, statusValue(c.status));
      },
    });
  }

  /** Periodic snapshots (the history and the metric). Also takes the first one now. */
  start(): void {
    if (this.timer) return;
    void this.snapshot();
    this.timer = setInterval(() => void this.snapshot(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Take a snapshot now: evaluate, record the counters, append to the history. */
  async snapshot(): Promise<ReadinessReport> {
    try {
      const { report, sample } = await this.evaluateWithSample();
      this.samples.push(sample);
      if (this.samples.length > this.maxSamples) this.samples.splice(0, this.samples.length - this.maxSamples);
      this.history.push({
        at: report.at,
        status: report.status,
        checks: Object.fromEntries(report.checks.map((c) => [c.id, { status: c.status, value: c.value }])),
      });
      return report;
    } catch (err) {
      this.o.logger.warn('readiness_snapshot_failed', { error: (err as Error).message });
      throw err;
    }
  }

  /** A fresh report (concurrent callers share one evaluation). */
  report(): Promise<ReadinessReport> {
    this.inflight ??= this.evaluateWithSample()
      .then((x) => x.report)
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  /** The newest `limit` snapshots, oldest first. */
  historyEntries(limit?: number): HistoryEntry[] {
    return this.history.last(limit);
  }

  get historyCapacity(): number {
    return this.history.capacity;
  }

  private async evaluateWithSample(): Promise<{ report: ReadinessReport; sample: Sample }> {
    const at = this.now();
    const [partitions, dl, counters] = await Promise.all([this.partitions(), this.deadLetters(), this.counters()]);
    const sample: Sample = { atMs: at, ...counters, deadLetters: dl.disabled ? null : dl.active };
    const report = evaluateReadiness(
      {
        at,
        partitions,
        reports: this.o.reports?.signals() ?? null,
        operator: this.o.reports?.operator?.() ?? null,
        nats: this.o.nats === undefined ? 'disabled' : this.o.nats.connected() ? 'connected' : 'disconnected',
        traffic: this.traffic(sample),
        deadLetters: { ...dl, ...this.growth(sample) },
      },
      this.thresholds,
    );
    this.latest = report;
    return { report, sample };
  }

  /** The newest sample at least `windowMs` old, else the oldest there is (a shorter window). */
  private baseline(at: number, windowMs: number, usable: (s: Sample) => boolean = () => true): Sample | undefined {
    let best: Sample | undefined;
    for (const s of this.samples) {
      if (!usable(s) || s.atMs >= at) continue;
      if (s.atMs <= at - windowMs) best = s;
      else {
        best ??= s;
        break;
      }
    }
    return best;
  }

  private traffic(now: Sample): TrafficSignals {
    // With no earlier sample the counters since the process started are the window.
    const base = this.baseline(now.atMs, this.windowMs) ?? {
      atMs: this.startedMs,
      produce: 0,
      produceErrors: 0,
      produceFast: 0,
      requests: 0,
      shed: 0,
      throttled: 0,
    };
    const produce = now.produce - base.produce;
    return {
      windowSeconds: Math.max(0, (now.atMs - base.atMs) / 1000),
      produce,
      produceErrors: now.produceErrors - base.produceErrors,
      produceSlow: Math.max(0, produce - (now.produceFast - base.produceFast)),
      requests: now.requests - base.requests,
      shed: now.shed - base.shed,
      throttled: now.throttled - base.throttled,
    };
  }

  private growth(now: Sample): Pick<DeadLetterSignals, 'growthPerHour' | 'growthWindowSeconds'> {
    const base = this.baseline(now.atMs, this.growthWindowMs, (s) => s.deadLetters !== null);
    // A few seconds of history would extrapolate one burst to an hourly rate: wait for enough.
    const minSpanMs = Math.min(this.growthWindowMs, GROWTH_MIN_SPAN_MS);
    if (base === undefined || now.deadLetters === null || now.atMs - base.atMs < minSpanMs)
      return { growthPerHour: null, growthWindowSeconds: 0 };
    const hours = (now.atMs - base.atMs) / 3_600_000;
    return {
      growthPerHour: (now.deadLetters - (base.deadLetters as number)) / hours,
      growthWindowSeconds: (now.atMs - base.atMs) / 1000,
    };
  }

  private async partitions(): Promise<PartitionSignal[]> {
    const all = this.o.catalog.list().flatMap((t) => Array.from({ length: t.partitions }, (_, p) => ({ t, p })));
    return mapPool(all, 32, async ({ t, p }): Promise<PartitionSignal> => {
      const base = { topic: t.name, partition: p, replicas: replicationFactorOf(t, p) };
      try {
        const s = await this.o.router.status({ topic: t.name, partition: p, requestId: 'readiness' });
        return {
          ...base,
          status: {
            leaderId: s.leaderId,
            term: s.term,
            voters: s.voters.length,
            learners: s.learners.length,
            logBytes: s.logBytes,
          },
        };
      } catch (err) {
        return { ...base, error: errorEntry(err).code };
      }
    });
  }

  private async deadLetters(): Promise<Omit<DeadLetterSignals, 'growthPerHour' | 'growthWindowSeconds'>> {
    const leased = this.o.leased;
    if (leased === undefined) return { active: 0, atLeast: false, errors: 0, disabled: true };
    const all = this.o.catalog.list().flatMap((t) => Array.from({ length: t.partitions }, (_, p) => ({ t, p })));
    let active = 0;
    let atLeast = false;
    let errors = 0;
    await mapPool(all, 16, async ({ t, p }) => {
      try {
        const page = await leased.listDeadLetters({
          topic: t.name,
          partition: p,
          filter: { states: ['active'] },
          limit: DEAD_LETTER_SCAN_MAX,
          requestId: 'readiness',
        });
        active += page.items.length;
        if (page.nextAfterSeq !== null) atLeast = true;
      } catch {
        errors++;
      }
    });
    return { active, atLeast, errors, disabled: false };
  }

  /** The gateway's request counters, read from its registry (app.ts and metrics.ts own them). */
  private async counters(): Promise<Omit<Sample, 'atMs' | 'deadLetters'>> {
    const values = async (name: string) => {
      const m = this.o.registry.getSingleMetric(name);
      if (m === undefined) return [];
      return (await m.get()).values as Array<{
        labels: Record<string, string | number>;
        value: number;
        metricName?: string;
      }>;
    };
    const [requests, duration, shed, throttled] = await Promise.all([
      values('daftka_gateway_requests_total'),
      values('daftka_gateway_request_duration_seconds'),
      values('daftka_gateway_shed_requests_total'),
      values('daftka_gateway_throttled_requests_total'),
    ]);
    let produce = 0;
    let produceErrors = 0;
    let all = 0;
    for (const v of requests) {
      all += v.value;
      if (v.labels.route !== 'produce') continue;
      produce += v.value;
      if (String(v.labels.code).startsWith('5')) produceErrors += v.value;
    }
    let produceFast = 0;
    for (const v of duration)
      if (
        v.labels.route === 'produce' &&
        v.metricName?.endsWith('_bucket') &&
        Number(v.labels.le) === PRODUCE_SLOW_SECONDS
      )
        produceFast += v.value;
    const sum = (xs: Array<{ value: number }>) => xs.reduce((a, x) => a + x.value, 0);
    return { produce, produceErrors, produceFast, requests: all, shed: sum(shed), throttled: sum(throttled) };
  }
}

/** The check ids, for docs and the CLI. */
export { CHECK_IDS };
