import net from 'node:net';
import { encodeFrame, FrameType } from '../../../../protocol/frame';
import { decodeAck, encodeHello } from '../../../../replica/transport/handshake';
import { PeerTransport, type PeerAddress, type PeerTransportOptions } from '../../../../replica/transport/peer';
import type { promClient } from '../../../../common/metrics';
import { metricValue, quietLogger, sleepMs, testRegistry, waitFor } from '../../../helpers/observe';

const CLUSTER = 'orders/0';
const FAST_BACKOFF = { initialMs: 10, maxMs: 50, multiplier: 2, jitter: 0.5 };

interface Node {
  id: string;
  t: PeerTransport;
  reg: promClient.Registry;
  got: Array<{ from: string; payload: string }>;
}

/** A little in-process cluster: every node resolves the others through one shared address book. */
class Cluster {
  readonly book = new Map<string, PeerAddress>();
  readonly nodes = new Map<string, Node>();

  async start(id: string, ids: string[], extra: Partial<PeerTransportOptions> = {}): Promise<Node> {
    const reg = testRegistry();
    const got: Node['got'] = [];
    const known = this.book.get(id);
    const t = new PeerTransport({
      selfId: id,
      clusterId: CLUSTER,
      listenHost: '127.0.0.1',
      listenPort: known?.port ?? 0,
      resolve: (peer) => this.book.get(peer),
      peers: ids,
      maxQueueBytes: 1 << 20,
      maxQueueMsgs: 1000,
      backoff: FAST_BACKOFF,
      logger: quietLogger(id),
      registry: reg,
      ...extra,
    });
    t.onMessage((from, payload) => got.push({ from, payload: payload.toString() }));
    this.book.set(id, await t.start());
    const node = { id, t, reg, got };
    this.nodes.set(id, node);
    return node;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.t.close()));
  }
}

const IDS = ['r0', 'r1', 'r2'];

// Real sockets on a shared CI machine: allow for a slow scheduler.
jest.setTimeout(20_000);
let cluster: Cluster;

beforeEach(() => {
  cluster = new Cluster();
});
afterEach(async () => {
  await cluster.closeAll();
});

async function startThree(): Promise<Node[]> {
  const nodes = [];
  for (const id of IDS) nodes.push(await cluster.start(id, IDS));
  return nodes;
}

describe('PeerTransport', () => {
  it('delivers messages between three replicas, in order per sender, with sender ids', async () => {
    const [a, b, c] = await startThree();
    for (let i = 0; i < 100; i++) {
      a.t.send('r1', Buffer.from(`a${i}`));
      a.t.send('r2', Buffer.from(`a${i}`));
      b.t.send('r0', Buffer.from(`b${i}`));
      c.t.send('r0', Buffer.from(`c${i}`));
    }
    await waitFor(() => a.got.length === 200 && b.got.length === 100 && c.got.length === 100, 5000, 'delivery');
    expect(b.got.map((m) => m.payload)).toEqual(Array.from({ length: 100 }, (_, i) => `a${i}`));
    expect(b.got.every((m) => m.from === 'r0')).toBe(true);
    expect(a.got.filter((m) => m.from === 'r2').map((m) => m.payload)).toEqual(
      Array.from({ length: 100 }, (_, i) => `c${i}`),
    );
    await waitFor(() => a.t.connectedPeers().length === 2, 2000, 'connected');
    expect(await metricValue(a.reg, 'daftka_peer_connected_peers')).toBe(2);
    expect(await metricValue(a.reg, 'daftka_peer_frames_sent_total', { peer: 'r1' })).toBe(100);
    expect(await metricValue(b.reg, 'daftka_peer_frames_received_total', { peer: 'r0' })).toBe(100);
    expect(await metricValue(b.reg, 'daftka_peer_received_bytes_total', { peer: 'r0' })).toBeGreaterThan(1200);
  });

  it('carries large messages (1 MiB) intact', async () => {
    const [a, b] = await startThree();
    const big = Buffer.alloc(1 << 20, 0x5a);
    const got: Buffer[] = [];
    b.t.onMessage((_from, p) => got.push(Buffer.from(p)));
    a.t.send('r1', big);
    await waitFor(() => got.length === 1);
    expect(got[0].equals(big)).toBe(true);
  });

  it('reconnects after a peer restarts and delivers again', async () => {
    const [a] = await startThree();
    a.t.send('r1', Buffer.from('before'));
    await waitFor(() => cluster.nodes.get('r1')!.got.length === 1);
    await cluster.nodes.get('r1')!.t.close();
    await waitFor(() => !a.t.connectedPeers().includes('r1'), 2000, 'disconnect noticed');

    const b2 = await cluster.start('r1', IDS); // same port, fresh process state
    await waitFor(() => a.t.connectedPeers().includes('r1'), 3000, 'reconnect');
    a.t.send('r1', Buffer.from('after'));
    await waitFor(() => b2.got.length === 1);
    expect(b2.got[0]).toEqual({ from: 'r0', payload: 'after' });
    expect(await metricValue(a.reg, 'daftka_peer_reconnects_total', { peer: 'r1' })).toBeGreaterThanOrEqual(1);
  });

  it('bounds the queue of a down peer and drops the OLDEST messages', async () => {
    // r1 has an address but is not running.
    const placeholder = net.createServer();
    await new Promise<void>((r) => placeholder.listen(0, '127.0.0.1', r));
    const port = (placeholder.address() as net.AddressInfo).port;
    await new Promise<void>((r) => placeholder.close(() => r()));
    cluster.book.set('r1', { host: '127.0.0.1', port });

    const a = await cluster.start('r0', ['r0', 'r1'], { maxQueueMsgs: 5 });
    for (let i = 0; i < 20; i++) a.t.send('r1', Buffer.from(`m${i}`));
    await sleepMs(50);
    expect(
      await metricValue(a.reg, 'daftka_peer_queue_dropped_messages_total', { peer: 'r1', reason: 'queue_full' }),
    ).toBe(15);
    expect(await metricValue(a.reg, 'daftka_peer_queue_messages', { peer: 'r1' })).toBe(5);

    const b = await cluster.start('r1', ['r0', 'r1']);
    await waitFor(() => b.got.length === 5, 3000, 'queued messages delivered');
    await sleepMs(50);
    expect(b.got.map((m) => m.payload)).toEqual(['m15', 'm16', 'm17', 'm18', 'm19']);
  });

  it('bounds the queue by bytes too', async () => {
    cluster.book.set('r1', { host: '127.0.0.1', port: 1 }); // nothing listens on port 1
    const a = await cluster.start('r0', ['r0', 'r1'], { maxQueueBytes: 1000 });
    for (let i = 0; i < 10; i++) a.t.send('r1', Buffer.alloc(300));
    expect(await metricValue(a.reg, 'daftka_peer_queue_bytes', { peer: 'r1' })).toBe(900);
    a.t.send('r1', Buffer.alloc(2000));
    expect(
      await metricValue(a.reg, 'daftka_peer_queue_dropped_messages_total', { peer: 'r1', reason: 'too_large' }),
    ).toBe(1);
  });

  it('refuses a handshake from another cluster and counts it', async () => {
    const [a] = await startThree();
    const reg = testRegistry();
    const stranger = new PeerTransport({
      selfId: 'r1',
      clusterId: 'payments/3',
      listenHost: '127.0.0.1',
      listenPort: 0,
      resolve: (id) => cluster.book.get(id),
      peers: ['r0'],
      backoff: FAST_BACKOFF,
      logger: quietLogger('stranger'),
      registry: reg,
    });
    await stranger.start();
    try {
      stranger.send('r0', Buffer.from('vote for me'));
      await waitFor(
        async () =>
          (await metricValue(a.reg, 'daftka_peer_handshake_rejected_total', { reason: 'wrong_cluster' })) >= 1,
        3000,
        'rejection counted',
      );
      await waitFor(
        async () =>
          (await metricValue(reg, 'daftka_peer_connect_failures_total', {
            peer: 'r0',
            reason: 'rejected_wrong_cluster',
          })) >= 1,
        3000,
        'stranger told why',
      );
      expect(a.got.find((m) => m.payload === 'vote for me')).toBeUndefined();
      expect(stranger.connectedPeers()).toEqual([]);
    } finally {
      await stranger.close();
    }
  });

  it('agrees on the highest payload version both ends know; refuses a peer with none in common', async () => {
    const a = await cluster.start('r0', IDS, { versions: { min: 1, max: 3 } });
    const b = await cluster.start('r1', IDS, { versions: { min: 2, max: 5 } });
    const c = await cluster.start('r2', IDS, { versions: { min: 4, max: 4 } });
    a.t.send('r1', Buffer.from('a→b'));
    b.t.send('r0', Buffer.from('b→a'));
    await waitFor(() => b.got.some((m) => m.payload === 'a→b') && a.got.some((m) => m.payload === 'b→a'), 3000, 'a⇄b');
    expect([a.t.versionFor('r1'), b.t.versionFor('r0')]).toEqual([3, 3]);
    // r2 writes only version 4: r0 (1..3) cannot read it and says so; r1 (2..5) can.
    c.t.send('r0', Buffer.from('c→a'));
    c.t.send('r1', Buffer.from('c→b'));
    await waitFor(() => b.got.some((m) => m.payload === 'c→b'), 3000, 'c→b');
    expect(c.t.versionFor('r1')).toBe(4);
    await waitFor(
      async () =>
        (await metricValue(a.reg, 'daftka_peer_handshake_rejected_total', { reason: 'incompatible_version' })) >= 1,
      3000,
      'incompatible version refused',
    );
    await waitFor(
      async () =>
        (await metricValue(c.reg, 'daftka_peer_connect_failures_total', {
          peer: 'r0',
          reason: 'rejected_incompatible_version',
        })) >= 1,
      3000,
      'told why',
    );
    expect(a.got.find((m) => m.payload === 'c→a')).toBeUndefined();
    expect(c.t.versionFor('r0')).toBeUndefined();
  });

  it('with a peer secret: members holding it connect; one without it, or with another, is refused', async () => {
    const secret = 'x'.repeat(16) + 'shared-group-secret-0123';
    const a = await cluster.start('r0', IDS, { secret });
    const b = await cluster.start('r1', IDS, { secret });
    const c = await cluster.start('r2', IDS);
    b.t.send('r0', Buffer.from('b→a'));
    c.t.send('r0', Buffer.from('c→a'));
    await waitFor(() => a.got.some((m) => m.payload === 'b→a'), 3000, 'b→a');
    await waitFor(
      async () =>
        (await metricValue(c.reg, 'daftka_peer_connect_failures_total', {
          peer: 'r0',
          reason: 'rejected_unauthenticated',
        })) >= 1,
      3000,
      'c refused',
    );
    expect(a.got.find((m) => m.payload === 'c→a')).toBeUndefined();
  });

  it('a hello without a version range (a peer from before versions) is version 1, answered with an ACK naming it', async () => {
    await cluster.start('r0', IDS);
    const s = net.connect(cluster.book.get('r0')!.port, '127.0.0.1');
    // The hello as it was before the range was added: three ids and nothing more.
    const old = Buffer.concat(
      ['r1', 'r0', CLUSTER].map((x) => Buffer.concat([Buffer.from([x.length]), Buffer.from(x)])),
    );
    s.write(encodeFrame(FrameType.PEER_HELLO, old));
    const reply = await new Promise<Buffer>((resolve) => s.once('data', resolve));
    s.destroy();
    expect(reply[1]).toBe(FrameType.PEER_HELLO_ACK);
    expect(decodeAck(reply.subarray(reply.length - 1))).toBe(1);
  });

  it('refuses a handshake from a replica outside the membership, and one aimed at another replica', async () => {
    const [a] = await startThree();
    const hello = async (from: string, to: string) => {
      const s = net.connect(cluster.book.get('r0')!.port, '127.0.0.1');
      s.write(encodeFrame(FrameType.PEER_HELLO, encodeHello({ from, to, clusterId: CLUSTER })));
      const reply: Buffer[] = [];
      s.on('data', (d) => reply.push(d));
      await new Promise((r) => s.on('close', r));
      return Buffer.concat(reply);
    };
    const r1 = await hello('r9', 'r0');
    expect(r1[1]).toBe(FrameType.PEER_HELLO_REJECT);
    const r2 = await hello('r1', 'r2');
    expect(r2[1]).toBe(FrameType.PEER_HELLO_REJECT);
    expect(await metricValue(a.reg, 'daftka_peer_handshake_rejected_total', { reason: 'unknown_peer' })).toBe(1);
    expect(await metricValue(a.reg, 'daftka_peer_handshake_rejected_total', { reason: 'wrong_target' })).toBe(1);
  });

  it('closes a raw socket that sends garbage, counts it, and keeps serving the others', async () => {
    const [a, b] = await startThree();
    const port = cluster.book.get('r0')!.port;
    const junk = net.connect(port, '127.0.0.1');
    junk.on('error', () => {});
    junk.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await new Promise((r) => junk.on('close', r));
    expect(await metricValue(a.reg, 'daftka_peer_bad_frames_total', { reason: 'bad_version' })).toBe(1);

    // After a valid handshake, a corrupt frame closes that connection too.
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write(encodeFrame(FrameType.PEER_HELLO, encodeHello({ from: 'r2', to: 'r0', clusterId: CLUSTER })));
    const bad = encodeFrame(FrameType.PEER_MESSAGE, Buffer.from('x'));
    bad[bad.length - 1] ^= 1;
    s.write(bad);
    await new Promise((r) => s.on('close', r));
    expect(await metricValue(a.reg, 'daftka_peer_bad_frames_total', { reason: 'crc_mismatch' })).toBe(1);

    b.t.send('r0', Buffer.from('still here'));
    await waitFor(() => a.got.some((m) => m.payload === 'still here' && m.from === 'r1'));
  });

  it('closes a connection that stops mid-frame (truncated) and one that never says hello', async () => {
    const a = await cluster.start('r0', IDS, { handshakeTimeoutMs: 100 });
    const port = cluster.book.get('r0')!.port;
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.end(encodeFrame(FrameType.PEER_HELLO, encodeHello({ from: 'r1', to: 'r0', clusterId: CLUSTER })).subarray(0, 10));
    await new Promise((r) => s.on('close', r));
    expect(await metricValue(a.reg, 'daftka_peer_bad_frames_total', { reason: 'truncated' })).toBe(1);

    const silent = net.connect(port, '127.0.0.1');
    silent.on('error', () => {});
    await new Promise((r) => silent.on('close', r));
    expect(await metricValue(a.reg, 'daftka_peer_handshake_rejected_total', { reason: 'timeout' })).toBe(1);
  });

  it('a handler that throws closes that connection as poison input; the sender reconnects', async () => {
    const [a, b] = await startThree();
    let calls = 0;
    b.t.onMessage((from, p) => {
      calls++;
      if (p.toString() === 'poison') throw new Error('cannot decode raft message');
      b.got.push({ from, payload: p.toString() });
    });
    await waitFor(() => a.t.connectedPeers().includes('r1'), 3000, 'first connection');
    const reconnectsBefore = await metricValue(a.reg, 'daftka_peer_reconnects_total', { peer: 'r1' });
    a.t.send('r1', Buffer.from('poison'));
    await waitFor(
      async () => (await metricValue(b.reg, 'daftka_peer_bad_frames_total', { reason: 'bad_payload' })) === 1,
    );
    await waitFor(
      async () => (await metricValue(a.reg, 'daftka_peer_reconnects_total', { peer: 'r1' })) > reconnectsBefore,
      3000,
      'the sender noticed the close',
    );
    await waitFor(() => a.t.connectedPeers().includes('r1'), 3000, 'reconnect');
    a.t.send('r1', Buffer.from('fine'));
    await waitFor(() => b.got.some((m) => m.payload === 'fine'));
    expect(calls).toBeGreaterThanOrEqual(2);
  });

  it('setPeers drops removed peers (queue discarded, connection closed) and dials added ones', async () => {
    const a = await cluster.start('r0', ['r0', 'r1']);
    const b = await cluster.start('r1', ['r0', 'r1']);
    await waitFor(() => a.t.connectedPeers().includes('r1'));
    const c = await cluster.start('r2', IDS);
    b.t.setPeers(IDS);
    a.t.setPeers(IDS);
    a.t.send('r2', Buffer.from('welcome'));
    await waitFor(() => c.got.some((m) => m.payload === 'welcome'));

    await waitFor(() => a.t.connectedPeers().length === 2);
    expect(await metricValue(a.reg, 'daftka_peer_connected_peers')).toBe(2);
    a.t.setPeers(['r0', 'r2']);
    expect(a.t.peers()).toEqual(['r2']);
    expect(await metricValue(a.reg, 'daftka_peer_connected_peers')).toBe(1);
    a.t.send('r1', Buffer.from('gone'));
    expect(
      await metricValue(a.reg, 'daftka_peer_queue_dropped_messages_total', { peer: 'unknown', reason: 'unknown_peer' }),
    ).toBe(1);
    // r1 is no longer a member of r0's group: its connection to r0 is refused from now on.
    await sleepMs(100);
    b.t.send('r0', Buffer.from('let me in'));
    await waitFor(
      async () => (await metricValue(a.reg, 'daftka_peer_handshake_rejected_total', { reason: 'unknown_peer' })) >= 1,
    );
    expect(a.got.some((m) => m.payload === 'let me in')).toBe(false);
  });

  it('validates ids and bounds at construction', () => {
    const base = {
      selfId: 'r0',
      clusterId: CLUSTER,
      listenHost: '127.0.0.1',
      listenPort: 0,
      resolve: () => undefined,
      logger: quietLogger(),
      registry: testRegistry(),
    };
    expect(() => new PeerTransport({ ...base, selfId: 'has space' })).toThrow(RangeError);
    expect(() => new PeerTransport({ ...base, maxQueueMsgs: 0 })).toThrow(RangeError);
    expect(() => new PeerTransport({ ...base, backoff: { initialMs: 0 } })).toThrow(RangeError);
    expect(() => new PeerTransport({ ...base, secret: 'short' })).toThrow(/at least 32 characters/);
    expect(() => new PeerTransport({ ...base, versions: { min: 0, max: 1 } })).toThrow(RangeError);
  });
});
