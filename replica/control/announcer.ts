import { connect, type NatsConnection } from 'nats';
import { leaderSig } from '../../protocol/rpc-auth';
import {
  SUBJECTS,
  parseControlRequest,
  type ControlReply,
  type DiscoverReply,
  type LeaderAnnouncement,
  type StatusReport,
} from '../../common/control-subjects';
import { ControlVerifier, reportSig } from '../../common/control-auth';
import { DaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { natsServerOptions } from '../../common/nats-servers';
import type { PartitionReplica } from '../replica';

/**
 * The replica's side of the NATS control channel: leader announcements (on election and every
 * interval), status reports, control requests (request/reply) and discovery replies. NATS down is
 * degradable: the replica keeps serving, logs, sets a metric, and the client reconnects by itself.
 */
/** Inbox prefix of replica connections (the chart allows replicas to subscribe to it, not to `_INBOX.>`). */
export const REPLICA_INBOX_PREFIX = '_INBOX_replica';

export class Announcer {
  private nc: NatsConnection | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder();
  private readonly verifier: ControlVerifier;

  constructor(
    private readonly replica: PartitionReplica,
    private readonly opts: {
      url: string;
      topic: string;
      partition: number;
      intervalMs: number;
      clientEndpoint: string;
      logger: Logger;
      /** The topic's client key: announcements and discovery answers are signed with it. */
      signKey?: Buffer;
      /**
       * The admin key (of DAFTKA_ADMIN_SECRET): membership and leadership control requests must be
       * signed with it (common/control-auth.ts). Absent: they are taken unsigned (development).
       */
      controlKey?: Buffer;
    },
  ) {
    this.verifier = new ControlVerifier(opts.controlKey ?? null);
  }

  async start(): Promise<void> {
    const { logger } = this.opts;
    const lbl = { topic: this.opts.topic, partition: String(this.opts.partition) };
    this.replica.onLeaderChange = () => this.announce();
    this.timer = setInterval(() => {
      this.announce();
      this.report();
    }, this.opts.intervalMs);
    // Connect in the background: NATS being down at start must not stop the replica.
    void (async () => {
      while (!this.closed) {
        try {
          this.nc = await connect({
            ...natsServerOptions(this.opts.url.split(',')),
            name: `replica-${this.replica.id}`,
            // Replies to this replica's own requests (discovery for replay into another topic) come
            // to its own inbox space, the only one the chart's NATS permissions let a replica read.
            inboxPrefix: REPLICA_INBOX_PREFIX,
            reconnect: true,
            maxReconnectAttempts: -1,
            reconnectTimeWait: 250,
            reconnectJitter: 100,
            timeout: 2000,
          });
          break;
        } catch (err) {
          logger.warn('nats_connect_failed', { error: (err as Error).message });
          this.replica.metrics.natsConnected.set(lbl, 0);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      const nc = this.nc;
      if (nc === null) return;
      this.replica.metrics.natsConnected.set(lbl, 1);
      logger.info('nats_connected', { server: nc.getServer() });
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'disconnect') {
            this.replica.metrics.natsConnected.set(lbl, 0);
            logger.warn('nats_disconnected', {});
          } else if (s.type === 'reconnect') {
            this.replica.metrics.natsConnected.set(lbl, 1);
            logger.info('nats_reconnected', {});
            this.announce();
          }
        }
      })();
      this.serveControl(nc);
      this.serveDiscover(nc);
      this.announce();
    })();
  }

  private announce(): void {
    const nc = this.nc;
    const n = this.replica.raft;
    if (nc === null || nc.isClosed() || n === null || n.role !== 'leader') return;
    const a: LeaderAnnouncement = {
      v: 1,
      topic: this.opts.topic,
      partition: this.opts.partition,
      term: n.term,
      leaderId: this.replica.id,
      endpoint: this.opts.clientEndpoint,
      highWatermark: this.replica.state.nextOffset,
      ts: Date.now(),
    };
    if (this.opts.signKey) a.sig = leaderSig(this.opts.signKey, a);
    nc.publish(SUBJECTS.leader(this.opts.topic, this.opts.partition), this.enc.encode(JSON.stringify(a)));
  }

  private report(): void {
    const nc = this.nc;
    if (nc === null || nc.isClosed()) return;
    const key = this.opts.signKey;
    void this.statusReport().then((r) =>
      nc.publish(
        SUBJECTS.status(this.opts.topic, this.opts.partition, this.replica.id),
        // Signed with the topic's client key: the operator believes only signed reports of a topic.
        this.enc.encode(JSON.stringify(key ? { ...r, sig: reportSig(key, r) } : r)),
      ),
    );
  }

  async statusReport(): Promise<StatusReport> {
    const st = await this.replica.partition.status({
      topic: this.opts.topic,
      partition: this.opts.partition,
      requestId: 'status-report',
    });
    const n = this.replica.raft;
    let lag: Record<string, number> | undefined;
    if (n?.role === 'leader') {
      lag = {};
      const progress = n.status().progress ?? {};
      for (const [id, p] of Object.entries(progress))
        if (id !== this.replica.id) lag[id] = Math.max(0, st.lastIndex - p.match);
      const max = Math.max(0, ...Object.values(lag));
      this.replica.metrics.followerLag.set({ topic: this.opts.topic, partition: String(this.opts.partition) }, max);
    }
    return {
      v: 1,
      topic: st.topic,
      partition: st.partition,
      replicaId: st.replicaId,
      incarnation: st.replicaId.slice(st.replicaId.indexOf('.') + 1),
      role: st.role,
      term: st.term,
      leaderId: st.leaderId,
      lastIndex: st.lastIndex,
      commitIndex: st.commitIndex,
      appliedIndex: st.appliedIndex,
      highWatermark: st.highWatermark,
      logStartOffset: st.logStartOffset,
      logBytes: st.logBytes,
      ...(lag ? { lag } : {}),
      voters: st.voters,
      learners: st.learners,
      ready: this.replica.readiness().ready,
      ...(this.replica.disk.freeBytes !== null ? { freeBytes: this.replica.disk.freeBytes } : {}),
      ...(this.replica.disk.capacityBytes !== null ? { capacityBytes: this.replica.disk.capacityBytes } : {}),
      diskFull: this.replica.disk.full !== null,
      ts: Date.now(),
    };
  }

  private serveControl(nc: NatsConnection): void {
    const { topic, partition, logger } = this.opts;
    const sub = nc.subscribe(SUBJECTS.ctl(topic, partition));
    void (async () => {
      for await (const m of sub) {
        let reply: ControlReply;
        try {
          const req = parseControlRequest(JSON.parse(this.dec.decode(m.data)));
          if (typeof req === 'string') throw new DaftkaError('INVALID_REQUEST', req);
          const target = { topic, partition, requestId: `ctl-${Date.now()}` };
          if (req.op === 'status') {
            reply = { v: 1, ok: true, status: await this.statusReport() };
          } else {
            // Only the leader acts; followers stay silent so the leader's answer wins the request.
            if (this.replica.raft?.role !== 'leader') continue;
            // Signed with the topic's admin key, fresh, not seen before: else refused, nothing done.
            const refused = this.verifier.check(topic, partition, req, Date.now());
            if (refused !== null) throw new DaftkaError('FORBIDDEN', refused);
            if (req.op === 'transferLeadership')
              await this.replica.membership.transferLeadership({ ...target, to: req.to });
            else if (req.op === 'addLearner')
              await this.replica.membership.addLearner({ ...target, id: req.id, endpoint: req.endpoint ?? '' });
            else if (req.op === 'promote') await this.replica.membership.promote({ ...target, id: req.id });
            else await this.replica.membership.removeMember({ ...target, id: req.id });
            reply = { v: 1, ok: true };
          }
        } catch (err) {
          const e = err instanceof DaftkaError ? err : new DaftkaError('INVALID_REQUEST', (err as Error).message);
          reply = { v: 1, ok: false, code: e.code, detail: e.message };
        }
        logger.info('control_request', { ok: reply.ok, ...(reply.ok ? {} : { code: reply.code }) });
        m.respond(this.enc.encode(JSON.stringify(reply)));
      }
    })();
  }

  private serveDiscover(nc: NatsConnection): void {
    const sub = nc.subscribe(SUBJECTS.discover(this.opts.topic));
    void (async () => {
      for await (const m of sub) {
        const n = this.replica.raft;
        if (n === null || n.role !== 'leader') continue; // only leaders answer
        const entry = {
          partition: this.opts.partition,
          leaderId: this.replica.id,
          endpoint: this.opts.clientEndpoint,
          term: n.term,
        };
        const sig = this.opts.signKey
          ? { sig: leaderSig(this.opts.signKey, { topic: this.opts.topic, ...entry }) }
          : {};
        const r: DiscoverReply = { v: 1, partitions: [{ ...entry, ...sig }] };
        m.respond(this.enc.encode(JSON.stringify(r)));
      }
    })();
  }

  /** The NATS connection, once made (null before, and after close). */
  connection(): NatsConnection | null {
    return this.closed ? null : this.nc;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.nc?.close().catch(() => undefined);
  }
}
