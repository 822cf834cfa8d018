import net from 'node:net';
import { createTlsServer, type TlsSource } from '../common/tls';
import { DaftkaError, isDaftkaError } from '../common/errors';
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
  type FrameErrorReason,
} from './frame';
import { sharedCounter, sharedGauge, sharedHistogram } from '../common/metrics';
import { decodeCorrelated, decodeRequest, encodeCorrelationId, encodeError } from './wire';
import {
  admit,
  decodeHello,
  encodeChallenge,
  encodeRefused,
  encodeWelcome,
  makeChallenge,
  MAX_HANDSHAKE_FRAME_BYTES,
  type Challenge,
  type RpcRole,
  type RpcServerAuth,
} from './rpc-auth';

/**
 * The replica's client port: request/response over TCP with correlation ids, so one
 * connection carries many calls at once and answers go out as they finish, in any order.
 * Errors travel as DaftkaError (code, detail, leaderHint, retryAfterMs). Input that does not
 * decode closes that connection and is counted; nothing a client sends can crash the process.
 *
 * Admission (protocol/rpc-auth.ts): the server speaks first with a challenge; until the client's
 * hello proves a credential, only a small hello frame is read and nothing else is decoded. A
 * method of access `admin` on a connection that proved only the topic key is answered FORBIDDEN
 * from its header alone.
 */

export interface RpcContext {
  readonly method: string;
  readonly requestId: string;
  /** Local wall-clock time (ms since epoch) after which the caller has given up. */
  readonly deadlineMs: number;
  /**
   * Aborted when the deadline passes, the caller cancels, or the connection closes. Created on
   * first use: handlers that never look at it cost no timer.
   */
  readonly signal: AbortSignal;
  readonly remoteAddress: string | undefined;
}

/** A response body, whole or in parts written back to back (parts are never copied). */
export type RpcBody = Uint8Array | readonly Uint8Array[];
export type RpcMethodHandler = (body: Buffer, ctx: RpcContext) => RpcBody | Promise<RpcBody>;
export type RpcHandler = (method: string, body: Buffer, ctx: RpcContext) => RpcBody | Promise<RpcBody>;

export interface RpcServerOptions {
  host: string;
  /** 0 picks a free port; read it back from `start()` or `address`. */
  port: number;
  /** Fallback for methods not registered with `register` (which servePartition uses). */
  handler?: RpcHandler;
  /** Calls running at once on one connection; one more is answered OVERLOADED. Default 256. */
  maxInflightPerConn?: number;
  /** Open client connections; one more is closed at once and counted. Default 1024. */
  maxConnections?: number;
  /** Largest request frame accepted. Default 16 MiB. */
  maxFrameBytes?: number;
  /** retryAfterMs sent with OVERLOADED. Default 50 ms. */
  overloadRetryAfterMs?: number;
  /** Credentials a connection must prove (rpc-auth.ts); absent: every connection is admitted. */
  auth?: RpcServerAuth;
  /** Time a new connection has to complete the handshake before it is closed. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** A connection with no call running and nothing received for this long is closed. Default 300 000 ms. */
  idleTimeoutMs?: number;
  /** A frame begun but not completed within this is a stalled client: closed. Default 10 000 ms. */
  partialFrameTimeoutMs?: number;
  /** Bytes of unfinished frames held across all connections; the one that passes it is closed. Default 64 MiB. */
  maxBufferedBytes?: number;
  /**
   * Serve TLS with this material (common/tls.ts): confidentiality and the server's identity on top
   * of the admission handshake, which stays the credential. Reloaded certificates apply to new
   * connections. Absent: plain TCP.
   */
  tls?: TlsSource;
  logger: Logger;
  registry: promClient.Registry;
}

export const RPC_SERVER_DEFAULTS = {
  maxInflightPerConn: 256,
  maxConnections: 1024,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  overloadRetryAfterMs: 50,
  handshakeTimeoutMs: 5000,
  idleTimeoutMs: 300_000,
  partialFrameTimeoutMs: 10_000,
  maxBufferedBytes: 64 * 1024 * 1024,
} as const;

function makeMetrics(reg: promClient.Registry) {
  return {
    requests: sharedCounter(reg, {
      name: 'daftka_rpc_server_requests_total',
      help: 'Client-port calls answered, by method and code (OK or a DaftkaError code).',
      labelNames: ['method', 'code'] as const,
    }),
    duration: sharedHistogram(reg, {
      name: 'daftka_rpc_server_request_duration_seconds',
      help: 'Time from a call being read to its answer being written, by method.',
      labelNames: ['method'] as const,
    }),
    inflight: sharedGauge(reg, {
      name: 'daftka_rpc_server_inflight_requests',
      help: 'Client-port calls running now.',
    }),
    connections: sharedGauge(reg, {
      name: 'daftka_rpc_server_connections',
      help: 'Open client-port connections.',
    }),
    rejected: sharedCounter(reg, {
      name: 'daftka_rpc_server_rejected_total',
      help: 'Calls or connections refused by a bound (reason: inflight, connections, idle, partial_frame, memory).',
      labelNames: ['reason'] as const,
    }),
    admissions: sharedCounter(reg, {
      name: 'daftka_rpc_server_admissions_total',
      help: 'Client-port handshakes, by outcome (topic, admin: admitted with that role; refused; timeout).',
      labelNames: ['outcome'] as const,
    }),
    badFrames: sharedCounter(reg, {
      name: 'daftka_rpc_server_bad_frames_total',
      help: 'Client-port connections closed because a frame did not decode, by reason.',
      labelNames: ['reason'] as const,
    }),
  };
}

interface Call {
  ac: AbortController | null;
  timer: NodeJS.Timeout | null;
  cancelled: boolean;
}

interface Conn {
  socket: net.Socket;
  decoder: FrameDecoder;
  writer: FrameWriter;
  calls: Map<number, Call>;
  closed: boolean;
  /** null until the hello is accepted. */
  role: RpcRole | null;
  challenge: Challenge;
  handshakeTimer: NodeJS.Timeout | null;
  /** Bytes of unfinished frames this connection holds (counted in the server's total). */
  buffered: number;
  partialTimer: NodeJS.Timeout | null;
}

const NOW_NS = () => process.hrtime.bigint();

export class RpcServer {
  private readonly opts: RpcServerOptions;
  private readonly log: Logger;
  private readonly metrics: ReturnType<typeof makeMetrics>;
  private readonly methods = new Map<string, RpcMethodHandler>();
  private readonly adminMethods = new Set<string>();
  private readonly conns = new Set<Conn>();
  private readonly maxInflightPerConn: number;
  private readonly maxConnections: number;
  private readonly maxFrameBytes: number;
  private readonly overloadRetryAfterMs: number;
  private server: net.Server | null = null;
  private inflight = 0;
  private closing = false;
  /** Bytes of unfinished frames across every connection. */
  private bufferedBytes = 0;

  constructor(opts: RpcServerOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.metrics = makeMetrics(opts.registry);
    this.maxInflightPerConn = positiveInt(
      opts.maxInflightPerConn ?? RPC_SERVER_DEFAULTS.maxInflightPerConn,
      'maxInflightPerConn',
    );
    this.maxConnections = positiveInt(opts.maxConnections ?? RPC_SERVER_DEFAULTS.maxConnections, 'maxConnections');
    this.maxFrameBytes = positiveInt(opts.maxFrameBytes ?? RPC_SERVER_DEFAULTS.maxFrameBytes, 'maxFrameBytes');
    this.overloadRetryAfterMs = opts.overloadRetryAfterMs ?? RPC_SERVER_DEFAULTS.overloadRetryAfterMs;
  }

  /** Serve `method` with `fn`. Method names are printable ASCII; a name is a bounded metric label. */
  register(method: string, fn: RpcMethodHandler, access: 'topic' | 'admin' = 'topic'): void {
    if (!/^[\x21-\x7e]{1,255}$/.test(method)) throw new RangeError(`bad RPC method name ${JSON.stringify(method)}`);
    if (this.methods.has(method)) throw new Error(`RPC method ${method} registered twice`);
    this.methods.set(method, fn);
    if (access === 'admin') this.adminMethods.add(method);
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.server) throw new Error('RpcServer.start() called twice');
    const sockOpts = { noDelay: true, keepAlive: true, keepAliveInitialDelay: TCP_KEEPALIVE_MS };
    const handshakeTimeoutMs = this.opts.handshakeTimeoutMs ?? RPC_SERVER_DEFAULTS.handshakeTimeoutMs;
    const server = this.opts.tls
      ? createTlsServer(this.opts.tls, { kind: 'client_port', mutual: false, handshakeTimeoutMs, ...sockOpts }, (s) =>
          this.accept(s),
        )
      : net.createServer(sockOpts, (s) => this.accept(s));
    // TLS handshakes happen before accept() counts a connection: bound them at the listener too.
    if (this.opts.tls) {
      server.maxConnections = this.maxConnections;
      server.on('drop', () => {
        this.metrics.rejected.inc({ reason: 'connections' });
        this.log.warn('rpc_connection_refused', { reason: 'connections', limit: this.maxConnections });
      });
    }
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('rpc_listener_error', { error: String(err) }));
    const addr = this.address;
    this.log.info('rpc_server_listening', { host: addr.host, port: addr.port, tls: this.opts.tls !== undefined });
    return addr;
  }

  get address(): { host: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('RpcServer is not listening');
    return { host: a.address, port: a.port };
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /**
   * Stop accepting connections, give running calls up to `graceMs` to answer, then close every
   * connection (calls still running are aborted; their callers see the connection drop).
   */
  async close(graceMs = 0): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const server = this.server;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    const until = Date.now() + graceMs;
    while (this.inflight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    for (const c of this.conns) {
      if (graceMs > 0 && c.calls.size === 0) {
        // end() flushes answers still corked in this loop turn, then sends FIN; destroy if the client lingers.
        c.socket.end();
        setTimeout(() => c.socket.destroy(), 1000).unref();
      } else c.socket.destroy();
    }
    await closed;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.conns.size >= this.maxConnections) {
      this.metrics.rejected.inc({ reason: 'connections' });
      this.log.warn('rpc_connection_refused', { reason: 'connections', limit: this.maxConnections });
      socket.destroy();
      return;
    }
    const c: Conn = {
      socket,
      // Until admitted, only a hello fits: nothing larger is buffered for an unknown client.
      decoder: new FrameDecoder({ allowedTypes: RPC_FRAME_TYPES, maxFrameBytes: MAX_HANDSHAKE_FRAME_BYTES }),
      writer: new FrameWriter(socket),
      calls: new Map(),
      closed: false,
      role: null,
      challenge: makeChallenge(this.opts.auth),
      handshakeTimer: null,
      buffered: 0,
      partialTimer: null,
    };
    // Idle: nothing received and no call running (a long-poll in flight keeps it open).
    socket.setTimeout(this.opts.idleTimeoutMs ?? RPC_SERVER_DEFAULTS.idleTimeoutMs, () => {
      if (c.calls.size > 0) return;
      this.limit(c, 'idle');
    });
    c.handshakeTimer = setTimeout(() => {
      this.metrics.admissions.inc({ outcome: 'timeout' });
      socket.destroy();
    }, this.opts.handshakeTimeoutMs ?? RPC_SERVER_DEFAULTS.handshakeTimeoutMs);
    c.handshakeTimer.unref();
    c.writer.write(FrameType.RPC_CHALLENGE, [encodeChallenge(c.challenge)]);
    this.conns.add(c);
    this.metrics.connections.set(this.conns.size);
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('end', () => {
      try {
        c.decoder.end();
      } catch (e) {
        if (e instanceof FrameError) this.badFrame(c, e.reason, e.message);
      }
      // Half-close from the client: answer what is running, then close (allowHalfOpen is off, so Node ends our side).
    });
    socket.on('error', () => {
      /* 'close' follows */
    });
    socket.on('close', () => {
      if (c.handshakeTimer) clearTimeout(c.handshakeTimer);
      if (c.partialTimer) clearTimeout(c.partialTimer);
      this.bufferedBytes -= c.buffered;
      c.buffered = 0;
      c.closed = true;
      this.conns.delete(c);
      this.metrics.connections.set(this.conns.size);
      for (const call of c.calls.values()) abort(call, new DaftkaError('UNAVAILABLE', 'connection closed'));
    });
  }

  /** Close a connection over one of the bounds, and count it. */
  private limit(c: Conn, reason: 'idle' | 'partial_frame' | 'memory'): void {
    this.metrics.rejected.inc({ reason });
    if (reason !== 'idle') this.log.warn('rpc_connection_closed', { reason, remote: c.socket.remoteAddress });
    c.socket.destroy();
  }

  /** Account the connection's unfinished bytes; start or stop its partial-frame clock. */
  private account(c: Conn): void {
    const now = c.closed ? 0 : c.decoder.bufferedBytes;
    this.bufferedBytes += now - c.buffered;
    c.buffered = now;
    if (now === 0) {
      if (c.partialTimer) clearTimeout(c.partialTimer);
      c.partialTimer = null;
    } else if (c.partialTimer === null) {
      c.partialTimer = setTimeout(
        () => this.limit(c, 'partial_frame'),
        this.opts.partialFrameTimeoutMs ?? RPC_SERVER_DEFAULTS.partialFrameTimeoutMs,
      );
      c.partialTimer.unref();
    }
  }

  private onData(c: Conn, chunk: Buffer): void {
    // A memory budget across connections: half-frames parked on many connections cannot add up
    // to connections × maxFrameBytes.
    if (this.bufferedBytes + chunk.length > (this.opts.maxBufferedBytes ?? RPC_SERVER_DEFAULTS.maxBufferedBytes)) {
      this.limit(c, 'memory');
      return;
    }
    c.decoder.push(chunk);
    try {
      for (const f of c.decoder.frames()) {
        if (c.role === null) {
          if (f.type !== FrameType.RPC_HELLO) throw new FrameError('unexpected_type', 'a call before the hello');
          this.onHello(c, f.payload);
        } else if (f.type === FrameType.RPC_REQUEST) this.onRequest(c, f.payload);
        else if (f.type === FrameType.RPC_CANCEL) {
          const call = c.calls.get(decodeCorrelated(f.payload).correlationId);
          if (call) {
            call.cancelled = true;
            abort(call, new DaftkaError('TIMEOUT', 'cancelled by the caller'));
          }
        } else throw new FrameError('unexpected_type', `type 0x${f.type.toString(16)} sent to a server`);
        if (c.closed) return;
      }
    } catch (e) {
      if (e instanceof CodecError) this.badFrame(c, 'bad_payload', e.message);
      else if (e instanceof FrameError) this.badFrame(c, e.reason, e.message);
      else throw e;
    } finally {
      this.account(c);
    }
  }

  private onHello(c: Conn, payload: Buffer): void {
    const a = admit(this.opts.auth, c.challenge, decodeHello(payload)); // CodecError → closed by onData
    if (c.handshakeTimer) clearTimeout(c.handshakeTimer);
    c.handshakeTimer = null;
    if ('refused' in a) {
      this.metrics.admissions.inc({ outcome: 'refused' });
      this.log.warn('rpc_connection_refused', {
        reason: 'unauthenticated',
        detail: a.refused,
        remote: c.socket.remoteAddress,
      });
      c.writer.write(FrameType.RPC_REFUSED, [encodeRefused(a.refused)]);
      c.closed = true;
      c.socket.end();
      setTimeout(() => c.socket.destroy(), 1000).unref();
      return;
    }
    this.metrics.admissions.inc({ outcome: a.role });
    c.role = a.role;
    c.decoder.setMaxFrameBytes(this.maxFrameBytes);
    c.writer.write(FrameType.RPC_WELCOME, [encodeWelcome(a.role, a.proof)]);
  }

  private badFrame(c: Conn, reason: FrameErrorReason, detail: string): void {
    this.metrics.badFrames.inc({ reason });
    this.log.warn('rpc_bad_frame', { reason, detail, remote: c.socket.remoteAddress });
    c.socket.destroy();
  }

  private onRequest(c: Conn, payload: Buffer): void {
    const { header, body } = decodeRequest(payload); // CodecError → connection closed by onData
    const { correlationId: id, method, requestId, timeoutMs } = header;
    if (c.calls.has(id)) throw new CodecError('bad_value', `correlation id ${id} already in flight`);
    const fn = this.methods.get(method);
    const label = fn ? method : 'other';
    if (c.role !== 'admin' && this.adminMethods.has(method)) {
      // Refused from the header alone: the body of a membership change is never decoded.
      this.metrics.requests.inc({ method: label, code: 'FORBIDDEN' });
      const err = new DaftkaError('FORBIDDEN', `${method} needs the admin credential`);
      c.writer.write(FrameType.RPC_ERROR, [encodeError(id, err)]);
      return;
    }
    if (c.calls.size >= this.maxInflightPerConn) {
      this.metrics.rejected.inc({ reason: 'inflight' });
      this.metrics.requests.inc({ method: label, code: 'OVERLOADED' });
      const err = new DaftkaError(
        'OVERLOADED',
        `more than ${this.maxInflightPerConn} calls in flight on one connection`,
        {
          retryAfterMs: this.overloadRetryAfterMs,
        },
      );
      c.writer.write(FrameType.RPC_ERROR, [encodeError(id, err)]);
      return;
    }
    const call: Call = { ac: null, timer: null, cancelled: false };
    c.calls.set(id, call);
    this.inflight++;
    this.metrics.inflight.set(this.inflight);
    const started = NOW_NS();
    const deadlineMs = Date.now() + timeoutMs;
    const ctx: RpcContext = {
      method,
      requestId,
      deadlineMs,
      remoteAddress: c.socket.remoteAddress,
      get signal() {
        if (!call.ac) {
          call.ac = new AbortController();
          if (c.closed) call.ac.abort(new DaftkaError('UNAVAILABLE', 'connection closed'));
          else {
            const left = Math.max(0, deadlineMs - Date.now());
            call.timer = setTimeout(() => abort(call, new DaftkaError('TIMEOUT', 'deadline passed')), left);
          }
        }
        return call.ac.signal;
      },
    };

    const finish = (code: string, frame: FrameType, parts: readonly Uint8Array[]) => {
      c.calls.delete(id);
      if (call.timer) clearTimeout(call.timer);
      this.inflight--;
      this.metrics.inflight.set(this.inflight);
      this.countRequest(label, code, Number(NOW_NS() - started) / 1e9);
      if (c.closed || call.cancelled) return;
      if (!c.writer.write(frame, parts)) this.backpressure(c);
    };
    const ok = (res: RpcBody) => {
      const parts = res instanceof Uint8Array ? [encodeCorrelationId(id), res] : [encodeCorrelationId(id), ...res];
      finish('OK', FrameType.RPC_RESPONSE, parts);
    };
    const fail = (err: unknown) => {
      let e: DaftkaError;
      if (isDaftkaError(err)) e = err;
      else if (err instanceof CodecError)
        e = new DaftkaError('INVALID_REQUEST', `malformed ${method} body: ${err.message}`);
      else {
        // Internal messages are logged, never echoed (common/errors.ts).
        this.log.error('rpc_handler_failed', { method: label, request_id: requestId, error: String(err) });
        e = new DaftkaError('INTERNAL', 'internal error; see replica logs for the request id');
      }
      finish(e.code, FrameType.RPC_ERROR, [encodeError(id, e)]);
    };

    const dispatch: RpcHandler | undefined = fn ? (_m, b, x) => fn(b, x) : this.opts.handler;
    if (!dispatch) {
      fail(new DaftkaError('INVALID_REQUEST', `unknown method ${JSON.stringify(method)}`));
      return;
    }
    let r: RpcBody | Promise<RpcBody>;
    try {
      r = dispatch(method, body, ctx);
    } catch (err) {
      fail(err);
      return;
    }
    if (r instanceof Promise) r.then(ok, fail);
    else ok(r);
  }

  /** Labelled children cached per (method, code): prom-client hashes label objects on every call otherwise. */
  private readonly requestSeries = new Map<string, { inc: () => void; observe: (s: number) => void }>();

  private countRequest(method: string, code: string, seconds: number): void {
    const key = `${method}\u0000${code}`;
    let series = this.requestSeries.get(key);
    if (!series) {
      const counter = this.metrics.requests.labels({ method, code });
      const hist = this.metrics.duration.labels({ method });
      series = { inc: () => counter.inc(), observe: (v) => hist.observe(v) };
      this.requestSeries.set(key, series);
    }
    series.inc();
    series.observe(seconds);
  }

  /** The client stopped reading: stop reading its requests until our answers drain. */
  private backpressure(c: Conn): void {
    if (c.socket.isPaused()) return;
    c.socket.pause();
    c.socket.once('drain', () => c.socket.resume());
  }
}

function abort(call: Call, reason: DaftkaError): void {
  if (call.timer) clearTimeout(call.timer);
  call.timer = null;
  if (call.ac && !call.ac.signal.aborted) call.ac.abort(reason);
}

function positiveInt(n: number, what: string): number {
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`${what} must be an integer ≥ 1, got ${n}`);
  return n;
}
