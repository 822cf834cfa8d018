import type net from 'node:net';
import { ClassifiedError } from '../../common/crash-policy';
import type { Logger } from '../../common/log';
import { CodecError } from '../../protocol/bytes';
import {
  FrameDecoder,
  FrameError,
  FrameType,
  FrameWriter,
  PEER_FRAME_TYPES,
  type Frame,
  type FrameErrorReason,
} from '../../protocol/frame';
import {
  ackTag,
  checkHelloAuth,
  decodeHello,
  encodeAck,
  encodeReject,
  negotiateVersion,
  type NonceCache,
  type RejectReason,
  type VersionRange,
} from './handshake';
import type { PeerMetrics } from './peer-metrics';

/**
 * The receiving side of the peer transport: connections other replicas opened to this one.
 * A connection must complete the handshake (PEER_HELLO: cluster, target, version range and,
 * with a secret, a signature checked before anything changes) before any message is read; until
 * then only a small hello fits a frame, the number of such connections is bounded and each has
 * a deadline. After it, every PEER_MESSAGE goes to the handler; a frame that does not decode, or
 * a message the handler throws on (unless fatal), closes that connection and is counted.
 */

export interface InboundHost {
  readonly selfId: string;
  readonly clusterId: string;
  readonly versions: VersionRange;
  readonly secret: Buffer | null;
  readonly nonces: NonceCache;
  readonly log: Logger;
  readonly metrics: PeerMetrics;
  readonly maxPendingInbound: number;
  readonly handshakeTimeoutMs: number;
  readonly maxFrameBytes: number;
  /** The transport is started (not new, not closed). */
  accepting(): boolean;
  /** `from` is a peer, or may become one now (a learner's new leader); false refuses it. */
  admitPeer(from: string): boolean;
  handler(): ((from: string, payload: Buffer) => void) | null;
  badFrame(reason: FrameErrorReason, peer: string | null, detail: string): void;
}

interface Inbound {
  socket: net.Socket;
  readonly decoder: FrameDecoder;
  peerId: string | null;
  timer: NodeJS.Timeout | null;
}

export class InboundConnections {
  private readonly conns = new Set<Inbound>();

  /** Hellos signed before this (the process's start, near enough) are refused: see checkHelloAuth. */
  private readonly startedMs = Date.now();
  constructor(private readonly h: InboundHost) {}

  /** Close the connections of `peer` (removed from the membership). */
  drop(peer: string): void {
    for (const c of this.conns) if (c.peerId === peer) c.socket.destroy();
  }

  closeAll(): void {
    for (const c of this.conns) {
      if (c.timer) clearTimeout(c.timer);
      c.socket.destroy();
    }
    this.conns.clear();
  }

  accept(socket: net.Socket): void {
    if (!this.h.accepting()) {
      socket.destroy();
      return;
    }
    let pending = 0;
    for (const c of this.conns) if (c.peerId === null) pending++;
    if (pending >= this.h.maxPendingInbound) {
      this.h.metrics.handshakeRejected.inc({ reason: 'too_many_pending' });
      socket.destroy();
      return;
    }
    const c: Inbound = {
      socket,
      // Until the handshake completes only a small hello is acceptable; a stranger cannot make us buffer 16 MiB.
      decoder: new FrameDecoder({ allowedTypes: PEER_FRAME_TYPES, maxFrameBytes: 4096 }),
      peerId: null,
      timer: null,
    };
    this.conns.add(c);
    c.timer = setTimeout(() => {
      this.h.metrics.handshakeRejected.inc({ reason: 'timeout' });
      this.h.log.warn('peer_handshake_timeout', { remote: socket.remoteAddress });
      socket.destroy();
    }, this.h.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onInboundData(c, chunk));
    socket.on('end', () => {
      try {
        c.decoder.end();
      } catch (e) {
        if (e instanceof FrameError) this.h.badFrame(e.reason, c.peerId, e.message);
      }
      socket.destroy();
    });
    socket.on('error', () => {
      /* 'close' follows; nothing to add */
    });
    socket.on('close', () => {
      if (c.timer) clearTimeout(c.timer);
      this.conns.delete(c);
    });
  }

  private onInboundData(c: Inbound, chunk: Buffer): void {
    c.decoder.push(chunk);
    let f: Frame | undefined;
    for (;;) {
      try {
        f = c.decoder.next();
        if (f === undefined) return;
        if (c.peerId === null) {
          this.handshake(c, f);
          if (c.peerId === null) return; // refused; socket is closing
          continue;
        }
        if (f.type !== FrameType.PEER_MESSAGE)
          throw new FrameError('unexpected_type', `type 0x${f.type.toString(16)} after handshake`);
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
        this.h.badFrame(e.reason, c.peerId, e.message);
        c.socket.destroy();
        return;
      }
      if (!this.deliver(c, c.peerId, f)) return;
    }
  }

  private handshake(c: Inbound, f: Frame): void {
    if (f.type !== FrameType.PEER_HELLO)
      throw new FrameError('unexpected_type', `type 0x${f.type.toString(16)} before hello`);
    let hello;
    try {
      hello = decodeHello(f.payload);
    } catch (e) {
      if (!(e instanceof CodecError)) throw e;
      this.refuse(c, 'malformed', { detail: e.message });
      return;
    }
    const who = { from: hello.from, to: hello.to, cluster: hello.clusterId };
    let reason: RejectReason | null = null;
    if (hello.clusterId !== this.h.clusterId) reason = 'wrong_cluster';
    else if (hello.to !== this.h.selfId) reason = 'wrong_target';
    else if (hello.from === this.h.selfId) reason = 'self';
    if (reason) {
      this.refuse(c, reason, who);
      return;
    }
    const version = negotiateVersion(hello.versions ?? { min: 1, max: 1 }, this.h.versions);
    if (version === null) {
      this.refuse(c, 'incompatible_version', {
        ...who,
        theirs: `${hello.versions?.min}..${hello.versions?.max}`,
        ours: `${this.h.versions.min}..${this.h.versions.max}`,
      });
      return;
    }
    // Authenticated before anything changes: admitting a new peer joins it to the membership.
    if (this.h.secret) {
      const why = checkHelloAuth(hello, this.h.secret, Date.now(), this.h.nonces, this.startedMs);
      if (why !== null) {
        this.refuse(c, 'unauthenticated', { ...who, detail: why });
        return;
      }
    }
    if (!this.h.admitPeer(hello.from)) {
      this.refuse(c, 'unknown_peer', who);
      return;
    }
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    // A peer that restarted may leave a half-open connection behind: the newest one wins.
    for (const other of this.conns) if (other !== c && other.peerId === hello.from) other.socket.destroy();
    c.peerId = hello.from;
    c.decoder.setMaxFrameBytes(this.h.maxFrameBytes);
    const tag = this.h.secret && hello.auth ? ackTag(this.h.secret, hello, version) : undefined;
    new FrameWriter(c.socket).write(FrameType.PEER_HELLO_ACK, [encodeAck(version, tag)]);
    this.h.log.info('peer_accepted', { peer: hello.from, remote: c.socket.remoteAddress, version });
  }

  private refuse(c: Inbound, reason: RejectReason, fields: Record<string, unknown>): void {
    this.h.metrics.handshakeRejected.inc({ reason });
    this.h.log.warn('peer_handshake_rejected', { reason, remote: c.socket.remoteAddress, ...fields });
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    new FrameWriter(c.socket).write(FrameType.PEER_HELLO_REJECT, [encodeReject(reason)]);
    c.socket.end();
    c.socket.destroySoon();
  }

  /** Hand one message to the handler; false when the connection was closed because of it. */
  private deliver(c: Inbound, from: string, f: Frame): boolean {
    this.h.metrics.framesReceived.inc({ peer: from });
    this.h.metrics.bytesReceived.inc({ peer: from }, f.payload.byteLength + 12);
    const handler = this.h.handler();
    if (!handler) return true;
    try {
      handler(from, f.payload);
      return true;
    } catch (err) {
      if (isFatal(err)) throw err; // crash-only: an invariant breach is not poison input
      this.h.badFrame('bad_payload', from, errorCode(err));
      c.socket.destroy();
      return false;
    }
  }
}

/** Fatal errors from the message handler escape (crash-only); anything else is poison input from that peer. */
export function isFatal(err: unknown): boolean {
  if (err instanceof ClassifiedError) return err.failureClass === 'fatal';
  return (err as { name?: unknown } | null)?.name === 'InvariantViolation';
}

export function errorCode(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | null;
  return typeof e?.code === 'string' ? e.code : String(e?.message ?? err);
}
