import { connect, type NatsConnection } from 'nats';
import type { Logger } from '../common/log';
import { natsServerOptions } from '../common/nats-servers';
import { checkReportSig } from '../common/control-auth';
import { SUBJECTS, type OperatorHealth } from '../common/control-subjects';
import { TOPIC_NAME_PATTERN } from '../common/names';
import type { TopicCatalog } from './catalog';
import type { OperatorSignals, ReportSignals } from './readiness';
import { createAjv, type JsonSchema } from './validation';

/**
 * The replicas' periodic status reports (`daftka.v1.status.<topic>.<partition>.<replica>`, every
 * announce interval) as the readiness report reads them: follower lag (leaders only), readiness,
 * log size, and free disk (statfs of the data directory, and whether the replica is disk-full)
 * per replica. Its own NATS connection, so the leader feed stays what it is; NATS
 * down only makes these signals stale (the checks then say `unknown`). A topic whose client key
 * the gateway holds must sign its reports (`keyFor`), so another topic's replicas cannot make its
 * readiness say disk-full or lagging.
 *
 * Bounded: only reports for catalog partitions are kept, at most `maxReplicasPerPartition` per
 * partition and `maxReports` in all, and a report older than `maxAgeMs` (receive time) is dropped.
 */

const REPORT_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['v', 'topic', 'partition', 'replicaId', 'role', 'ready', 'logBytes'],
  properties: {
    v: { const: 1 },
    topic: { type: 'string', pattern: TOPIC_NAME_PATTERN },
    partition: { type: 'integer', minimum: 0 },
    replicaId: { type: 'string', minLength: 1, maxLength: 256 },
    role: { type: 'string', maxLength: 32 },
    ready: { type: 'boolean' },
    logBytes: { type: 'integer', minimum: 0 },
    lag: { type: 'object', maxProperties: 64, additionalProperties: { type: 'integer', minimum: 0 } },
    freeBytes: { type: 'integer', minimum: 0 },
    capacityBytes: { type: 'integer', minimum: 0 },
    diskFull: { type: 'boolean' },
  },
};

const OPERATOR_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['v', 'instance', 'leader', 'synced', 'reconcileErrors', 'lastError', 'ts'],
  properties: {
    v: { const: 1 },
    instance: { type: 'string', minLength: 1, maxLength: 256 },
    leader: { type: 'boolean' },
    synced: { type: 'boolean' },
    reconcileErrors: { type: 'integer', minimum: 0 },
    lastError: {
      oneOf: [
        { type: 'null' },
        {
          type: 'object',
          required: ['atMs', 'kind', 'message'],
          properties: {
            atMs: { type: 'integer', minimum: 0 },
            kind: { type: 'string', maxLength: 64 },
            message: { type: 'string', maxLength: 300 },
          },
        },
      ],
    },
    ts: { type: 'integer', minimum: 0 },
  },
};

/** A NATS message's JSON, or undefined (which no schema accepts) when it is not JSON. */
function parseMessage(data: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** Operator instances whose health is kept (the newest report of each). */
const MAX_OPERATOR_INSTANCES = 16;

interface Report {
  topic: string;
  partition: number;
  replicaId: string;
  ready: boolean;
  logBytes: number;
  lag?: Record<string, number>;
  freeBytes?: number;
  capacityBytes?: number;
  diskFull?: boolean;
  receivedMs: number;
}

export interface StatusReportFeedOptions {
  servers: string[];
  catalog: TopicCatalog;
  logger: Logger;
  /** Reports older than this are ignored. Default 15000 (15 announce intervals). */
  maxAgeMs?: number;
  maxReports?: number;
  reconnectTimeWaitMs?: number;
  nowMs?: () => number;
  /**
   * A topic's client key, when this gateway holds it: that topic's reports must then be signed
   * with it (`sig`, common/control-auth.ts), as the operator checks them. An unsigned report is
   * taken until the topic's first signed one (replicas of a release before signing), never after;
   * a badly signed one never. Without a key, reports are taken as they come.
   */
  keyFor?: (topic: string) => Buffer | undefined;
}

export class StatusReportFeed {
  private nc?: NatsConnection;
  private closed = false;
  private readonly reports = new Map<string, Report>();
  private readonly validate = createAjv().compile(REPORT_SCHEMA);
  private readonly validateOperator = createAjv().compile(OPERATOR_SCHEMA);
  private readonly operators = new Map<string, { health: OperatorHealth; receivedMs: number }>();
  /** Topics of which a correctly signed report was seen (catalog topics only: bounded by it). */
  private readonly signedSeen = new Set<string>();
  /** Reports dropped for a missing or bad signature (tests, and the debug log). */
  rejectedSignatures = 0;
  private readonly now: () => number;

  constructor(private readonly o: StatusReportFeedOptions) {
    this.now = o.nowMs ?? Date.now;
  }

  /** Connect in the background (never throws); the NATS client reconnects by itself. */
  start(): void {
    void (async () => {
      while (!this.closed) {
        try {
          const nc = await connect({
            ...natsServerOptions(this.o.servers),
            name: 'daftka-gateway-status',
            reconnect: true,
            maxReconnectAttempts: -1,
            reconnectTimeWait: this.o.reconnectTimeWaitMs ?? 1000,
          });
          if (this.closed) {
            await nc.close();
            return;
          }
          this.nc = nc;
          nc.subscribe(SUBJECTS.statusAll, { callback: (err, msg) => (err ? undefined : this.accept(msg.data)) });
          nc.subscribe(SUBJECTS.operatorHealth, {
            callback: (err, msg) => (err ? undefined : this.acceptOperator(msg.data)),
          });
          return;
        } catch (err) {
          this.o.logger.debug('status_feed_connect_failed', { error: (err as Error).message });
          await new Promise((r) => setTimeout(r, 2000).unref());
        }
      }
    })();
  }

  /** Take one report (exported for tests): invalid or non-catalog reports are ignored. */
  accept(data: Uint8Array): void {
    const doc = parseMessage(data);
    if (!this.validate(doc)) return;
    const r = doc as Omit<Report, 'receivedMs'>;
    const t = this.o.catalog.get(r.topic);
    if (t === undefined || r.partition >= t.partitions) return;
    const topicKey = this.o.keyFor?.(r.topic);
    if (topicKey !== undefined) {
      const sig = (doc as { sig?: unknown }).sig;
      if (sig === undefined ? this.signedSeen.has(r.topic) : !checkReportSig(topicKey, doc as object)) {
        this.rejectedSignatures++;
        this.o.logger.debug('status_report_signature_refused', { topic: r.topic, signed: sig !== undefined });
        return;
      }
      if (sig !== undefined) this.signedSeen.add(r.topic);
    }
    const key = `${r.topic}/${r.partition}/${r.replicaId}`;
    if (!this.reports.has(key) && this.reports.size >= (this.o.maxReports ?? 10_000)) this.prune();
    if (!this.reports.has(key) && this.reports.size >= (this.o.maxReports ?? 10_000)) return;
    this.reports.set(key, {
      topic: r.topic,
      partition: r.partition,
      replicaId: r.replicaId,
      ready: r.ready,
      logBytes: r.logBytes,
      ...(r.lag ? { lag: r.lag } : {}),
      ...(r.freeBytes !== undefined ? { freeBytes: r.freeBytes } : {}),
      ...(r.capacityBytes !== undefined ? { capacityBytes: r.capacityBytes } : {}),
      ...(r.diskFull !== undefined ? { diskFull: r.diskFull } : {}),
      receivedMs: this.now(),
    });
  }

  /** Take one operator health report (exported for tests): the newest per instance, bounded. */
  acceptOperator(data: Uint8Array): void {
    const doc = parseMessage(data);
    if (!this.validateOperator(doc)) return;
    const h = doc as OperatorHealth;
    if (!this.operators.has(h.instance) && this.operators.size >= MAX_OPERATOR_INSTANCES) {
      // Forget the instance heard from least recently (a replaced pod).
      let oldest: string | undefined;
      for (const [k, v] of this.operators)
        if (oldest === undefined || v.receivedMs < this.operators.get(oldest)!.receivedMs) oldest = k;
      if (oldest !== undefined) this.operators.delete(oldest);
    }
    this.operators.set(h.instance, { health: h, receivedMs: this.now() });
  }

  /**
   * What the operator says of itself: the instance that leads (or, with none leading, the newest
   * report); null when no operator was ever heard (local mode, NATS off).
   */
  operator(): OperatorSignals | null {
    let best: { health: OperatorHealth; receivedMs: number } | undefined;
    for (const o of this.operators.values())
      if (
        best === undefined ||
        (o.health.leader && !best.health.leader) ||
        (o.health.leader === best.health.leader && o.receivedMs > best.receivedMs)
      )
        best = o;
    if (best === undefined) return null;
    const now = this.now();
    return {
      instance: best.health.instance,
      leader: best.health.leader,
      synced: best.health.synced,
      reportAgeMs: now - best.receivedMs,
      reconcileErrors: best.health.reconcileErrors,
      lastError:
        best.health.lastError === null
          ? null
          : {
              ...best.health.lastError,
              ageMs: Math.max(0, best.health.ts - best.health.lastError.atMs) + (now - best.receivedMs),
            },
    };
  }

  private prune(): void {
    const oldest = this.now() - (this.o.maxAgeMs ?? 15_000);
    for (const [k, r] of this.reports)
      if (r.receivedMs < oldest || this.o.catalog.get(r.topic) === undefined) this.reports.delete(k);
  }

  /** What the fresh reports say; null when there is none. */
  signals(): ReportSignals | null {
    this.prune();
    if (this.reports.size === 0) return null;
    const out: ReportSignals = {
      replicas: 0,
      notReady: [],
      maxLagEntries: 0,
      maxLagAt: null,
      maxLogBytes: 0,
      disk: { reporting: 0, full: [], minFreeBytes: null, minFreeRatio: null, minFreeAt: null },
    };
    const disk = out.disk!;
    for (const r of this.reports.values()) {
      out.replicas++;
      const at = `${r.topic}/${r.partition}/${r.replicaId}`;
      if (r.diskFull === true) disk.full.push(at);
      if (r.freeBytes !== undefined && r.capacityBytes !== undefined && r.capacityBytes > 0) {
        disk.reporting++;
        const ratio = r.freeBytes / r.capacityBytes;
        if (disk.minFreeRatio === null || ratio < disk.minFreeRatio) {
          disk.minFreeRatio = ratio;
          disk.minFreeBytes = r.freeBytes;
          disk.minFreeAt = at;
        }
      }
      if (!r.ready) out.notReady.push(`${r.topic}/${r.partition}/${r.replicaId}`);
      out.maxLogBytes = Math.max(out.maxLogBytes, r.logBytes);
      for (const lag of Object.values(r.lag ?? {}))
        if (lag > out.maxLagEntries) {
          out.maxLagEntries = lag;
          out.maxLagAt = `${r.topic}/${r.partition}`;
        }
    }
    out.notReady.sort();
    disk.full.sort();
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    const nc = this.nc;
    this.nc = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.close();
  }
}
