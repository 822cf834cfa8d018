import { PassThrough } from 'node:stream';
import { connect, type NatsConnection } from 'nats';
import { createLogger } from '../../../common/log';
import { createRegistry } from '../../../common/metrics';
import { StaticCatalog } from '../../../gateway/catalog';
import { NatsLeaderFeed } from '../../../gateway/leader-feed';
import { PartitionRouter } from '../../../protocol/leader-router';
import { startNatsServer, type NatsServerHandle } from '../../helpers/nats-server';
import { asReplicaClient, FakePartitions } from './fake-partition';
import { topic } from './fixtures';

const logger = createLogger('gateway', { stream: new PassThrough().resume() });
const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('NatsLeaderFeed against a real nats-server', () => {
  let nats: NatsServerHandle;
  let pub: NatsConnection;
  let feed: NatsLeaderFeed;
  let router: PartitionRouter;
  // The catalog lists the endpoints announced below: the router believes no other.
  const catalog = new StaticCatalog([
    topic('orders', {
      partitions: 3,
      replicaEndpoints: [
        ['h0:7000', 'h1:7000', 'h2:7000'],
        ['h0:7000', 'h1:7000', 'h2:7000'],
        ['h0:7000', 'h1:7000', 'h2:7000'],
      ],
    }),
  ]);

  beforeEach(async () => {
    nats = await startNatsServer();
    pub = await connect({ servers: nats.url });
    router = new PartitionRouter({ directory: catalog, connect: () => asReplicaClient(new FakePartitions()), logger });
  });
  afterEach(async () => {
    await feed?.close();
    await pub.close().catch(() => undefined);
    await nats.stop();
  });

  test('discovers leaders at start, then follows announcements with a term ≥ the known one', async () => {
    // A replica answering discovery for the topic.
    pub.subscribe('daftka.v1.discover.orders', {
      callback: (_e, m) =>
        m.respond(enc({ v: 1, partitions: [{ partition: 0, leaderId: 'r0', endpoint: 'h0:7000', term: 4 }] })),
    });
    await pub.flush();
    const registry = createRegistry('gateway', { defaultMetrics: false });
    feed = new NatsLeaderFeed({ servers: [nats.url], sink: router, catalog, logger, registry });
    await feed.start();
    expect(feed.connected()).toBe(true);
    expect(router.table.get('orders', 0)).toEqual({ leaderId: 'r0', endpoint: 'h0:7000', term: 4 });

    const announce = (p: number, o: Record<string, unknown>) =>
      pub.publish(
        `daftka.v1.leader.orders.${p}`,
        enc({ v: 1, topic: 'orders', partition: p, highWatermark: 10, ts: Date.now(), ...o }),
      );
    announce(0, { term: 5, leaderId: 'r1', endpoint: 'h1:7000' });
    await until(() => router.table.get('orders', 0)?.term === 5);
    expect(router.table.get('orders', 0)).toEqual({ leaderId: 'r1', endpoint: 'h1:7000', term: 5 });

    // A late announcement from an older term does not win; garbage is ignored and counted.
    announce(0, { term: 4, leaderId: 'r0', endpoint: 'h0:7000' });
    pub.publish(
      'daftka.v1.leader.orders.1',
      enc({ v: 1, topic: 'orders', partition: 2, term: 9, leaderId: 'x', endpoint: 'x:1' }),
    );
    pub.publish('daftka.v1.leader.orders.1', new TextEncoder().encode('{not json'));
    announce(2, { term: 1, leaderId: 'r2', endpoint: 'h2:7000' });
    await until(() => router.table.get('orders', 2) !== undefined);
    expect(router.table.get('orders', 0)?.leaderId).toBe('r1');
    expect(router.table.get('orders', 1)).toBeUndefined();
    const text = await registry.metrics();
    expect(text).toMatch(/daftka_gateway_nats_bad_messages_total\{kind="announcement"[^}]*\} 2/);
    expect(text).toMatch(/daftka_gateway_nats_connected\{[^}]*\} 1/);
  });

  test('NATS going away: degraded, then reconnects by itself and rediscovers', async () => {
    feed = new NatsLeaderFeed({ servers: [nats.url], sink: router, catalog, logger, reconnectTimeWaitMs: 100 });
    await feed.start();
    expect(feed.connected()).toBe(true);
    await nats.stop();
    await until(() => !feed.connected());
    await nats.restart();
    const responder = await connect({ servers: nats.url });
    responder.subscribe('daftka.v1.discover.orders', {
      callback: (_e, m) =>
        m.respond(enc({ v: 1, partitions: [{ partition: 1, leaderId: 'r2', endpoint: 'h2:7000', term: 8 }] })),
    });
    await responder.flush();
    await until(() => feed.connected(), 10_000);
    await until(() => router.table.get('orders', 1)?.term === 8, 5000);
    await responder.close();
  }, 20_000);

  test('start() keeps trying while NATS is down and stops when closed', async () => {
    await nats.stop();
    feed = new NatsLeaderFeed({ servers: [nats.url], sink: router, catalog, logger, reconnectTimeWaitMs: 50 });
    const started = feed.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(feed.connected()).toBe(false);
    await feed.close();
    await started;
    await nats.restart();
  });
});
