import net from 'node:net';

/**
 * A fault-injecting TCP proxy for loopback tests (DESIGN §12 tier 3): it listens on 127.0.0.1,
 * forwards every accepted connection to one target port, and can cut, delay or stall what it
 * carries. A `ProxyMesh` puts one proxy on every directed link of a group of N processes, so a
 * test can isolate one process or cut a link in one direction.
 *
 * Faults, all reversible except close():
 *  - cut():     live connections are reset at once; new ones are accepted and reset at once
 *               (the dialer sees ECONNRESET) until heal();
 *  - delay(ms): every chunk, in both directions, is held `ms` before it is forwarded; order is
 *               kept (chunks leave in arrival order); 0 turns it off;
 *  - pause():   nothing is forwarded, in either direction, on live or new connections; bytes wait
 *               in a per-direction buffer of at most `maxBufferedBytes`, and a connection whose
 *               buffer would grow beyond it is reset (a stalled link that gave up); resume()
 *               forwards what waited, in order.
 *
 * Memory is bounded: at most `maxConnections` live connections per proxy (more are reset), and
 * per direction at most `maxBufferedBytes` held, plus one chunk (a delayed direction stops
 * reading from its source instead, as TCP would). close() resets every connection, clears every timer and closes
 * the listening socket.
 */

export interface FaultProxyOptions {
  targetPort: number;
  targetHost?: string;
  /** Bytes held per direction of one connection while paused or delayed. Default 8 MiB. */
  maxBufferedBytes?: number;
  /** Live connections at once; one more is reset at once. Default 64. */
  maxConnections?: number;
  /** For messages. */
  name?: string;
}

export interface FaultProxyStats {
  /** Connections accepted and forwarded. */
  accepted: number;
  /** Connections reset on arrival because the link was cut (or the connection limit reached). */
  refused: number;
  /** Live connections reset by cut(). */
  cut: number;
  /** Connections reset because a paused direction overflowed its buffer. */
  overflowed: number;
  /** Bytes forwarded (both directions). */
  bytes: number;
  /** The most bytes one direction of one connection held at once (paused or delayed). */
  maxHeldBytes: number;
}

type LinkState = 'open' | 'cut';

/** One direction of one proxied connection: bytes from `src` to `dst`, delayed or held when asked. */
class Channel {
  private readonly queue: Array<{ chunk: Buffer; dueMs: number }> = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private readingPaused = false;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly conn: Connection,
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
  ) {
    src.on('data', (chunk: Buffer) => this.onData(chunk));
    dst.on('drain', () => this.resumeReading());
  }

  private onData(chunk: Buffer): void {
    const delayMs = this.proxy.delayMs;
    if (!this.proxy.paused && delayMs === 0 && this.queue.length === 0) {
      this.write(chunk);
      return;
    }
    if (this.queuedBytes + chunk.length > this.proxy.maxBufferedBytes) {
      if (this.proxy.paused) {
        this.proxy.stats.overflowed++;
        this.conn.destroy();
        return;
      }
      // Delayed, not stalled: stop reading until the queue drains (TCP's own backpressure).
      this.src.pause();
      this.readingPaused = true;
    }
    this.queue.push({ chunk, dueMs: performance.now() + delayMs });
    this.queuedBytes += chunk.length;
    this.proxy.stats.maxHeldBytes = Math.max(this.proxy.stats.maxHeldBytes, this.queuedBytes);
    this.flush();
  }

  /** Forward what is due, in order; arm a timer for the next chunk. Nothing while paused. */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.proxy.paused || this.conn.closed) return;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0].dueMs <= now) {
      const { chunk } = this.queue.shift()!;
      this.queuedBytes -= chunk.length;
      this.write(chunk);
    }
    if (this.queue.length > 0) this.timer = setTimeout(() => this.flush(), Math.max(1, this.queue[0].dueMs - now));
    if (this.queuedBytes <= this.proxy.maxBufferedBytes / 2) this.resumeReading();
  }

  private write(chunk: Buffer): void {
    if (this.conn.closed) return;
    this.proxy.stats.bytes += chunk.length;
    if (!this.dst.write(chunk)) {
      this.src.pause();
      this.readingPaused = true;
    }
  }

  private resumeReading(): void {
    if (!this.readingPaused || this.conn.closed) return;
    if (this.dst.writableNeedDrain || this.queuedBytes > this.proxy.maxBufferedBytes / 2) return;
    this.readingPaused = false;
    this.src.resume();
  }

  dispose(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

/** One accepted connection and its upstream twin. */
class Connection {
  closed = false;
  private readonly channels: Channel[];

  constructor(
    private readonly proxy: FaultProxy,
    readonly client: net.Socket,
    readonly upstream: net.Socket,
  ) {
    this.channels = [new Channel(proxy, this, client, upstream), new Channel(proxy, this, upstream, client)];
    for (const s of [client, upstream]) {
      s.on('error', () => this.destroy());
      s.on('close', () => this.destroy());
      s.on('end', () => this.destroy());
    }
  }

  flush(): void {
    for (const c of this.channels) c.flush();
  }

  /** Reset both sockets (RST, not FIN: a cut link does not say goodbye). */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.channels) c.dispose();
    for (const s of [this.client, this.upstream]) reset(s);
    this.proxy.forget(this);
  }
}

function reset(s: net.Socket): void {
  if (s.destroyed) return;
  // resetAndDestroy() needs a connected handle; a socket still connecting is just destroyed.
  if (s.readyState === 'open' || s.readyState === 'readOnly' || s.readyState === 'writeOnly') s.resetAndDestroy();
  else s.destroy();
}

export class FaultProxy {
  readonly name: string;
  readonly maxBufferedBytes: number;
  readonly maxConnections: number;
  readonly stats: FaultProxyStats = { accepted: 0, refused: 0, cut: 0, overflowed: 0, bytes: 0, maxHeldBytes: 0 };
  delayMs = 0;
  paused = false;
  private state: LinkState = 'open';
  private readonly conns = new Set<Connection>();
  private readonly server: net.Server;
  private closing: Promise<void> | null = null;
  private boundPort = 0;

  private constructor(private readonly opts: FaultProxyOptions) {
    this.name = opts.name ?? `proxy→${opts.targetPort}`;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 8 << 20;
    this.maxConnections = opts.maxConnections ?? 64;
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Listen on 127.0.0.1 (`listenPort`, default a free port) and forward to the target. */
  static async start(opts: FaultProxyOptions & { listenPort?: number }): Promise<FaultProxy> {
    const p = new FaultProxy(opts);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(opts.listenPort ?? 0, '127.0.0.1', () => {
        p.server.off('error', reject);
        resolve();
      });
    });
    const addr = p.server.address();
    p.boundPort = typeof addr === 'object' && addr !== null ? addr.port : 0;
    return p;
  }

  /** The port this proxy listens on (127.0.0.1). */
  get port(): number {
    return this.boundPort;
  }

  get isCut(): boolean {
    return this.state === 'cut';
  }

  get liveConnections(): number {
    return this.conns.size;
  }

  /** Reset live connections and every new one until heal(). */
  cut(): void {
    this.state = 'cut';
    for (const c of [...this.conns]) {
      this.stats.cut++;
      c.destroy();
    }
  }

  heal(): void {
    this.state = 'open';
  }

  /** Hold every chunk `ms` before forwarding it (both directions, order kept); 0: no delay. */
  delay(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`delay must be ≥ 0 ms, got ${ms}`);
    this.delayMs = ms;
    if (ms === 0) for (const c of this.conns) c.flush();
  }

  /** Stop forwarding (bytes are held, bounded); connections stay open. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const c of this.conns) c.flush();
  }

  /** Back to a clean link: healed, no delay, not paused. */
  reset(): void {
    this.heal();
    this.delayMs = 0;
    this.resume();
  }

  /** Reset every connection, stop listening; idempotent. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.state = 'cut';
    this.paused = false;
    for (const c of [...this.conns]) c.destroy();
    this.closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    return this.closing;
  }

  forget(c: Connection): void {
    this.conns.delete(c);
  }

  private accept(client: net.Socket): void {
    if (this.state === 'cut' || this.closing !== null || this.conns.size >= this.maxConnections) {
      this.stats.refused++;
      client.on('error', () => undefined);
      reset(client);
      return;
    }
    this.stats.accepted++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: this.opts.targetHost ?? '127.0.0.1', port: this.opts.targetPort });
    upstream.setNoDelay(true);
    this.conns.add(new Connection(this, client, upstream));
  }
}

/** Totals over several proxies (maxHeldBytes: the largest). */
export function sumStats(proxies: Iterable<FaultProxy>): FaultProxyStats {
  const t: FaultProxyStats = { accepted: 0, refused: 0, cut: 0, overflowed: 0, bytes: 0, maxHeldBytes: 0 };
  for (const p of proxies) {
    for (const k of ['accepted', 'refused', 'cut', 'overflowed', 'bytes'] as const) t[k] += p.stats[k];
    t.maxHeldBytes = Math.max(t.maxHeldBytes, p.stats.maxHeldBytes);
  }
  return t;
}

/**
 * One proxy per directed link (and per target port) between N processes. `targets[o]` lists
 * the ports process `o` is reached on (e.g. its peer port and its client port); process `a`
 * reaches `b`'s k-th port through `port(a, b, k)`. So the link a→b carries only the
 * connections that `a` opens to `b`: cutting it while b→a stays open is a one-way cut.
 */
export class ProxyMesh {
  private constructor(
    readonly size: number,
    private readonly links: FaultProxy[][][],
  ) {}

  /**
   * Start every proxy. `avoidPorts`: ports the proxies must not take (ports allocated for the
   * processes but not bound yet); a proxy that lands on one is moved.
   */
  static async start(
    targets: number[][],
    opts: { avoidPorts?: Iterable<number>; maxBufferedBytes?: number } = {},
  ): Promise<ProxyMesh> {
    const avoid = new Set([...(opts.avoidPorts ?? []), ...targets.flat()]);
    const n = targets.length;
    const links: FaultProxy[][][] = Array.from({ length: n }, () => Array.from({ length: n }, () => []));
    const mesh = new ProxyMesh(n, links);
    try {
      for (let a = 0; a < n; a++)
        for (let b = 0; b < n; b++) {
          if (a === b) continue;
          for (const [k, targetPort] of targets[b].entries()) {
            for (;;) {
              const p = await FaultProxy.start({
                targetPort,
                name: `${a}→${b}#${k}`,
                maxBufferedBytes: opts.maxBufferedBytes,
              });
              if (!avoid.has(p.port)) {
                avoid.add(p.port);
                links[a][b].push(p);
                break;
              }
              await p.close();
            }
          }
        }
    } catch (e) {
      await mesh.close();
      throw e;
    }
    return mesh;
  }

  /** The proxies of the link from→to (one per target port of `to`). */
  link(from: number, to: number): FaultProxy[] {
    if (from === to || this.links[from]?.[to] === undefined) throw new RangeError(`no link ${from}→${to}`);
    return this.links[from][to];
  }

  /** Where `from` reaches the k-th target port of `to`. */
  port(from: number, to: number, k: number): number {
    const p = this.link(from, to)[k];
    if (p === undefined) throw new RangeError(`link ${from}→${to} has no port #${k}`);
    return p.port;
  }

  /** Every proxy, once. */
  all(): FaultProxy[] {
    return this.links.flat(2);
  }

  /** The ordinal a proxy port leads to (for addresses a process hands out, e.g. leader hints). */
  targetOfPort(port: number): number | undefined {
    for (let a = 0; a < this.size; a++)
      for (let b = 0; b < this.size; b++) if (a !== b && this.links[a][b].some((p) => p.port === port)) return b;
    return undefined;
  }

  cutOneWay(from: number, to: number): void {
    for (const p of this.link(from, to)) p.cut();
  }

  /** Cut every link to and from `o`. */
  isolate(o: number): void {
    for (let x = 0; x < this.size; x++) {
      if (x === o) continue;
      this.cutOneWay(o, x);
      this.cutOneWay(x, o);
    }
  }

  delayLink(from: number, to: number, ms: number): void {
    for (const p of this.link(from, to)) p.delay(ms);
  }

  pauseLink(from: number, to: number): void {
    for (const p of this.link(from, to)) p.pause();
  }

  /** Every link back to clean: healed, no delay, resumed. */
  healAll(): void {
    for (const p of this.all()) p.reset();
  }

  stats(): FaultProxyStats {
    return sumStats(this.all());
  }

  async close(): Promise<void> {
    await Promise.all(this.all().map((p) => p.close()));
  }
}
