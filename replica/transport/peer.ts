import net from 'node:net';
import { clientTlsOf, connectTls, createTlsServer, isCertificateError, type TlsSource } from '../../common/tls';
import { Backoff, type BackoffOptions } from '../../common/backoff';
import type { Logger } from '../../common/log';
import type { promClient } from '../../common/metrics';
import {
  DEFAULT_MAX_FRAME_BYTES,
  TCP_KEEPALIVE_MS,
  FrameDecoder,
  FrameError,
  FrameType,
  FrameWriter,
  PEER_FRAME_TYPES,
  type FrameErrorReason,
} from '../../protocol/frame';
import { MIN_PEER_SECRET_CHARS } from '../../common/peer-secret';
import {
  checkId,
  checkAck,
  decodeAck,
  decodeReject,
  encodeHello,
  NonceCache,
  signHello,
  type Hello,
  type VersionRange,
} from './handshake';
import { errorCode, InboundConnections } from './inbound';
import { makeMetrics, type PeerMetrics } from './peer-metrics';
import { SendQueue } from './send-queue';

/**
 * Raft messages between the replicas of one partition, over TCP (DESIGN §4 "Transport and ports").
 *
 * Each replica opens one outbound connection per peer and only sends on it; it receives on the
 * connections its peers opened to it. So between A and B there are two connections, A→B and B→A,
 * and neither side ever has to decide who dials whom. An outbound connection starts with a
 * handshake (PEER_HELLO → PEER_HELLO_ACK | PEER_HELLO_REJECT) before any message flows.
 *
 * Sending never blocks and never fails: messages wait in a bounded per-peer queue that drops
 * its OLDEST entry when full (Raft tolerates loss; see send-queue.ts). A lost connection is
 * `peer_connection_lost` in the crash matrix: recoverable, retried with capped jittered backoff.
 * Input that does not decode closes the connection it came on and is counted; it never throws
 * out of the transport.
 */

export interface PeerAddress {
  host: string;
  port: number;
}

export type PeerMessageHandler = (from: string, payload: Buffer) => void;

export interface PeerTransportOptions {
  selfId: string;
  /** `${topic}/${partition}`: both ends of every connection must agree on it. */
  clusterId: string;
  listenHost: string;
  /** 0 picks a free port (tests); read it back from `start()` or `address`. */
  listenPort: number;
  /** Where a peer listens now. Called on every connection attempt (pod IPs change); undefined = not yet known. */
  resolve: (peerId: string) => PeerAddress | undefined;
  /**
   * Admit a connecting peer that is not in the membership yet (e.g. a fresh learner hearing from
   * the leader that just added it). Admitted peers join the membership. Default: refuse.
   */
  acceptPeer?: (peerId: string) => boolean;
  /** Initial membership (other replicas; selfId is ignored if present). Change it with setPeers. */
  peers?: readonly string[];
  /** Per-peer send queue bound in bytes of payload. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Per-peer send queue bound in messages. Default 4096. */
  maxQueueMsgs?: number;
  /** Reconnect backoff. Default 50 ms doubling to 2 s, 50 % jitter. */
  backoff?: Partial<BackoffOptions>;
  /** Largest frame payload sent or accepted. Default 16 MiB. */
  maxFrameBytes?: number;
  /** Time allowed from TCP connect to a completed handshake, either direction. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** Inbound connections allowed at once before their handshake completes. Default 64. */
  maxPendingInbound?: number;
  /**
   * Payload (message codec) versions this replica can write and read; each connection uses the
   * highest both ends know (see handshake.ts). Default {1, 1}.
   */
  versions?: VersionRange;
  /**
   * The group's shared peer secret (at least 32 characters). Set: hellos are signed, and a peer
   * whose hello is not signed with it is refused (`unauthenticated`). Unset: no authentication.
   */
  secret?: string;
  /**
   * Mutual TLS on the peer port (common/tls.ts): both ends present a certificate of the same CA,
   * and the dialling end checks the acceptor's name (`serverName`, default the host it dials).
   * Confidentiality and integrity of the Raft traffic; the hello's HMAC stays the group
   * credential. Reloaded certificates apply to new connections. Absent: plain TCP.
   */
  tls?: { source: TlsSource; serverName?: string };
  logger: Logger;
  registry: promClient.Registry;
}

export const PEER_DEFAULTS = {
  maxQueueBytes: 64 * 1024 * 1024,
  maxQueueMsgs: 4096,
  backoff: { initialMs: 50, maxMs: 2000, multiplier: 2, jitter: 0.5 } satisfies BackoffOptions,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  handshakeTimeoutMs: 5000,
  maxPendingInbound: 64,
} as const;

/** Replicas of one group other than this one (replication factor ≤ 7, plus a spare slot). */
const MAX_PEERS = 8;

export type DropReason = 'queue_full' | 'too_large' | 'unknown_peer' | 'peer_removed' | 'closed';

/** One peer's outbound side: queue, connection, reconnect timer. */
class Outbound {
  readonly queue: SendQueue;
  readonly backoff: Backoff;
  socket: net.Socket | null = null;
  writer: FrameWriter | null = null;
  state: 'idle' | 'connecting' | 'open' | 'disposed' = 'idle';
  timer: NodeJS.Timeout | null = null;
  waitingDrain = false;
  /** Failures since the last successful handshake: the first is logged at info, the rest at debug. */
  failuresSinceOpen = 0;
  /** Payload version agreed for the open connection. */
  version = 1;
  readonly m: {
    framesSent: promClient.Counter.Internal;
    bytesSent: promClient.Counter.Internal;
    queueMessages: promClient.Gauge.Internal<'peer'>;
    queueBytes: promClient.Gauge.Internal<'peer'>;
  };

  constructor(
    readonly id: string,
    t: { maxQueueBytes: number; maxQueueMsgs: number; backoff: Partial<BackoffOptions>; metrics: PeerMetrics },
  ) {
    this.queue = new SendQueue({ maxQueueBytes: t.maxQueueBytes, maxQueueMsgs: t.maxQueueMsgs });
    this.backoff = new Backoff(t.backoff);
    this.m = {
      framesSent: t.metrics.framesSent.labels({ peer: id }),
      bytesSent: t.metrics.bytesSent.labels({ peer: id }),
      queueMessages: t.metrics.queueMessages.labels({ peer: id }),
      queueBytes: t.metrics.queueBytes.labels({ peer: id }),
    };
  }

  updateQueueGauges(): void {
    this.m.queueMessages.set(this.queue.length);
    this.m.queueBytes.set(this.queue.byteLength);
  }
}

export class PeerTransport {
  readonly selfId: string;
  readonly clusterId: string;
  /** Payload versions this replica writes and reads. */
  readonly versions: VersionRange;
  private readonly secret: Buffer | null;
  private readonly nonces = new NonceCache();
  private readonly opts: PeerTransportOptions;
  private readonly log: Logger;
  private readonly metrics: PeerMetrics;
  private readonly maxQueueBytes: number;
  private readonly maxQueueMsgs: number;
  private readonly backoffOpts: Partial<BackoffOptions>;
  private readonly maxFrameBytes: number;
  private readonly handshakeTimeoutMs: number;
  private readonly maxPendingInbound: number;

  private readonly outbound = new Map<string, Outbound>();
  private readonly inbound: InboundConnections;
  private handler: PeerMessageHandler | null = null;
  private server: net.Server | null = null;
  private state: 'new' | 'started' | 'closed' = 'new';
  private connectedCount = 0;

  constructor(opts: PeerTransportOptions) {
    checkId(opts.selfId, 'selfId');
    checkId(opts.clusterId, 'clusterId');
    this.opts = opts;
    this.selfId = opts.selfId;
    this.clusterId = opts.clusterId;
    this.versions = opts.versions ?? { min: 1, max: 1 };
    if (opts.secret !== undefined && opts.secret.length < MIN_PEER_SECRET_CHARS)
      throw new RangeError(`the peer secret must have at least ${MIN_PEER_SECRET_CHARS} characters`);
    this.secret = opts.secret ? Buffer.from(opts.secret, 'utf8') : null;
    if (!(
      Number.isInteger(this.versions.min) &&
      this.versions.min >= 1 &&
      this.versions.max >= this.versions.min &&
      this.versions.max <= 255
    ))
      throw new RangeError(`versions must be 1 ≤ min ≤ max ≤ 255, got ${this.versions.min}..${this.versions.max}`);
    this.log = opts.logger;
    this.metrics = makeMetrics(opts.registry);
    this.maxQueueBytes = opts.maxQueueBytes ?? PEER_DEFAULTS.maxQueueBytes;
    this.maxQueueMsgs = opts.maxQueueMsgs ?? PEER_DEFAULTS.maxQueueMsgs;
    this.backoffOpts = { ...PEER_DEFAULTS.backoff, ...(opts.backoff ?? {}) };
    new Backoff(this.backoffOpts); // validate once, at the edge
    this.maxFrameBytes = opts.maxFrameBytes ?? PEER_DEFAULTS.maxFrameBytes;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? PEER_DEFAULTS.handshakeTimeoutMs;
    this.maxPendingInbound = opts.maxPendingInbound ?? PEER_DEFAULTS.maxPendingInbound;
    new SendQueue({ maxQueueBytes: this.maxQueueBytes, maxQueueMsgs: this.maxQueueMsgs }); // validate bounds
    this.inbound = new InboundConnections({
      selfId: this.selfId,
      clusterId: this.clusterId,
      versions: this.versions,
      secret: this.secret,
      nonces: this.nonces,
      log: this.log,
      metrics: this.metrics,
      maxPendingInbound: this.maxPendingInbound,
      handshakeTimeoutMs: this.handshakeTimeoutMs,
      maxFrameBytes: this.maxFrameBytes,
      accepting: () => this.state === 'started',
      admitPeer: (from) => {
        if (this.outbound.has(from)) return true;
        if (!this.opts.acceptPeer?.(from)) return false;
        this.setPeers([...this.outbound.keys(), from]);
        return true;
      },
      handler: () => this.handler,
      badFrame: (reason, peer, detail) => this.badFrame(reason, peer, detail),
    });
    if (opts.peers) this.setPeers(opts.peers);
  }

  /** Listen on the peer port and dial every known peer. Resolves with the bound address. */
  async start(): Promise<PeerAddress> {
    if (this.state !== 'new') throw new Error(`PeerTransport.start() called in state ${this.state}`);
    const sockOpts = { noDelay: true, keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_MS };
    const server = this.opts.tls
      ? createTlsServer(
          this.opts.tls.source,
          { kind: 'peer_port', mutual: true, handshakeTimeoutMs: this.handshakeTimeoutMs, ...sockOpts },
          (s) => this.inbound.accept(s),
        )
      : net.createServer(sockOpts, (s) => this.inbound.accept(s));
    if (this.opts.tls) {
      // TLS handshakes run before the inbound bound (maxPendingInbound) sees a connection: cap them
      // at the listener too — the pending ones plus one established connection per possible peer.
      server.maxConnections = this.maxPendingInbound + MAX_PEERS;
      server.on('drop', () => this.metrics.handshakeRejected.inc({ reason: 'too_many_pending' }));
    }
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.listenPort, this.opts.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('peer_listener_error', { error: errorCode(err) }));
    this.state = 'started';
    for (const o of this.outbound.values()) this.connect(o);
    const addr = this.address;
    this.log.info('peer_transport_listening', {
      host: addr.host,
      port: addr.port,
      cluster: this.clusterId,
      tls: this.opts.tls !== undefined,
    });
    return addr;
  }

  get address(): PeerAddress {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('PeerTransport is not listening');
    return { host: a.address, port: a.port };
  }

  /** The one consumer of received messages (the Raft driver). See isFatal (inbound.ts) for what a throw does. */
  onMessage(handler: PeerMessageHandler): void {
    this.handler = handler;
  }

  /** Peers whose outbound handshake has completed. */
  connectedPeers(): string[] {
    return [...this.outbound.values()].filter((o) => o.state === 'open').map((o) => o.id);
  }

  /**
   * Queue `payload` for `to`; never blocks, never throws. The transport takes ownership of the
   * bytes (do not mutate them afterwards). Messages to peers not in the membership are dropped.
   */
  send(to: string, payload: Uint8Array): void {
    const o = this.outbound.get(to);
    if (!o || this.state === 'closed') {
      this.metrics.dropped.inc({
        peer: o ? to : 'unknown',
        reason: this.state === 'closed' ? 'closed' : 'unknown_peer',
      });
      return;
    }
    if (payload.byteLength > this.maxFrameBytes) {
      this.metrics.dropped.inc({ peer: to, reason: 'too_large' });
      this.log.warn('peer_message_too_large', { peer: to, bytes: payload.byteLength, limit: this.maxFrameBytes });
      return;
    }
    const shed = o.queue.push(payload);
    if (shed > 0) {
      const reason: DropReason = payload.byteLength > this.maxQueueBytes ? 'too_large' : 'queue_full';
      this.metrics.dropped.inc({ peer: to, reason }, shed);
    }
    if (o.state === 'open') this.flush(o);
    else o.updateQueueGauges();
  }

  /** Replace the membership (other replicas). New peers are dialled; removed ones are disconnected and their queues discarded. */
  setPeers(ids: readonly string[]): void {
    const next = new Set(ids.filter((id) => id !== this.selfId));
    for (const id of next) checkId(id, 'peer id');
    for (const [id, o] of this.outbound) {
      if (next.has(id)) continue;
      this.dispose(o, 'peer_removed');
      this.outbound.delete(id);
      this.inbound.drop(id);
      this.removePeerMetrics(id);
    }
    for (const id of next) {
      if (this.outbound.has(id)) continue;
      const o = new Outbound(id, {
        maxQueueBytes: this.maxQueueBytes,
        maxQueueMsgs: this.maxQueueMsgs,
        backoff: this.backoffOpts,
        metrics: this.metrics,
      });
      this.outbound.set(id, o);
      if (this.state === 'started') this.connect(o);
    }
  }

  peers(): string[] {
    return [...this.outbound.keys()];
  }

  /** Stop listening, drop every connection and queue. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasStarted = this.state === 'started';
    this.state = 'closed';
    for (const o of this.outbound.values()) this.dispose(o, 'closed');
    this.inbound.closeAll();
    if (wasStarted && this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.log.info('peer_transport_closed', { cluster: this.clusterId });
  }

  // ---- outbound ----

  private connect(o: Outbound): void {
    if (o.state !== 'idle' || this.state !== 'started') return;
    const addr = this.opts.resolve(o.id);
    if (!addr) {
      this.connectFailed(o, 'unresolved');
      return;
    }
    if (!(Number.isInteger(addr.port) && addr.port > 0 && addr.port < 65536)) {
      this.connectFailed(o, 'bad_address');
      return;
    }
    o.state = 'connecting';
    const target = {
      host: addr.host,
      port: addr.port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: TCP_KEEPALIVE_MS,
    };
    const t = this.opts.tls;
    const socket: net.Socket = t ? connectTls(clientTlsOf(t.source, t.serverName), target) : net.connect(target);
    const decoder = new FrameDecoder({ allowedTypes: PEER_FRAME_TYPES, maxFrameBytes: 4096 });
    o.socket = socket;
    let failure: string | null = null;
    // Covers TCP connect plus handshake: a peer that accepts but never answers is treated as down.
    o.timer = setTimeout(() => {
      failure = 'timeout';
      socket.destroy();
    }, this.handshakeTimeoutMs);

    let sent: Hello | null = null;
    socket.on(t ? 'secureConnect' : 'connect', () => {
      const w = new FrameWriter(socket);
      sent = this.hello(o.id);
      w.write(FrameType.PEER_HELLO, [encodeHello(sent)]);
    });
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      try {
        for (const f of decoder.frames()) {
          if (o.state === 'open')
            throw new FrameError('unexpected_type', `type 0x${f.type.toString(16)} after handshake`);
          if (f.type === FrameType.PEER_HELLO_ACK) {
            let v: number;
            try {
              v = decodeAck(f.payload);
            } catch (e) {
              throw new FrameError('bad_payload', `hello ack: ${(e as Error).message}`);
            }
            if (v < this.versions.min || v > this.versions.max)
              throw new FrameError(
                'bad_payload',
                `hello ack chose version ${v}, outside ${this.versions.min}..${this.versions.max}`,
              );
            // The acceptor proves the secret too: an impostor on the peer's address cannot
            // take our votes and appends.
            if (this.secret && (sent === null || !checkAck(f.payload, this.secret, sent, v)))
              throw new FrameError('bad_payload', 'hello ack is not authenticated with the peer secret');
            o.version = v;
            this.opened(o, socket);
          } else if (f.type === FrameType.PEER_HELLO_REJECT) {
            failure = `rejected_${decodeReject(f.payload)}`;
            socket.destroy();
            return;
          } else throw new FrameError('unexpected_type', `type 0x${f.type.toString(16)} during handshake`);
        }
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
        this.badFrame(e.reason, o.id, e.message);
        failure = 'bad_frame';
        socket.destroy();
      }
    });
    socket.on('error', (err) => {
      // A peer whose certificate the CA did not sign, or without the expected name: a bounded label.
      failure ??= t && isCertificateError(err) ? 'tls_certificate' : errorCode(err);
    });
    socket.on('close', () => {
      if (o.socket !== socket) return;
      if (o.timer) clearTimeout(o.timer);
      o.timer = null;
      const wasOpen = o.state === 'open';
      o.socket = null;
      o.writer = null;
      o.waitingDrain = false;
      if (wasOpen) {
        this.connectedCount--;
        this.metrics.connected.set(this.connectedCount);
      }
      if (o.state === 'disposed') return;
      o.state = 'idle';
      this.connectFailed(o, failure ?? 'closed', wasOpen);
    });
  }

  private hello(to: string): Hello {
    const h: Hello = { from: this.selfId, to, clusterId: this.clusterId, versions: this.versions };
    return this.secret ? signHello(h, this.secret, Date.now()) : h;
  }

  /** The payload version agreed with `peerId` on the open outbound connection (undefined when not open). */
  versionFor(peerId: string): number | undefined {
    const o = this.outbound.get(peerId);
    return o?.state === 'open' ? o.version : undefined;
  }

  private opened(o: Outbound, socket: net.Socket): void {
    if (o.timer) clearTimeout(o.timer);
    o.timer = null;
    o.state = 'open';
    o.writer = new FrameWriter(socket);
    o.backoff.reset();
    o.failuresSinceOpen = 0;
    this.connectedCount++;
    this.metrics.connected.set(this.connectedCount);
    this.log.info('peer_connected', { peer: o.id, queued: o.queue.length });
    this.flush(o);
  }

  private connectFailed(o: Outbound, reason: string, wasOpen = false): void {
    const label = reason.startsWith('rejected_') || /^[a-z_]+$/.test(reason) ? reason : 'error';
    this.metrics.connectFailures.inc({ peer: o.id, reason: /^E[A-Z]+$/.test(reason) ? 'error' : label });
    const fields = { peer: o.id, reason, was_connected: wasOpen, attempts: o.backoff.attempts };
    if (wasOpen || o.failuresSinceOpen === 0) this.log.info('peer_disconnected', fields);
    else this.log.debug('peer_connect_failed', fields);
    o.failuresSinceOpen++;
    if (this.state !== 'started' || o.state === 'disposed') return;
    const delayMs = o.backoff.next();
    this.metrics.reconnects.inc({ peer: o.id });
    o.timer = setTimeout(() => {
      o.timer = null;
      this.connect(o);
    }, delayMs);
  }

  /**
   * Move queued messages into the socket while it takes them without buffering past its
   * high-water mark. What stays in our queue is subject to drop-oldest; what sits in the socket
   * buffer is lost if the connection drops (Raft retransmits).
   */
  private flush(o: Outbound): void {
    if (o.state !== 'open' || !o.writer || o.waitingDrain) return;
    const socket = o.socket as net.Socket;
    let frames = 0;
    let bytes = 0;
    while (o.queue.length > 0) {
      const msg = o.queue.shift() as Uint8Array;
      const parts = [msg];
      frames++;
      bytes += FrameWriter.wireBytes(parts);
      if (!o.writer.write(FrameType.PEER_MESSAGE, parts)) {
        o.waitingDrain = true;
        socket.once('drain', () => {
          o.waitingDrain = false;
          this.flush(o);
        });
        break;
      }
    }
    if (frames > 0) {
      o.m.framesSent.inc(frames);
      o.m.bytesSent.inc(bytes);
    }
    o.updateQueueGauges();
  }

  private dispose(o: Outbound, reason: DropReason): void {
    if (o.state === 'open') {
      this.connectedCount--;
      this.metrics.connected.set(this.connectedCount);
    }
    o.state = 'disposed';
    if (o.timer) clearTimeout(o.timer);
    o.timer = null;
    const discarded = o.queue.clear();
    if (discarded > 0) this.metrics.dropped.inc({ peer: o.id, reason }, discarded);
    o.socket?.destroy();
    o.updateQueueGauges();
  }

  private removePeerMetrics(id: string): void {
    // Keep label cardinality bounded by the current membership, not by every peer ever seen.
    const m = this.metrics;
    for (const c of [m.framesSent, m.bytesSent, m.framesReceived, m.bytesReceived, m.reconnects])
      c.remove({ peer: id });
    m.queueMessages.remove({ peer: id });
    m.queueBytes.remove({ peer: id });
    // Series with a second label are found by reading them (prom-client removes exact label sets only).
    for (const c of [m.dropped, m.connectFailures])
      void c.get().then((snap) => {
        if (this.outbound.has(id)) return; // re-added meanwhile: keep its series
        for (const v of snap.values) if (v.labels.peer === id) c.remove(v.labels as Record<string, string>);
      });
  }

  private badFrame(reason: FrameErrorReason, peer: string | null, detail: string): void {
    this.metrics.badFrames.inc({ reason });
    this.log.warn('peer_bad_frame', { reason, peer: peer ?? undefined, detail });
  }
}
