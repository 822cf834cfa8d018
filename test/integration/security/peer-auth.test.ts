import net from 'node:net';
import { encodeFrame, FrameDecoder, FrameType, PEER_FRAME_TYPES } from '../../../protocol/frame';
import { resolveReplicaConfig } from '../../../replica/config';
import { decodeHello, encodeAck, encodeHello, signHello } from '../../../replica/transport/handshake';
import { PeerTransport } from '../../../replica/transport/peer';
import { metricValue, quietLogger, sleepMs, testRegistry } from '../../helpers/observe';

/**
 * Issue 15, item 14, with the peer transport on real sockets: the acceptor's ACK is
 * authenticated (an impostor listening on a peer's address cannot take a replica's votes and
 * appends), a hello recorded before a replica restarted is refused after it, and an empty peer
 * secret is refused at start outside development.
 */

jest.setTimeout(20_000);

const SECRET = 'a-peer-secret-of-at-least-32-characters!!';
const CLUSTER = 'orders/0';

test("a replica does not open a connection to an acceptor that cannot prove the group's secret", async () => {
  // The impostor answers every hello with a well-formed ACK, without the proof.
  const got: number[] = [];
  const impostor = net.createServer((s) => {
    s.on('error', () => {});
    const dec = new FrameDecoder({ allowedTypes: PEER_FRAME_TYPES });
    s.on('data', (d) => {
      dec.push(d);
      for (const f of dec.frames()) {
        got.push(f.type);
        if (f.type === FrameType.PEER_HELLO) s.write(encodeFrame(FrameType.PEER_HELLO_ACK, encodeAck(1)));
      }
    });
  });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  const reg = testRegistry();
  const t = new PeerTransport({
    selfId: 'r0',
    clusterId: CLUSTER,
    listenHost: '127.0.0.1',
    listenPort: 0,
    resolve: () => ({ host: '127.0.0.1', port: (impostor.address() as net.AddressInfo).port }),
    peers: ['r1'],
    maxQueueBytes: 1 << 20,
    maxQueueMsgs: 1000,
    backoff: { initialMs: 10, maxMs: 50, multiplier: 2, jitter: 0.5 },
    logger: quietLogger('r0'),
    registry: reg,
    secret: SECRET,
  });
  await t.start();
  try {
    t.send('r1', Buffer.from('my vote'));
    await sleepMs(500);
    // Only hellos reached the impostor, never a message; the replica never counted it connected.
    expect(got.length).toBeGreaterThan(0);
    expect(got.every((x) => x === FrameType.PEER_HELLO)).toBe(true);
    expect(await metricValue(reg, 'daftka_peer_connected_peers')).toBe(0);
  } finally {
    await t.close();
    await new Promise((r) => impostor.close(r));
  }
});

test('a hello signed before the acceptor started is refused after its restart (the nonce cache is not needed across restarts)', async () => {
  const recorded = encodeHello(
    signHello(
      { from: 'r1', to: 'r0', clusterId: CLUSTER, versions: { min: 1, max: 1 } },
      Buffer.from(SECRET),
      Date.now(),
    ),
  );
  await sleepMs(20);
  const reg = testRegistry();
  const t = new PeerTransport({
    selfId: 'r0',
    clusterId: CLUSTER,
    listenHost: '127.0.0.1',
    listenPort: 0,
    resolve: () => undefined,
    peers: ['r1'],
    maxQueueBytes: 1 << 20,
    maxQueueMsgs: 1000,
    logger: quietLogger('r0'),
    registry: reg,
    secret: SECRET,
  });
  const addr = await t.start();
  try {
    expect(decodeHello(recorded).auth).toBeDefined();
    const reply = await new Promise<Buffer>((resolve) => {
      const s = net.connect(addr.port, '127.0.0.1');
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      s.on('error', () => {});
      s.on('close', () => resolve(Buffer.concat(chunks)));
      s.write(encodeFrame(FrameType.PEER_HELLO, recorded));
      setTimeout(() => s.destroy(), 3000);
    });
    const dec = new FrameDecoder({ allowedTypes: PEER_FRAME_TYPES });
    dec.push(reply);
    expect([...dec.frames()].map((f) => f.type)).toEqual([FrameType.PEER_HELLO_REJECT]);
  } finally {
    await t.close();
  }
});

test('an empty peer secret is refused at start unless development is said explicitly', () => {
  const env = {
    DAFTKA_TOPIC: 'orders',
    DAFTKA_PARTITION: '0',
    DAFTKA_ORDINAL: '0',
    DAFTKA_REPLICATION_FACTOR: '1',
    DAFTKA_REPLICAS: '127.0.0.1:1:2',
    DAFTKA_DATA_DIR: '/tmp/none',
  };
  expect(() => resolveReplicaConfig(env, [])).toThrow(/peerSecret/);
  expect(() => resolveReplicaConfig({ ...env, DAFTKA_INSECURE_NO_PEER_AUTH: 'true' }, [])).not.toThrow();
});
