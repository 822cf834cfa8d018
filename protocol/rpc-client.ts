import net from 'node:net';
import { connectTls, isCertificateError, type ClientTls } from '../common/tls';
import { DaftkaError } from '../common/errors';
import type { Logger } from '../common/log';
import type { promClient } from '../common/metrics';
import { CodecError } from './bytes';
import {
  DEFAULT_MAX_FRAME_BYTES,
  TCP_KEEPALIVE_MS,
  FrameDecoder,
  FrameError,
  FrameType,
  FrameWriter,
  RPC_FRAME_TYPES,
} from './frame';
import { sharedCounter } from '../common/metrics';
import { decodeCorrelated, decodeError, encodeCorrelationId, encodeRequestHeader } from './wire';
import {
  answerChallenge,
  checkWelcome,
  decodeChallenge,
  decodeRefused,
  decodeWelcome,
  encodeHello,
  MAX_HANDSHAKE_FRAME_BYTES,
  type Challenge,
  type Hello,
  type RpcClientAuth,
} from './rpc-auth';

/**
 * Client side of the client port: one TCP connection to one endpoint, opened lazily on the
 * first call and again on the first call after it drops; many calls in flight on it at once.
 *
 * Every failure is a DaftkaError:
 *   OVERLOADED   more than maxInflight calls already pending here (nothing was sent);
 *   TIMEOUT      no answer within the call's timeoutMs (the request may have run — for a
 *                produce, the caller maps this to COMMIT_UNKNOWN);
 *   UNAVAILABLE  could not connect (`extra.delivery: 'not_sent'`), or the connection was lost
 *                with the call in flight (`extra.delivery: 'maybe_sent'`; a produce maps this
 *                to COMMIT_UNKNOWN);
 *   UNAUTHENTICATED  the server refused this client's credential, or could not prove it holds
 *                the key itself (an endpoint that is not a replica of the topic), or (TLS) its
 *                certificate is not signed by the CA or does not carry the expected name; nothing
 *                was sent;
 *   anything else: the server's own DaftkaError, rethrown as raised there.
 *
 * A connection is usable only after the admission handshake (protocol/rpc-auth.ts): the server's
 * challenge, this client's hello, the server's welcome with its proof. Calls wait for it.
 */

export type Delivery = 'not_sent' | 'maybe_sent';

export interface RpcClientOptions {
  host: string;
  port: number;
  /** Calls pending at once; one more fails OVERLOADED at once. Default 256. */
  maxInflight?: number;
  /** Time allowed to open the connection. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** Call timeout when the call gives none. Default 5000 ms. */
  defaultTimeoutMs?: number;
  /** Largest response frame accepted. Default 16 MiB. */
  maxFrameBytes?: number;
  logger?: Logger;
  /** When given, bad frames and connection events are counted here. */
  registry?: promClient.Registry;
  /** The credential this client proves (a topic's client key, or the admin key). */
  auth?: RpcClientAuth;
  /**
   * A connection quiet for this long (nothing in flight, nothing received) is replaced before the
   * next call instead of used: the server closes idle connections (its idleTimeoutMs, default
   * 300 s), and a call written as it does so would end with an unknown outcome. Default 240 000 ms.
   */
  idleReconnectMs?: number;
  /**
   * Connect with TLS (common/tls.ts): the server's certificate must chain to the CA and carry
   * `serverName` (default: `host`). The admission handshake runs inside it, unchanged.
   */
  tls?: ClientTls;
}

export const RPC_CLIENT_DEFAULTS = {
  maxInflight: 256,
  connectTimeoutMs: 3000,
  defaultTimeoutMs: 5000,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  idleReconnectMs: 240_000,
} as const;

export interface CallOptions {
  /** Budget for this call in ms; sent to the server as its deadline. */
  timeoutMs?: number;
  /** Carried to the server for its logs (printable ASCII, ≤ 255 chars). */
  requestId?: string;
}

interface Pending {
  resolve: (body: Buffer) => void;
  reject: (err: DaftkaError) => void;
  timer: NodeJS.Timeout;
  /** The frame, kept until the connection is open; null once written. */
  unsent: readonly Uint8Array[] | null;
}

/** Whether a failed call may have reached the server (see the header comment). */
export function deliveryOf(err: unknown): Delivery | undefined {
  const d = (err as DaftkaError | null)?.extra?.delivery;
  return d === 'not_sent' || d === 'maybe_sent' ? d : undefined;
}

export class RpcClient {
  readonly endpoint: string;
  private readonly opts: RpcClientOptions;
  private readonly maxInflight: number;
  private readonly connectTimeoutMs: number;
  private readonly defaultTimeoutMs: number;
  private readonly maxFrameBytes: number;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private socket: net.Socket | null = null;
  private writer: FrameWriter | null = null;
  private state: 'idle' | 'connecting' | 'open' | 'closed' = 'idle';
  /** The topic the server named in its challenge (after a handshake). */
  serverTopic: string | undefined;
  /** When the connection last carried anything (ms, performance clock). */
  private lastActivityMs = 0;
  private readonly metrics: {
    badFrames?: promClient.Counter<'reason'>;
    connects?: promClient.Counter<'outcome'>;
    lateResponses?: promClient.Counter<string>;
  } = {};

  constructor(opts: RpcClientOptions) {
    this.opts = opts;
    this.endpoint = `${opts.host}:${opts.port}`;
    if (!(Number.isInteger(opts.port) && opts.port > 0 && opts.port < 65536))
      throw new RangeError(`RpcClient port must be an integer in [1, 65535], got ${opts.port}`);
    this.maxInflight = opts.maxInflight ?? RPC_CLIENT_DEFAULTS.maxInflight;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? RPC_CLIENT_DEFAULTS.connectTimeoutMs;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? RPC_CLIENT_DEFAULTS.defaultTimeoutMs;
    this.maxFrameBytes = opts.maxFrameBytes ?? RPC_CLIENT_DEFAULTS.maxFrameBytes;
    for (const [k, v] of Object.entries({
      maxInflight: this.maxInflight,
      connectTimeoutMs: this.connectTimeoutMs,
      defaultTimeoutMs: this.defaultTimeoutMs,
      maxFrameBytes: this.maxFrameBytes,
    }))
      if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`RpcClient ${k} must be an integer ≥ 1, got ${v}`);
    if (opts.registry) {
      this.metrics.badFrames = sharedCounter(opts.registry, {
        name: 'daftka_rpc_client_bad_frames_total',
        help: 'Client connections closed because a response frame did not decode, by reason.',
        labelNames: ['reason'] as const,
      });
      this.metrics.connects = sharedCounter(opts.registry, {
        name: 'daftka_rpc_client_connects_total',
        help: 'Connection attempts to replica client ports, by outcome (ok, error, timeout).',
        labelNames: ['outcome'] as const,
      });
      this.metrics.lateResponses = sharedCounter(opts.registry, {
        name: 'daftka_rpc_client_late_responses_total',
        help: 'Answers that arrived after their call had timed out (discarded).',
      });
    }
  }

  /** Calls waiting for an answer (including those waiting for the connection). */
  get inflight(): number {
    return this.pending.size;
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  /**
   * Send one call and wait for its answer body. `body` may be given in parts (written back to
   * back, not copied). The returned body is a view into the received frame.
   */
  call(method: string, body: Uint8Array | readonly Uint8Array[], opts: CallOptions = {}): Promise<Buffer> {
    if (this.state === 'closed')
      return Promise.reject(unavailable(`client for ${this.endpoint} is closed`, 'not_sent'));
    if (this.pending.size >= this.maxInflight)
      return Promise.reject(
        new DaftkaError('OVERLOADED', `${this.maxInflight} calls already in flight to ${this.endpoint}`, {
          extra: { delivery: 'not_sent' },
        }),
      );
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    const id = this.allocateId();
    let header: Buffer;
    try {
      header = encodeRequestHeader({ correlationId: id, timeoutMs, method, requestId: opts.requestId ?? '' });
    } catch (e) {
      if (e instanceof CodecError) return Promise.reject(new DaftkaError('INVALID_REQUEST', e.message));
      throw e;
    }
    const parts = body instanceof Uint8Array ? [header, body] : [header, ...body];
    return new Promise<Buffer>((resolve, reject) => {
      const p: Pending = {
        resolve,
        reject,
        unsent: parts,
        timer: setTimeout(() => this.timedOut(id, method, timeoutMs), timeoutMs),
      };
      if (
        this.state === 'open' &&
        this.pending.size === 0 &&
        performance.now() - this.lastActivityMs > (this.opts.idleReconnectMs ?? RPC_CLIENT_DEFAULTS.idleReconnectMs)
      ) {
        // Quiet for long: the server may be closing it right now. Start afresh (nothing was sent on it).
        const old = this.socket;
        this.socket = null;
        this.writer = null;
        this.state = 'idle';
        old?.destroy();
      }
      this.pending.set(id, p);
      if (this.state === 'open') this.writeCall(p);
      else if (this.state === 'idle') this.connect();
    });
  }

  /** Fail every pending call (UNAVAILABLE) and close the connection; later calls fail at once. */
  close(): void {
    if (this.state === 'closed') return;
    const s = this.socket;
    this.state = 'closed';
    this.failAll('client closed');
    s?.destroy();
  }

  private allocateId(): number {
    // u32 ids, wrapping; skip any still pending (a wrap past a call older than 2^32 calls).
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId === 0xffffffff ? 1 : this.nextId + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private writeCall(p: Pending): void {
    this.lastActivityMs = performance.now();
    const parts = p.unsent as readonly Uint8Array[];
    p.unsent = null;
    (this.writer as FrameWriter).write(FrameType.RPC_REQUEST, parts);
  }

  private timedOut(id: number, method: string, timeoutMs: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    const sent = p.unsent === null;
    // Tell the server to stop working on it (a long-poll fetch, say); best effort.
    if (sent && this.state === 'open') this.writer?.write(FrameType.RPC_CANCEL, [encodeCorrelationId(id)]);
    p.reject(
      new DaftkaError('TIMEOUT', `${method} to ${this.endpoint}: no answer within ${timeoutMs} ms`, {
        extra: { delivery: sent ? 'maybe_sent' : 'not_sent' },
      }),
    );
  }

  private connect(): void {
    this.state = 'connecting';
    const target = {
      host: this.opts.host,
      port: this.opts.port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: TCP_KEEPALIVE_MS,
    };
    const socket: net.Socket = this.opts.tls ? connectTls(this.opts.tls, target) : net.connect(target);
    const decoder = new FrameDecoder({ allowedTypes: RPC_FRAME_TYPES, maxFrameBytes: MAX_HANDSHAKE_FRAME_BYTES });
    this.socket = socket;
    let failure: string | null = null;
    let refused = false;
    let challenge: Challenge | null = null;
    let hello: Hello | null = null;
    const timer = setTimeout(() => {
      failure = `connect timeout after ${this.connectTimeoutMs} ms`;
      this.metrics.connects?.inc({ outcome: 'timeout' });
      socket.destroy();
    }, this.connectTimeoutMs);

    socket.on(this.opts.tls ? 'secureConnect' : 'connect', () => {
      this.writer = new FrameWriter(socket);
    });
    const refuse = (why: string) => {
      failure = why;
      refused = true;
      this.metrics.connects?.inc({ outcome: 'refused' });
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      this.lastActivityMs = performance.now();
      decoder.push(chunk);
      try {
        for (const f of decoder.frames()) {
          if (this.state === 'connecting' && this.socket === socket) {
            // The handshake: nothing else is accepted before the welcome.
            if (f.type === FrameType.RPC_CHALLENGE && challenge === null) {
              challenge = decodeChallenge(f.payload);
              const h = answerChallenge(challenge, this.opts.auth);
              if (typeof h === 'string') return refuse(h);
              hello = h;
              this.writer!.write(FrameType.RPC_HELLO, [encodeHello(h)]);
            } else if (f.type === FrameType.RPC_WELCOME && hello !== null) {
              const w = decodeWelcome(f.payload);
              if (!checkWelcome(challenge!, hello, this.opts.auth, w))
                return refuse(
                  `the server at ${this.endpoint} did not prove the credential of topic ${challenge!.topic}`,
                );
              clearTimeout(timer);
              this.metrics.connects?.inc({ outcome: 'ok' });
              this.serverTopic = challenge!.topic;
              decoder.setMaxFrameBytes(this.maxFrameBytes);
              this.state = 'open';
              for (const p of this.pending.values()) if (p.unsent) this.writeCall(p);
            } else if (f.type === FrameType.RPC_REFUSED) {
              return refuse(`refused by ${this.endpoint}: ${decodeRefused(f.payload)}`);
            } else throw new FrameError('unexpected_type', `type 0x${f.type.toString(16)} during the handshake`);
            continue;
          }
          if (f.type === FrameType.RPC_RESPONSE) {
            const { correlationId, body } = decodeCorrelated(f.payload);
            this.settle(correlationId)?.resolve(body);
          } else if (f.type === FrameType.RPC_ERROR) {
            const { correlationId, error } = decodeError(f.payload);
            this.settle(correlationId)?.reject(error);
          } else throw new FrameError('unexpected_type', `type 0x${f.type.toString(16)} sent to a client`);
        }
      } catch (e) {
        const reason = e instanceof FrameError ? e.reason : e instanceof CodecError ? 'bad_payload' : null;
        if (reason === null) throw e;
        this.metrics.badFrames?.inc({ reason });
        this.opts.logger?.warn('rpc_client_bad_frame', { endpoint: this.endpoint, reason, detail: String(e) });
        failure = `bad frame from server (${reason})`;
        socket.destroy();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (failure === null && this.opts.tls && isCertificateError(err)) {
        // Not the server it should be (another CA, another name): as an endpoint that cannot prove the key.
        refused = true;
        failure = `the TLS certificate of ${this.endpoint} is not trusted: ${err.code ?? ''} ${err.message}`;
        this.metrics.connects?.inc({ outcome: 'refused' });
      } else if (failure === null) {
        failure = err.code ?? err.message;
        if (this.state === 'connecting') this.metrics.connects?.inc({ outcome: 'error' });
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (this.socket !== socket) return;
      this.socket = null;
      this.writer = null;
      if (this.state !== 'closed') this.state = 'idle';
      this.failAll(failure ?? 'connection closed by the server', refused ? 'UNAUTHENTICATED' : 'UNAVAILABLE');
    });
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) {
      this.metrics.lateResponses?.inc();
      return undefined;
    }
    this.pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }

  private failAll(why: string, code: 'UNAVAILABLE' | 'UNAUTHENTICATED' = 'UNAVAILABLE'): void {
    if (this.pending.size === 0) return;
    const calls = [...this.pending.values()];
    this.pending.clear();
    this.opts.logger?.info('rpc_client_connection_lost', { endpoint: this.endpoint, reason: why, calls: calls.length });
    for (const p of calls) {
      clearTimeout(p.timer);
      const delivery: Delivery = p.unsent === null ? 'maybe_sent' : 'not_sent';
      p.reject(
        code === 'UNAUTHENTICATED'
          ? new DaftkaError('UNAUTHENTICATED', `${this.endpoint}: ${why}`, { extra: { delivery } })
          : unavailable(`${this.endpoint}: ${why}`, delivery),
      );
    }
  }
}

function unavailable(detail: string, delivery: Delivery): DaftkaError {
  return new DaftkaError('UNAVAILABLE', detail, { extra: { delivery } });
}
