import { Backoff, sleep, type BackoffOptions } from '../common/backoff';
import { DaftkaError, isDaftkaError } from '../common/errors';
import type { Logger } from '../common/log';
import type { PartitionStatus } from '../common/partition-api';
import {
  CLIENT_METHOD_NAMES,
  METHODS,
  type ClientMethodName,
  type MethodKind,
  type ReplicaClient,
  type RequestOf,
  type ResponseOf,
} from './methods';
import { ENDPOINT_RE } from '../common/names';
import { commitUnknown, DeadlineExceeded, describe, isNotDelivered, isOutcomeUnknown } from './call-outcome';

export { isNotDelivered } from './call-outcome';
import { LeaderTable, type LeaderAnnouncement, type LeaderSource } from './leader-table';

export { LeaderTable, type LeaderAnnouncement, type LeaderEntry, type LeaderSource } from './leader-table';

/**
 * Routes partition calls to the partition's leader.
 *
 * The leader table maps (topic, partition) → {leaderId, endpoint, term}. It is fed by NATS
 * leader announcements and discovery replies (gateway/leader-feed.ts; an entry is replaced only
 * by a term ≥ its own, so a late announcement from a deposed leader cannot win), by NOT_LEADER
 * hints, and by successful answers. With no known leader the router asks the partition's
 * replicas from the directory (seeds), which redirect to the leader, or, where it has no seeds
 * (a replica writing to another topic), discovers the leaders over NATS.
 *
 * One leader-following client for every caller: the gateway (its catalog and NATS feed) and the
 * replica's writer to other topics (replica/control/topic-writer.ts: dead-letter replay).
 *
 * Per call, until the deadline:
 *  - NOT_LEADER with a hint → remember the hint and retry there at once (at most `maxRedirects`);
 *    without a hint (election under way) → back off, try the next replica;
 *  - the request was not delivered (connect refused/unreachable, or UNAVAILABLE from the replica
 *    client) → forget that leader, try the next replica, backing off once every replica failed;
 *  - a produce whose outcome is unknown (deadline passed or connection lost after sending, replica
 *    TIMEOUT/COMMIT_UNKNOWN) → 504 COMMIT_UNKNOWN at once: resending could write twice without an
 *    idempotency key, so the decision to retry is the client's (a retry with the key is safe);
 *  - reads and offset commits are idempotent and are retried on the next replica instead;
 *  - any other DaftkaError from the replica (NO_QUORUM, OVERLOADED, OFFSET_OUT_OF_RANGE, …) is
 *    the answer.
 *
 * Contract with the replica client (`connect(endpoint)`, protocol/partition-client.ts): it throws
 * DaftkaError for the replica's answers; UNAVAILABLE with `extra.delivery: 'not_sent'` (or a Node
 * error with code ECONNREFUSED / EHOSTUNREACH / ENETUNREACH / ENOTFOUND / EAI_AGAIN /
 * EADDRNOTAVAIL) when the request never left; UNAVAILABLE with `extra.delivery: 'maybe_sent'`,
 * TIMEOUT, or any non-Daftka error when the outcome is unknown.
 *
 * In-flight calls per endpoint are bounded (fetches, which long-poll, separately from the rest);
 * a call beyond the bound is refused with 503 OVERLOADED and Retry-After instead of queueing.
 */

/**
 * Where a topic's partitions are: how many, and the client endpoints of each partition's
 * replicas (seeds to ask when no leader is known). The gateway's topic catalog is one; the
 * replica's writer to other topics knows no seeds and finds leaders by discovery instead.
 */
export interface PartitionDirectory {
  get(topic: string): { partitions: number; replicaEndpoints: readonly (readonly string[])[] } | undefined;
}

/** What the router counts, when its owner wants it counted (the gateway: gateway/metrics.ts). */
export interface RouterMetrics {
  /** A call sent on to another replica: `not_leader` (a redirect followed) or `unreachable`. */
  redirected(reason: 'not_leader' | 'unreachable'): void;
  /** A call refused by the in-flight bound of an endpoint. */
  shed(kind: string): void;
  /** The leader table changed, by source. */
  leaderUpdated(source: LeaderSource): void;
  /**
   * A leader announcement or hint not believed: `endpoint` (not a replica the catalog lists for
   * that partition) or `term_jump` (a term too far ahead: the replica is asked first).
   */
  leaderRefused?(reason: 'endpoint' | 'term_jump'): void;
}

export interface PartitionRouterOptions {
  directory: PartitionDirectory;
  /**
   * Find the leaders of `topic` out of band (NATS discovery) when none is known and no seed
   * answers; the answers come in through `acceptLeader`. None: seeds and hints only.
   */
  discover?: (topic: string, partition: number) => Promise<void>;
  /** The replica client for a `host:port` client endpoint (one per endpoint, cached here). */
  connect: (endpoint: string) => ReplicaClient;
  logger: Logger;
  /** None: nothing is counted. */
  metrics?: RouterMetrics;
  /** Deadline of calls other than produce (which carries its own) and fetch (wait + this). Default 5000. */
  requestTimeoutMs?: number;
  /** NOT_LEADER redirects followed per call. Default 5. */
  maxRedirects?: number;
  /**
   * An announcement (NATS, discovery) whose term is more than this ahead of the known one (0 when
   * none is known) is not believed until the replica at its endpoint confirms, over the
   * authenticated client port, that it leads at that term. Default 16.
   */
  maxTermJump?: number;
  /** In-flight produce/commit/status calls per endpoint. Default 512. */
  maxInflightPerEndpoint?: number;
  /** In-flight (long-polling) fetches per endpoint. Default 1024. */
  maxInflightFetchesPerEndpoint?: number;
  /** Backoff between attempts when no replica answered usefully. Default 25 ms → 500 ms. */
  retryBackoff?: Partial<BackoffOptions>;
  /** Retry-After sent with OVERLOADED when an endpoint's in-flight bound is reached. Default 1000. */
  overloadRetryAfterMs?: number;
  nowMs?: () => number;
}

type Op = Exclude<MethodKind, 'admin'>;

interface Inflight {
  calls: number;
  fetches: number;
}

/** The fields of a routed request the router reads (every client method's request has them). */
interface RoutedRequest {
  topic: string;
  partition: number;
  requestId: string;
  /** produce */
  timeoutMs?: number;
  /** poll */
  waitMs?: number;
}

/** The request as sent to a replica with `remainingMs` of the caller's budget left. */
function fit(kind: MethodKind, r: RoutedRequest, remainingMs: number, requestTimeoutMs: number): unknown {
  // The replica gets a little less time than we do, so its own COMMIT_UNKNOWN reaches us first.
  if (kind === 'produce')
    return { ...r, timeoutMs: Math.max(1, Math.floor(remainingMs - Math.min(250, remainingMs * 0.1))) };
  if (kind === 'poll')
    return { ...r, waitMs: Math.max(0, Math.floor(Math.min(r.waitMs!, remainingMs - requestTimeoutMs))) };
  return r;
}

/**
 * The router offers every client method of the table (protocol/methods.ts) as a method of its
 * own, derived in the constructor: `router.produce(req)` is `router.call('produce', req)`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unsafe-declaration-merging
export interface PartitionRouter extends ReplicaClient {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class PartitionRouter {
  readonly table = new LeaderTable();
  private readonly clients = new Map<string, ReplicaClient>();
  private readonly inflight = new Map<string, Inflight>();
  private readonly o: Required<Omit<PartitionRouterOptions, 'metrics' | 'retryBackoff' | 'discover'>> & {
    retryBackoff: Partial<BackoffOptions>;
  };
  private readonly m?: RouterMetrics;
  private readonly discover?: (topic: string, partition: number) => Promise<void>;

  constructor(opts: PartitionRouterOptions) {
    const self = this as unknown as Record<ClientMethodName, (req: never) => Promise<unknown>>;
    for (const name of CLIENT_METHOD_NAMES) self[name] = (req: never) => this.call(name, req);
    this.o = {
      requestTimeoutMs: 5000,
      maxRedirects: 5,
      maxTermJump: 16,
      maxInflightPerEndpoint: 512,
      maxInflightFetchesPerEndpoint: 1024,
      overloadRetryAfterMs: 1000,
      nowMs: () => performance.now(),
      ...opts,
      retryBackoff: { initialMs: 25, maxMs: 500, multiplier: 2, jitter: 0.5, ...(opts.retryBackoff ?? {}) },
    };
    this.m = opts.metrics;
    this.discover = opts.discover;
  }

  /**
   * Take a leader announcement (NATS, discovery, status) for a partition in the catalog. Routing
   * cannot be hijacked: an endpoint the catalog does not list for that partition is never taken
   * (when the catalog lists any), and a term far ahead of the known one from NATS or discovery
   * is only believed once the replica itself confirms it (`maxTermJump`) — otherwise one forged
   * message with term 2^53−1 would pin the table for good.
   */
  acceptLeader(topic: string, partition: number, a: LeaderAnnouncement, source: LeaderSource): boolean {
    const t = this.o.directory.get(topic);
    if (t === undefined || !Number.isInteger(partition) || partition < 0 || partition >= t.partitions) return false;
    if (!ENDPOINT_RE.test(a.endpoint) || !Number.isSafeInteger(a.term) || a.term < 0) return false;
    if (!this.listed(t, partition, a.endpoint)) {
      this.m?.leaderRefused?.('endpoint');
      this.o.logger.warn('leader_refused', { topic, partition, reason: 'endpoint_not_in_catalog', source });
      return false;
    }
    if (
      (source === 'nats' || source === 'discover') &&
      a.term > (this.table.get(topic, partition)?.term ?? 0) + this.o.maxTermJump
    ) {
      this.m?.leaderRefused?.('term_jump');
      this.o.logger.warn('leader_refused', { topic, partition, reason: 'term_jump', term: a.term, source });
      this.confirm(topic, partition, a.endpoint);
      return false;
    }
    const changed = this.table.update(topic, partition, a);
    if (changed) {
      this.m?.leaderUpdated(source);
      this.o.logger.debug('leader_updated', { topic, partition, term: a.term, leader_id: a.leaderId, source });
    }
    return changed;
  }

  /** Whether `endpoint` is one the catalog lists for the partition (any, when it lists none: the replay writer). */
  private listed(
    t: { replicaEndpoints: readonly (readonly string[])[] },
    partition: number,
    endpoint: string,
  ): boolean {
    const seeds = t.replicaEndpoints[partition] ?? [];
    return seeds.length === 0 || seeds.includes(endpoint);
  }

  private readonly confirming = new Set<string>();

  /** Ask the replica at `endpoint` who leads (one question per partition at a time); its answer is believed. */
  private confirm(topic: string, partition: number, endpoint: string): void {
    const k = `${topic}/${partition}`;
    if (this.confirming.has(k)) return;
    this.confirming.add(k);
    let c: ReplicaClient;
    try {
      c = this.client(endpoint);
    } catch {
      this.confirming.delete(k);
      return;
    }
    c.status({ topic, partition, requestId: 'confirm-leader' })
      .then((s) => {
        if (s.role === 'leader' && s.leaderEndpoint !== null && s.leaderId !== null)
          this.acceptLeader(
            topic,
            partition,
            { leaderId: s.leaderId, endpoint: s.leaderEndpoint, term: s.term },
            'status',
          );
      })
      .catch(() => undefined)
      .finally(() => this.confirming.delete(k));
  }

  /** Drop table entries and idle clients that the catalog no longer names (after a catalog change). */
  prune(): void {
    const cat = this.o.directory;
    this.table.retain((topic, p) => {
      const t = cat.get(topic);
      return t !== undefined && p < t.partitions;
    });
  }

  /** Close every replica client that has a `close()` (shutdown). */
  async close(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(
      all.map((c) => (c as ReplicaClient & { close?: () => unknown }).close?.()).filter((p) => p !== undefined),
    );
  }

  /**
   * One call of the method table (protocol/methods.ts) to the partition's leader. The entry's
   * kind sets the deadline (produce: its own timeoutMs; poll: waitMs + requestTimeoutMs; others:
   * requestTimeoutMs), what the replica is given of it, the retry rule and the in-flight bound.
   */
  call<K extends ClientMethodName>(name: K, req: RequestOf<K>): Promise<ResponseOf<K>> {
    const spec = METHODS[name];
    const r = req as unknown as RoutedRequest;
    const now = this.o.nowMs();
    const t = this.o.requestTimeoutMs;
    const send = (c: ReplicaClient, remainingMs: number) =>
      (c[name] as unknown as (x: unknown) => Promise<ResponseOf<K>>)(fit(spec.kind, r, remainingMs, t));
    const deadline =
      spec.kind === 'produce' ? now + r.timeoutMs! : spec.kind === 'poll' ? now + r.waitMs! + t : now + t;
    const p = this.route(r.topic, r.partition, r.requestId, spec.kind as Op, spec.needsLeader, deadline, send);
    if (name !== 'status') return p;
    return p.then((v) => {
      const s = v as unknown as PartitionStatus;
      if (s.role === 'leader' && s.leaderEndpoint !== null && s.leaderId !== null)
        this.acceptLeader(
          r.topic,
          r.partition,
          { leaderId: s.leaderId, endpoint: s.leaderEndpoint, term: s.term },
          'status',
        );
      return v;
    });
  }

  private client(endpoint: string): ReplicaClient {
    let c = this.clients.get(endpoint);
    if (c === undefined) {
      c = this.o.connect(endpoint);
      this.clients.set(endpoint, c);
    }
    return c;
  }

  /** Reserve an in-flight slot at `endpoint`, or refuse with OVERLOADED. */
  private acquire(endpoint: string, op: Op): () => void {
    let f = this.inflight.get(endpoint);
    if (f === undefined) {
      f = { calls: 0, fetches: 0 };
      this.inflight.set(endpoint, f);
    }
    const slot = f;
    if (op === 'poll') {
      if (slot.fetches >= this.o.maxInflightFetchesPerEndpoint) throw this.shed('poll');
      slot.fetches++;
      return () => {
        slot.fetches--;
      };
    }
    if (slot.calls >= this.o.maxInflightPerEndpoint) throw this.shed(op);
    slot.calls++;
    return () => {
      slot.calls--;
    };
  }

  private shed(op: Op): DaftkaError {
    this.m?.shed(op);
    return new DaftkaError('OVERLOADED', 'too many requests in flight to the partition leader; retry later', {
      retryAfterMs: this.o.overloadRetryAfterMs,
    });
  }

  /** Settle with `p`, or reject with DeadlineExceeded after `ms` (p keeps running; its slot stays taken). */
  private race<T>(p: Promise<T>, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new DeadlineExceeded()), ms);
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e);
        },
      );
    });
  }

  private async route<T>(
    topic: string,
    partition: number,
    requestId: string,
    op: Op,
    needsLeader: boolean,
    deadlineMs: number,
    fn: (c: ReplicaClient, remainingMs: number) => Promise<T>,
  ): Promise<T> {
    const info = this.o.directory.get(topic);
    if (info === undefined) throw new DaftkaError('TOPIC_NOT_FOUND', `topic ${topic} does not exist`);
    if (!Number.isInteger(partition) || partition < 0 || partition >= info.partitions)
      throw new DaftkaError('PARTITION_NOT_FOUND', `topic ${topic} has no partition ${partition}`);
    const seeds = info.replicaEndpoints[partition] ?? [];
    let seedIdx = Math.floor(Math.random() * Math.max(1, seeds.length));
    const unreachable = new Set<string>();
    const backoff = new Backoff(this.o.retryBackoff);
    let redirects = 0;
    let lastErr: unknown;
    let target: string | null = this.table.get(topic, partition)?.endpoint ?? null;

    const wait = async () => {
      const remaining = deadlineMs - this.o.nowMs();
      if (remaining > 0) await sleep(Math.min(backoff.next(), remaining));
    };

    for (;;) {
      const remainingMs = deadlineMs - this.o.nowMs();
      if (remainingMs <= 0) throw this.gaveUp(topic, partition, requestId, op, lastErr);
      if (target === null && this.discover) {
        try {
          await this.discover(topic, partition);
        } catch (err) {
          lastErr = err;
        }
        const found = this.table.get(topic, partition)?.endpoint ?? null;
        if (found !== null && !unreachable.has(found)) target = found;
      }
      if (target === null) {
        // Next seed that has not failed to connect during this call; after a full round, back off.
        let pick: string | null = null;
        for (let i = 0; i < seeds.length; i++) {
          const s = seeds[(seedIdx + i) % seeds.length];
          if (!unreachable.has(s)) {
            pick = s;
            seedIdx = (seedIdx + i + 1) % seeds.length;
            break;
          }
        }
        if (pick === null) {
          unreachable.clear();
          await wait();
          if (seeds.length === 0 && !this.discover) throw this.gaveUp(topic, partition, requestId, op, lastErr);
          continue;
        }
        target = pick;
      }

      const endpoint = target;
      let replica: ReplicaClient;
      try {
        replica = this.client(endpoint);
      } catch (err) {
        // No client for this endpoint (e.g. a port out of range): nothing was sent.
        lastErr = err;
        this.o.logger.warn('replica_client_failed', { request_id: requestId, endpoint, error: (err as Error).message });
        this.table.invalidate(topic, partition, endpoint);
        unreachable.add(endpoint);
        target = null;
        continue;
      }
      const release = this.acquire(endpoint, op);
      let p: Promise<T>;
      try {
        p = fn(replica, remainingMs);
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then(release, release);
      try {
        const v = await this.race(p, remainingMs);
        // Only the leader answers such a call: the answer says where the leader is.
        if (
          needsLeader &&
          this.table.get(topic, partition)?.endpoint !== endpoint &&
          this.table.hint(topic, partition, endpoint)
        )
          this.m?.leaderUpdated('answer');
        return v;
      } catch (err) {
        lastErr = err;
        if (isDaftkaError(err) && err.code === 'NOT_LEADER') {
          const hint = err.leaderHint;
          if (++redirects > this.o.maxRedirects)
            throw new DaftkaError('NOT_LEADER', `no stable leader for ${topic}/${partition}: too many redirects`, {
              retryAfterMs: 1000,
              ...(hint !== undefined ? { leaderHint: hint } : {}),
            });
          this.m?.redirected('not_leader');
          if (hint !== undefined && hint !== endpoint && ENDPOINT_RE.test(hint) && this.listed(info, partition, hint)) {
            if (this.table.hint(topic, partition, hint)) this.m?.leaderUpdated('hint');
            target = hint;
            // A hint at a replica that just failed us is stale news (its followers have not noticed
            // yet): give the election time rather than spending redirects on it.
            if (unreachable.has(hint)) {
              redirects--;
              await wait();
            }
            continue;
          }
          // No leader known to that replica (an election is under way): wait, then ask another.
          this.table.invalidate(topic, partition, endpoint);
          unreachable.add(endpoint);
          target = null;
          await wait();
          continue;
        }
        if (isNotDelivered(err)) {
          this.m?.redirected('unreachable');
          this.table.invalidate(topic, partition, endpoint);
          unreachable.add(endpoint);
          target = null;
          continue;
        }
        if (isOutcomeUnknown(err)) {
          if (op === 'produce')
            throw commitUnknown(
              topic,
              partition,
              err instanceof DeadlineExceeded ? 'no answer from the leader before the deadline' : describe(err),
              err,
            );
          if (err instanceof DeadlineExceeded)
            throw new DaftkaError('TIMEOUT', `no answer for ${topic}/${partition} before the deadline`, {
              retryAfterMs: 1000,
            });
          // Reads and offset commits are idempotent: ask again, elsewhere if need be.
          this.m?.redirected('unreachable');
          this.table.invalidate(topic, partition, endpoint);
          unreachable.add(endpoint);
          target = null;
          await wait();
          continue;
        }
        // The replica's answer (NO_QUORUM, OVERLOADED, OFFSET_OUT_OF_RANGE, IDEMPOTENCY_CONFLICT, …).
        throw err;
      }
    }
  }

  private gaveUp(topic: string, partition: number, requestId: string, op: Op, lastErr: unknown): DaftkaError {
    if (isDaftkaError(lastErr) && lastErr.retryable && lastErr.code !== 'UNAVAILABLE') return lastErr;
    this.o.logger.info('route_gave_up', {
      request_id: requestId,
      topic,
      partition,
      op,
      error: String((lastErr as Error | undefined)?.message ?? lastErr),
    });
    return new DaftkaError('UNAVAILABLE', `no replica of ${topic}/${partition} answered before the deadline`, {
      retryAfterMs: 1000,
      cause: lastErr,
    });
  }
}
