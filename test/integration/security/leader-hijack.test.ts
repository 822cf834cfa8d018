import net from 'node:net';
import { connect, type NatsConnection } from 'nats';
import { natsServerOptions } from '../../../common/nats-servers';
import { LocalStack, metricValue } from '../../helpers/local-stack';

/**
 * Issue 15, item 4, against the real stack: anyone who can publish on NATS announces a leader.
 * The gateway routes only to endpoints its catalog lists for the partition, and believes a term
 * far ahead of the one it knows only after the replica confirms it over the authenticated client
 * port. Each attack asserts that the next produce is still written by the real leader.
 */

jest.setTimeout(120_000);

let stack: LocalStack;
let nc: NatsConnection;

beforeAll(async () => {
  stack = await LocalStack.start({ topics: [{ name: 't', partitions: 1, replicationFactor: 3 }] });
  // The strongest forger local mode allows: a process holding the replicas' NATS credentials
  // (only they may publish announcements; test 'local mode NATS' below shows the others cannot).
  nc = await connect(natsServerOptions([stack.natsUrlAs('replica')]));
});

afterAll(async () => {
  await nc?.close();
  await stack?.stop();
});

const MAX_TERM = 2 ** 53 - 1;

async function announce(endpoint: string, term: number): Promise<void> {
  const msg = { v: 1, topic: 't', partition: 0, term, leaderId: '9.evil', endpoint, highWatermark: 0, ts: Date.now() };
  nc.publish('daftka.v1.leader.t.0', new TextEncoder().encode(JSON.stringify(msg)));
  await nc.flush();
  await new Promise((r) => setTimeout(r, 300));
}

/**
 * Claims not believed: dropped by the NATS feed (unsigned: the gateway holds the topic's key) or
 * refused by the router (`reason`), whichever comes first.
 */
async function refused(reason: string): Promise<number> {
  const m = (await stack.http<string>('GET', '/metrics')).body;
  return (
    (metricValue(m, 'daftka_gateway_leader_refused_total', { reason }) ?? 0) +
    (metricValue(m, 'daftka_gateway_nats_bad_messages_total', { kind: 'unsigned' }) ?? 0)
  );
}

async function produceOk(value: string): Promise<number> {
  const r = await stack.http<{ results: Array<{ offset: number }> }>('POST', '/v1/topics/t/records', {
    body: { records: [{ value }] },
    timeoutMs: 10_000,
  });
  expect(r.status).toBe(200);
  return r.body.results[0].offset;
}

test('an announcement naming an endpoint the catalog does not list is not believed', async () => {
  let connections = 0;
  const impostor = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  try {
    const first = await produceOk('before');
    const port = (impostor.address() as net.AddressInfo).port;
    const before = await refused('endpoint');
    await announce(`127.0.0.1:${port}`, MAX_TERM);
    expect(await refused('endpoint')).toBe(before + 1);

    // Written by the real leader, right after the forged one; the impostor was never dialled.
    expect(await produceOk('after')).toBe(first + 1);
    expect(connections).toBe(0);
    const leader = await stack.waitForLeader('t', 0);
    const r = await stack.http<{ records: Array<{ value: string }> }>(
      'GET',
      `/v1/topics/t/partitions/0/records?offset=${first}&encoding=utf8`,
    );
    expect(r.body.records.map((x) => x.value)).toEqual(['before', 'after']);
    expect(leader.term).toBeLessThan(1000);
  } finally {
    await new Promise((r) => impostor.close(r));
  }
});

test('a term far ahead naming a real replica is confirmed with that replica first, and does not pin the table', async () => {
  const leader = await stack.waitForLeader('t', 0);
  const follower = stack.replicas('t', 0).find((r) => r.name !== leader.name)!;
  const before = await refused('term_jump');
  await announce(follower.endpoint, MAX_TERM);
  expect(await refused('term_jump')).toBe(before + 1);
  await produceOk('still-routed');

  // A real change of leader is still followed (a pinned term 2^53−1 would refuse every later announcement).
  await stack.kill(leader.name, 'SIGTERM');
  const next = await stack.waitForLeader('t', 0, { not: leader.name });
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  await produceOk('after-failover');
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(next.term).toBeGreaterThan(leader.term);
});

test("an unsigned announcement is dropped when the gateway holds the topic's key; the replicas' signed ones are followed", async () => {
  const leader = await stack.waitForLeader('t', 0);
  const follower = stack.replicas('t', 0).find((r) => r.name !== leader.name)!;
  const text = async () => (await stack.http<string>('GET', '/metrics')).body;
  const before = metricValue(await text(), 'daftka_gateway_nats_bad_messages_total', { kind: 'unsigned' }) ?? 0;
  // A plausible term (one ahead) and a real replica's endpoint: only the signature tells it apart.
  await announce(follower.endpoint, leader.term + 1);
  const after = await text();
  expect(metricValue(after, 'daftka_gateway_nats_bad_messages_total', { kind: 'unsigned' })).toBe(before + 1);
  // The replicas' own announcements (signed, every second) are not dropped.
  await new Promise((r) => setTimeout(r, 2500));
  expect(metricValue(await text(), 'daftka_gateway_nats_bad_messages_total', { kind: 'unsigned' })).toBe(before + 1);
  await produceOk('after-unsigned');
});

describe('local mode NATS', () => {
  test('no credentials: refused; the gateway and observer users cannot publish an announcement', async () => {
    await expect(connect({ servers: stack.natsUrl, reconnect: false, timeout: 2000 })).rejects.toThrow(
      /Authorization/i,
    );
    for (const role of ['gateway', 'observer'] as const) {
      const c = await connect({ ...natsServerOptions([stack.natsUrlAs(role)]), reconnect: false });
      const errors: string[] = [];
      void (async () => {
        for await (const s of c.status()) if (s.type === 'error') errors.push(String(s.data));
      })();
      c.publish('daftka.v1.leader.t.0', new TextEncoder().encode('{}'));
      await c.flush().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      expect(errors.join(' ')).toMatch(/PERMISSIONS_VIOLATION|Permissions Violation/i);
      await c.close().catch(() => undefined);
    }
  });
});
