import { RequestStrategy, type NatsConnection } from 'nats';
import { SUBJECTS } from '../../common/control-subjects';
import { ENDPOINT_RE, parseEndpoint } from '../../common/names';
import { DaftkaError, isDaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { ProduceRequest, ProduceResult } from '../../common/partition-api';
import { RemotePartitionClient } from '../../protocol/partition-client';
import { deliveryOf, RpcClient } from '../../protocol/rpc-client';

/**
 * Produces to the partitions of another topic from inside a replica: the replay of dead letters
 * to another topic (replica/leased-service.ts). Each partition's leader is found by NATS
 * discovery (`daftka.v1.discover.<topic>`, answered by every partition leader of the topic),
 * NOT_LEADER hints are followed, and one RPC client is kept per endpoint.
 *
 * Every call carries an idempotency key (the type says so): whatever this writer does not know —
 * a COMMIT_UNKNOWN, a leader lost mid-call — the caller retries with the same key, and the target
 * partition's dedup table answers the retry with the original offsets instead of writing twice.
 */
export interface TopicWriterOptions {
  /** The replica's NATS connection, when it has one. */
  nats: () => NatsConnection | null;
  logger: Logger;
  /** Longest wait for discovery replies. Default 1000 ms. */
  discoverWaitMs?: number;
  /** Idle clients are closed after this long. Default 60 s. */
  idleMs?: number;
}

const MAX_HOPS = 3;

export class TopicWriter {
  private readonly leaders = new Map<string, string>();
  private readonly clients = new Map<string, { client: RemotePartitionClient; rpc: RpcClient; usedMs: number }>();
  private readonly dec = new TextDecoder();

  constructor(private readonly o: TopicWriterOptions) {}

  /** Write one batch to `req.topic`/`req.partition` through its leader. */
  async produce(req: ProduceRequest & { idempotencyKey: string }): Promise<ProduceResult> {
    const where = `${req.topic}/${req.partition}`;
    let endpoint = this.leaders.get(where) ?? (await this.discover(req.topic, req.partition));
    for (let hop = 0; ; hop++) {
      if (endpoint === undefined)
        throw new DaftkaError('UNAVAILABLE', `no leader of ${where} answered discovery on NATS`, {
          retryAfterMs: 500,
        });
      try {
        const r = await this.clientFor(endpoint).produce(req);
        this.leaders.set(where, endpoint);
        return r;
      } catch (err) {
        this.leaders.delete(where);
        if (!isDaftkaError(err)) throw err;
        // Not delivered, or answered by a follower: ask again (the hint first).
        const notSent = err.code === 'UNAVAILABLE' && deliveryOf(err) === 'not_sent';
        if (hop + 1 >= MAX_HOPS || !(err.code === 'NOT_LEADER' || notSent)) throw err;
        endpoint =
          err.code === 'NOT_LEADER' && err.leaderHint && ENDPOINT_RE.test(err.leaderHint)
            ? err.leaderHint
            : await this.discover(req.topic, req.partition);
      }
    }
  }

  /** Ask the topic's leaders where they are; remember every answer, return the one wanted. */
  private async discover(topic: string, partition: number): Promise<string | undefined> {
    const nc = this.o.nats();
    if (nc === null || nc.isClosed())
      throw new DaftkaError('UNAVAILABLE', `cannot find the leader of ${topic}/${partition}: not connected to NATS`, {
        retryAfterMs: 1000,
      });
    try {
      const replies = await nc.requestMany(SUBJECTS.discover(topic), new Uint8Array(0), {
        strategy: RequestStrategy.Timer,
        maxWait: this.o.discoverWaitMs ?? 1000,
      });
      for await (const m of replies) {
        for (const p of parseDiscoverReply(this.dec.decode(m.data)))
          this.leaders.set(`${topic}/${p.partition}`, p.endpoint);
        if (this.leaders.has(`${topic}/${partition}`)) break;
      }
    } catch (err) {
      this.o.logger.debug('topic_writer_discover_failed', { topic, error: (err as Error).message });
    }
    return this.leaders.get(`${topic}/${partition}`);
  }

  private clientFor(endpoint: string): RemotePartitionClient {
    const now = Date.now();
    for (const [ep, c] of this.clients)
      if (now - c.usedMs > (this.o.idleMs ?? 60_000)) {
        c.rpc.close();
        this.clients.delete(ep);
      }
    let c = this.clients.get(endpoint);
    if (!c) {
      const rpc = new RpcClient(parseEndpoint(endpoint)!);
      c = { rpc, client: new RemotePartitionClient(rpc), usedMs: now };
      this.clients.set(endpoint, c);
    }
    c.usedMs = now;
    return c.client;
  }

  close(): void {
    for (const c of this.clients.values()) c.rpc.close();
    this.clients.clear();
  }
}

/** The partitions of a discovery reply that are well formed (anything else is ignored). */
export function parseDiscoverReply(text: string): Array<{ partition: number; endpoint: string }> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  const parts = (doc as { v?: unknown; partitions?: unknown })?.partitions;
  if ((doc as { v?: unknown })?.v !== 1 || !Array.isArray(parts)) return [];
  return parts.filter(
    (p): p is { partition: number; endpoint: string } =>
      typeof p === 'object' &&
      p !== null &&
      Number.isSafeInteger(p.partition) &&
      p.partition >= 0 &&
      typeof p.endpoint === 'string' &&
      ENDPOINT_RE.test(p.endpoint),
  );
}
