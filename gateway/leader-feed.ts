import { connect, Events, type Msg, type NatsConnection } from 'nats';
import { checkLeaderSig } from '../protocol/rpc-auth';
import type client from 'prom-client';
import { Backoff, sleep } from '../common/backoff';
import type { Logger } from '../common/log';
import { counter, gauge } from '../common/metrics';
import { natsServerOptions } from '../common/nats-servers';
import { SUBJECTS } from '../common/control-subjects';
import { ENDPOINT_PATTERN, TOPIC_NAME_PATTERN } from '../common/names';
import type { TopicCatalog } from './catalog';
import { mapPool } from './handlers/context';
import type { LeaderAnnouncement, LeaderSource } from '../protocol/leader-router';
import { createAjv, type JsonSchema } from './validation';

/**
 * Feeds the router's leader table from NATS (DESIGN §5):
 *  - subscribes to `daftka.v1.leader.>`: `{v:1, topic, partition, term, leaderId, endpoint,
 *    highWatermark, ts}`, sent by leaders on election and every heartbeat interval;
 *  - on every (re)connection asks `daftka.v1.discover.<topic>` for each catalog topic
 *    (reply `{v:1, partitions:[{partition, leaderId, endpoint, term}]}`).
 * Only announcements for catalog partitions with a term ≥ the known one are taken (the router
 * checks), so the table stays bounded and never goes back to a deposed leader.
 *
 * NATS is the control channel only: while it is down the gateway keeps serving from its table
 * and from replica redirects, reports `degraded` on /readyz, and reconnects by itself (forever:
 * the first connection with capped backoff here, later ones by the NATS client every
 * `reconnectTimeWaitMs`), rediscovering leaders once back.
 */

const leaderFields: Record<string, JsonSchema> = {
  partition: { type: 'integer', minimum: 0 },
  term: { type: 'integer', minimum: 0 },
  leaderId: { type: 'string', minLength: 1, maxLength: 256 },
  endpoint: { type: 'string', pattern: ENDPOINT_PATTERN },
};

/** Unknown extra fields are allowed: newer replicas may add some (same `v`). */
export const LEADER_ANNOUNCEMENT_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['v', 'topic', 'partition', 'term', 'leaderId', 'endpoint'],
  properties: {
    v: { const: 1 },
    topic: { type: 'string', pattern: TOPIC_NAME_PATTERN },
    ...leaderFields,
    highWatermark: { type: 'integer', minimum: 0 },
    ts: { type: 'number' },
  },
};

export const DISCOVER_REPLY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['v', 'partitions'],
  properties: {
    v: { const: 1 },
    partitions: {
      type: 'array',
      maxItems: 10_000,
      items: { type: 'object', required: ['partition', 'leaderId', 'endpoint', 'term'], properties: leaderFields },
    },
  },
};

export interface LeaderSink {
  acceptLeader(topic: string, partition: number, a: LeaderAnnouncement, source: LeaderSource): boolean;
}

export interface NatsLeaderFeedOptions {
  /** NATS server URLs. */
  servers: string[];
  sink: LeaderSink;
  catalog: TopicCatalog;
  logger: Logger;
  registry?: client.Registry;
  /** Timeout of one discovery request. Default 2000. */
  discoverTimeoutMs?: number;
  /** Pause between reconnection attempts. Default 1000. */
  reconnectTimeWaitMs?: number;
  /**
   * A topic's client key, when the gateway holds it: then only announcements and discovery
   * entries signed with it (protocol/rpc-auth.ts leaderSig) are believed; others are counted
   * (`kind: unsigned`) and dropped. Without a key, the router's own checks still apply.
   */
  keyFor?: (topic: string) => Buffer | undefined;
}

const decoder = new TextDecoder();

export class NatsLeaderFeed {
  private nc?: NatsConnection;
  private up = false;
  private closed = false;
  private readonly stop = new AbortController();
  private readonly validateAnnouncement;
  private readonly validateDiscover;
  private readonly m?: { bad: client.Counter<'kind'>; reconnects: client.Counter };

  constructor(private readonly o: NatsLeaderFeedOptions) {
    const ajv = createAjv();
    this.validateAnnouncement = ajv.compile(LEADER_ANNOUNCEMENT_SCHEMA);
    this.validateDiscover = ajv.compile(DISCOVER_REPLY_SCHEMA);
    if (o.registry) {
      const isUp = () => this.up;
      gauge(o.registry, {
        name: 'daftka_gateway_nats_connected',
        help: '1 while the gateway is connected to NATS (leader announcements flowing), else 0',
        collect() {
          this.set(isUp() ? 1 : 0);
        },
      });
      this.m = {
        bad: counter(o.registry, {
          name: 'daftka_gateway_nats_bad_messages_total',
          help: 'NATS messages ignored because they did not validate (announcement or discover reply)',
          labelNames: ['kind'],
        }),
        reconnects: counter(o.registry, {
          name: 'daftka_gateway_nats_reconnects_total',
          help: 'Reconnections to NATS after losing it',
        }),
      };
    }
  }

  connected(): boolean {
    return this.up;
  }

  /**
   * Connect and keep reconnecting; never throws (the gateway serves without NATS). Resolves once
   * connected and the first discovery has run, or when closed first. Callers need not await it.
   * The first connection is retried here (cancellable by close()); after that the NATS client
   * reconnects by itself.
   */
  async start(): Promise<void> {
    const backoff = new Backoff({ initialMs: this.o.reconnectTimeWaitMs ?? 1000, maxMs: 10_000 });
    let nc: NatsConnection | undefined;
    while (!this.closed) {
      try {
        nc = await connect({
          ...natsServerOptions(this.o.servers),
          name: 'daftka-gateway',
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.o.reconnectTimeWaitMs ?? 1000,
        });
        break;
      } catch (err) {
        const delayMs = backoff.next();
        this.o.logger.warn('nats_connect_failed', { error: (err as Error).message, retry_in_ms: delayMs });
        await sleep(delayMs, this.stop.signal);
      }
    }
    if (nc === undefined) return;
    if (this.closed) {
      await nc.close();
      return;
    }
    this.nc = nc;
    this.up = true;
    this.o.logger.info('nats_connected', { server: nc.getServer() });
    nc.subscribe(SUBJECTS.leaderAll, { callback: (err, msg) => (err ? undefined : this.onAnnouncement(msg)) });
    void this.watchStatus(nc);
    await this.discover();
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect) {
        this.up = false;
        this.o.logger.warn('nats_disconnected', { server: String(s.data) });
      } else if (s.type === Events.Reconnect) {
        this.up = true;
        this.m?.reconnects.inc();
        this.o.logger.info('nats_reconnected', { server: String(s.data) });
        // Announcements sent while we were away are lost: ask again.
        void this.discover();
      }
    }
  }

  private decode(data: Uint8Array): unknown {
    try {
      return JSON.parse(decoder.decode(data));
    } catch {
      return undefined;
    }
  }

  private onAnnouncement(msg: Msg): void {
    const a = this.decode(msg.data) as
      { topic: string; partition: number; term: number; leaderId: string; endpoint: string } | undefined;
    // The payload must agree with the subject it came on.
    if (!this.validateAnnouncement(a) || msg.subject !== SUBJECTS.leader(a!.topic, a!.partition)) {
      this.m?.bad.inc({ kind: 'announcement' });
      this.o.logger.debug('nats_bad_announcement', { subject: msg.subject });
      return;
    }
    if (!this.signed(a!.topic, a!, (a as { sig?: unknown }).sig)) return;
    this.o.sink.acceptLeader(
      a!.topic,
      a!.partition,
      { leaderId: a!.leaderId, endpoint: a!.endpoint, term: a!.term },
      'nats',
    );
  }

  /** Ask the replicas of every catalog topic who leads (on connect, on reconnect; also callable). */
  async discover(): Promise<void> {
    const nc = this.nc;
    if (nc === undefined || nc.isClosed()) return;
    const timeout = this.o.discoverTimeoutMs ?? 2000;
    await mapPool(this.o.catalog.list(), 8, async (t) => {
      try {
        const reply = await nc.request(SUBJECTS.discover(t.name), new Uint8Array(0), { timeout });
        const doc = this.decode(reply.data) as
          { partitions: Array<{ partition: number; leaderId: string; endpoint: string; term: number }> } | undefined;
        if (!this.validateDiscover(doc)) {
          this.m?.bad.inc({ kind: 'discover' });
          return;
        }
        for (const p of doc!.partitions)
          if (this.signed(t.name, { topic: t.name, ...p }, (p as { sig?: unknown }).sig))
            this.o.sink.acceptLeader(
              t.name,
              p.partition,
              { leaderId: p.leaderId, endpoint: p.endpoint, term: p.term },
              'discover',
            );
      } catch (err) {
        // No responders or a timeout: the replicas will announce themselves anyway.
        this.o.logger.debug('nats_discover_failed', { topic: t.name, error: (err as Error).message });
      }
    });
  }

  /** Whether a leader claim may be believed: signed with the topic's key when the gateway holds it. */
  private signed(
    topic: string,
    a: { topic: string; partition: number; term: number; leaderId: string; endpoint: string },
    sig: unknown,
  ): boolean {
    const key = this.o.keyFor?.(topic);
    if (key === undefined || checkLeaderSig(key, a, sig)) return true;
    this.m?.bad.inc({ kind: 'unsigned' });
    this.o.logger.warn('nats_unsigned_leader', { topic, partition: a.partition });
    return false;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.up = false;
    this.stop.abort();
    const nc = this.nc;
    this.nc = undefined;
    if (nc !== undefined && !nc.isClosed()) await nc.drain().catch(() => nc.close());
  }
}
