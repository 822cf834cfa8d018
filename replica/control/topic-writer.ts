import { RequestStrategy, type NatsConnection } from 'nats';
import { SUBJECTS } from '../../common/control-subjects';
import { ENDPOINT_RE, parseEndpoint } from '../../common/names';
import { DaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { ProduceRequest, ProduceResult } from '../../common/partition-api';
import { RemotePartitionClient } from '../../protocol/partition-client';
import { RpcClient } from '../../protocol/rpc-client';
import type { RpcClientAuth } from '../../protocol/rpc-auth';
import type { ClientTls } from '../../common/tls';
import { PartitionRouter } from '../../protocol/leader-router';
import { MAX_PARTITION_INDEX } from '../../common/limits';

/**
 * Produces to the partitions of another topic from inside a replica: the replay of dead letters
 * to another topic (replica/leased/service.ts). It is the gateway's leader-following router
 * (protocol/leader-router.ts) with no seeds: each partition's leader is found by NATS discovery
 * (`daftka.v1.discover.<topic>`, answered by every partition leader of the topic), NOT_LEADER
 * hints are followed, and one RPC client is kept per endpoint.
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
  /** Client keys of the target topics (client-port admission). */
  auth?: RpcClientAuth;
  /** TLS to the target replicas' client ports (the replica's own CA, DAFTKA_TLS_DIR). */
  tls?: ClientTls;
}

export class TopicWriter {
  private readonly router: PartitionRouter;
  private readonly rpcs: RpcClient[] = [];
  private readonly dec = new TextDecoder();

  constructor(private readonly o: TopicWriterOptions) {
    this.router = new PartitionRouter({
      // The target's partition count is the caller's (the replay job's); the target replica
      // refuses a partition it does not serve.
      directory: { get: () => ({ partitions: MAX_PARTITION_INDEX + 1, replicaEndpoints: [] }) },
      discover: (topic, partition) => this.discover(topic, partition),
      connect: (endpoint) => {
        const rpc = new RpcClient({
          ...parseEndpoint(endpoint)!,
          ...(o.auth ? { auth: o.auth } : {}),
          ...(o.tls ? { tls: o.tls } : {}),
        });
        this.rpcs.push(rpc);
        return new RemotePartitionClient(rpc);
      },
      logger: o.logger,
      maxRedirects: 3,
    });
  }

  /** Write one batch to `req.topic`/`req.partition` through its leader. */
  produce(req: ProduceRequest & { idempotencyKey: string }): Promise<ProduceResult> {
    return this.router.produce(req);
  }

  /** Ask the topic's leaders where they are; every answer goes into the router's leader table. */
  private async discover(topic: string, partition: number): Promise<void> {
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
        let found = false;
        for (const p of parseDiscoverReply(this.dec.decode(m.data))) {
          this.router.acceptLeader(
            topic,
            p.partition,
            { leaderId: p.leaderId, endpoint: p.endpoint, term: p.term },
            'discover',
          );
          if (p.partition === partition) found = true;
        }
        if (found) break;
      }
    } catch (err) {
      this.o.logger.debug('topic_writer_discover_failed', { topic, error: (err as Error).message });
    }
  }

  close(): void {
    void this.router.close();
    for (const rpc of this.rpcs) rpc.close();
  }
}

/** The partitions of a discovery reply that are well formed (anything else is ignored). */
export function parseDiscoverReply(
  text: string,
): Array<{ partition: number; leaderId: string; endpoint: string; term: number }> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  const parts = (doc as { v?: unknown; partitions?: unknown })?.partitions;
  if ((doc as { v?: unknown })?.v !== 1 || !Array.isArray(parts)) return [];
  return parts.filter(
    (p): p is { partition: number; leaderId: string; endpoint: string; term: number } =>
      typeof p === 'object' &&
      p !== null &&
      Number.isSafeInteger(p.partition) &&
      p.partition >= 0 &&
      typeof p.leaderId === 'string' &&
      p.leaderId.length > 0 &&
      Number.isSafeInteger(p.term) &&
      p.term >= 0 &&
      typeof p.endpoint === 'string' &&
      ENDPOINT_RE.test(p.endpoint),
  );
}
