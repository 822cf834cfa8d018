/**
 * What the replicas say on NATS (DESIGN §5), kept with the time the operator received it:
 * `daftka.v1.status.>` reports and `daftka.v1.leader.>` announcements. Payloads are validated at
 * this boundary; bad ones are counted and dropped. When something that matters for status or the
 * rebalancer changes in a partition (leader, term, a replica's role, readiness, caught-up-ness, a
 * report going stale), `onChange(topic)` fires so the topic is reconciled promptly; watermarks
 * alone do not fire it (they are refreshed on the status interval).
 */
import type { NatsConnection, Subscription } from 'nats';
import { SUBJECTS, type LeaderAnnouncement, type StatusReport } from '../common/control-subjects';
import type { Logger } from '../common/log';
import { checkReportSig } from '../common/control-auth';
import { checkLeaderSig } from '../protocol/rpc-auth';
import type { AnnouncementEntry, HealthSettings, ReportEntry } from './status';

/** Replica ids known per partition at most (old incarnations age out). */
const MAX_REPLICAS_PER_PARTITION = 32;

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isStr = (x: unknown, max = 256): x is string => typeof x === 'string' && x.length > 0 && x.length <= max;
const isStrList = (x: unknown): x is string[] => Array.isArray(x) && x.length <= 64 && x.every((s) => isStr(s));

export function parseStatusReport(raw: unknown): StatusReport | string {
  if (typeof raw !== 'object' || raw === null) return 'status report must be a JSON object';
  const r = raw as Record<string, unknown>;
  if (r.v !== 1) return `unsupported status report version ${JSON.stringify(r.v)}`;
  if (!isStr(r.topic, 63) || !isInt(r.partition) || !isStr(r.replicaId, 128) || !isStr(r.role, 32))
    return 'status report needs topic, partition, replicaId and role';
  for (const k of ['term', 'lastIndex', 'commitIndex', 'appliedIndex', 'highWatermark', 'logStartOffset', 'logBytes'])
    if (!isInt(r[k])) return `status report field ${k} must be a non-negative integer`;
  if (!isStrList(r.voters) || !isStrList(r.learners)) return 'status report voters and learners must be lists of ids';
  if (typeof r.ready !== 'boolean') return 'status report field ready must be a boolean';
  if (r.lag !== undefined) {
    if (typeof r.lag !== 'object' || r.lag === null || Object.keys(r.lag).length > 64)
      return 'status report lag must be an object';
    for (const v of Object.values(r.lag)) if (!isInt(v)) return 'status report lag values must be integers';
  }
  return r as unknown as StatusReport;
}

export function parseLeaderAnnouncement(raw: unknown): LeaderAnnouncement | string {
  if (typeof raw !== 'object' || raw === null) return 'leader announcement must be a JSON object';
  const r = raw as Record<string, unknown>;
  if (r.v !== 1) return `unsupported leader announcement version ${JSON.stringify(r.v)}`;
  if (!isStr(r.topic, 63) || !isInt(r.partition) || !isStr(r.leaderId, 128) || !isInt(r.term))
    return 'leader announcement needs topic, partition, leaderId and term';
  if (!isInt(r.highWatermark)) return 'leader announcement highWatermark must be an integer';
  return r as unknown as LeaderAnnouncement;
}

interface PartitionEntry {
  reports: Map<string, ReportEntry>;
  announcement?: AnnouncementEntry;
  signature: string;
}

export class ReportTable {
  private readonly parts = new Map<string, PartitionEntry>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly o: {
      settings: HealthSettings;
      onChange: (topic: string, partition: number) => void;
      now?: () => number;
    },
  ) {}

  private now(): number {
    return this.o.now ? this.o.now() : Date.now();
  }

  private entry(topic: string, partition: number): PartitionEntry {
    const key = `${topic}/${partition}`;
    let e = this.parts.get(key);
    if (!e) {
      e = { reports: new Map(), signature: '' };
      this.parts.set(key, e);
    }
    return e;
  }

  ingestStatus(r: StatusReport, receivedAtMs = this.now()): void {
    const e = this.entry(r.topic, r.partition);
    e.reports.delete(r.replicaId); // re-insert: Map order is age order
    e.reports.set(r.replicaId, { report: r, receivedAtMs });
    while (e.reports.size > MAX_REPLICAS_PER_PARTITION) e.reports.delete(e.reports.keys().next().value!);
    this.check(r.topic, r.partition, e, receivedAtMs);
  }

  ingestLeader(a: LeaderAnnouncement, receivedAtMs = this.now()): void {
    const e = this.entry(a.topic, a.partition);
    if (
      !e.announcement ||
      a.term >= e.announcement.announcement.term ||
      this.stale(e.announcement.receivedAtMs, receivedAtMs)
    )
      e.announcement = { announcement: a, receivedAtMs };
    this.check(a.topic, a.partition, e, receivedAtMs);
  }

  reports(topic: string, partition: number): ReportEntry[] {
    return [...(this.parts.get(`${topic}/${partition}`)?.reports.values() ?? [])];
  }

  announcement(topic: string, partition: number): AnnouncementEntry | undefined {
    return this.parts.get(`${topic}/${partition}`)?.announcement;
  }

  /** Drops what is known about a topic's partitions at or beyond `fromPartition` (all by default). */
  forget(topic: string, fromPartition = 0): void {
    for (const key of [...this.parts.keys()]) {
      const i = key.lastIndexOf('/');
      if (key.slice(0, i) === topic && Number(key.slice(i + 1)) >= fromPartition) this.parts.delete(key);
    }
  }

  get partitionsKnown(): number {
    return this.parts.size;
  }

  /** Re-checks every partition (reports going stale change the picture without a new message). */
  sweep(nowMs = this.now()): void {
    for (const [key, e] of this.parts) {
      const i = key.lastIndexOf('/');
      // Forget replicas silent for much longer than the stale time (old incarnations, removed pods).
      for (const [id, r] of e.reports) if (nowMs - r.receivedAtMs > 30 * this.o.settings.staleMs) e.reports.delete(id);
      this.check(key.slice(0, i), Number(key.slice(i + 1)), e, nowMs);
    }
  }

  startSweeping(intervalMs: number): void {
    this.sweeper = setInterval(() => this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private stale(atMs: number, nowMs: number): boolean {
    return nowMs - atMs > this.o.settings.staleMs;
  }

  /** The facts that matter for status conditions and the rebalancer, as one string. */
  private signature(e: PartitionEntry, nowMs: number): string {
    const fresh = [...e.reports.values()].filter((r) => !this.stale(r.receivedAtMs, nowMs));
    let leader: StatusReport | undefined;
    for (const r of fresh)
      if (r.report.role === 'leader' && (!leader || r.report.term > leader.term)) leader = r.report;
    const ann =
      e.announcement && !this.stale(e.announcement.receivedAtMs, nowMs) ? e.announcement.announcement : undefined;
    const parts = fresh
      .map((r) => {
        const lag = leader?.lag?.[r.report.replicaId];
        const caughtUp = lag === undefined || lag <= this.o.settings.maxLagEntries;
        return `${r.report.replicaId}:${r.report.role}:${r.report.ready ? 1 : 0}:${caughtUp ? 1 : 0}`;
      })
      .sort();
    return [
      ann ? `${ann.leaderId}@${ann.term}` : '-',
      leader ? `${leader.replicaId}@${leader.term}:${leader.voters.join(',')}|${leader.learners.join(',')}` : '-',
      ...parts,
    ].join(' ');
  }

  private check(topic: string, partition: number, e: PartitionEntry, nowMs: number): void {
    const sig = this.signature(e, nowMs);
    if (sig !== e.signature) {
      e.signature = sig;
      this.o.onChange(topic, partition);
    }
  }
}

/** Subscribes the table to the replicas' subjects; returns the subscriptions (to close). */
export function subscribeReports(
  nc: NatsConnection,
  table: ReportTable,
  o: {
    logger: Logger;
    onMessage?: (kind: 'status' | 'leader', ok: boolean) => void;
    /**
     * The topic's client key, once the operator knows it: a badly signed report or announcement
     * of that topic is dropped as invalid, and so is an unsigned one once a signed one of that
     * topic was seen (replicas sign both; older ones, until they are rolled, do not). Without a
     * key they are taken as they come.
     */
    keyFor?: (topic: string) => Buffer | undefined;
  },
): Subscription[] {
  const dec = new TextDecoder();
  /** `kind/topic` of which a correctly signed message was seen (bounded: only real topics' keys verify). */
  const signedSeen = new Set<string>();
  const handle = (kind: 'status' | 'leader') => (err: Error | null, msg: { data: Uint8Array; subject: string }) => {
    if (err) {
      o.logger.warn('nats_subscription_error', { kind, error: err.message });
      return;
    }
    let parsed: StatusReport | LeaderAnnouncement | string;
    try {
      const raw = JSON.parse(dec.decode(msg.data)) as unknown;
      parsed = kind === 'status' ? parseStatusReport(raw) : parseLeaderAnnouncement(raw);
    } catch (e) {
      parsed = `not JSON: ${(e as Error).message}`;
    }
    if (typeof parsed !== 'string') {
      const key = o.keyFor?.(parsed.topic);
      const latch = `${kind}/${parsed.topic}`;
      if (key !== undefined) {
        const sig = (parsed as { sig?: unknown }).sig;
        if (sig === undefined) {
          // Replicas of a release before signing do not sign: taken until the topic's first signed
          // message (an upgrade rolls them while the operator watches their health); after it, never.
          if (signedSeen.has(latch)) parsed = `unsigned ${kind} of topic ${parsed.topic}`;
        } else if (
          kind === 'status'
            ? checkReportSig(key, parsed)
            : checkLeaderSig(key, parsed as LeaderAnnouncement, (parsed as LeaderAnnouncement).sig)
        )
          signedSeen.add(latch);
        else parsed = `badly signed ${kind} of topic ${parsed.topic}`;
      }
    }
    if (typeof parsed === 'string') {
      o.onMessage?.(kind, false);
      o.logger.debug('nats_report_invalid', { kind, subject: msg.subject, error: parsed });
      return;
    }
    o.onMessage?.(kind, true);
    if (kind === 'status') table.ingestStatus(parsed as StatusReport);
    else table.ingestLeader(parsed as LeaderAnnouncement);
  };
  return [
    nc.subscribe(SUBJECTS.statusAll, { callback: handle('status') }),
    nc.subscribe(SUBJECTS.leaderAll, { callback: handle('leader') }),
  ];
}
