import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { DaftkaError } from '../../../common/errors';
import { ReplicaCluster, sleep } from '../../helpers/replica-cluster';
import { encodeFrame, FrameType } from '../../../protocol/frame';
import { encodeHello, signHello } from '../../../replica/transport/handshake';
import { fetchAll, record, TEST_ENV, text, waitCaughtUp } from './helpers';

/**
 * Three real replica processes on loopback: what is acknowledged is committed, and every replica
 * serves the same records at the same offsets once it has caught up; nothing is visible at or
 * above the high watermark, and a long-poll there wakes when a record commits. Poison input never
 * takes a replica down: garbage, truncated and well-framed-but-meaningless bytes on the peer and
 * client ports close that connection (and are counted), and the process keeps serving.
 */

jest.setTimeout(90_000);
let cluster: ReplicaCluster;

beforeAll(async () => {
  cluster = await ReplicaCluster.start({ size: 3, env: TEST_ENV });
  await cluster.waitFormed(60_000);
});
afterAll(async () => {
  await cluster?.stop();
});

const T = { topic: 'orders', partition: 0 };

test('acknowledged batches are served by every replica with the same records at the same offsets', async () => {
  const { ordinal: leader } = await cluster.waitForLeader();
  const acks: Array<{ base: number; values: string[] }> = [];
  for (let b = 0; b < 20; b++) {
    const values = Array.from({ length: 1 + (b % 5) }, (_, i) => `v${b}.${i}`);
    const r = await cluster.client(leader).produce({
      ...T,
      records: values.map((v) => record(v, `k${b}`)),
      requestId: `p${b}`,
      timeoutMs: 5000,
    });
    expect(r.duplicate).toBe(false);
    expect(r.count).toBe(values.length);
    acks.push({ base: r.baseOffset, values });
  }
  // Offsets are dense and in acknowledgement order.
  for (let i = 1; i < acks.length; i++) expect(acks[i].base).toBe(acks[i - 1].base + acks[i - 1].values.length);
  const hw = acks[acks.length - 1].base + acks[acks.length - 1].values.length;

  const logs: string[][] = [];
  for (let o = 0; o < 3; o++) {
    await waitCaughtUp(cluster, o, hw);
    const { records, last } = await fetchAll(cluster, o);
    expect(last.highWatermark).toBeGreaterThanOrEqual(hw);
    records.forEach((r, i) => expect(r.offset).toBe(i));
    logs.push(records.map((r) => `${r.offset}:${text(r.key)}:${text(r.value)}:${text(r.headers[0][1])}`));
  }
  expect(logs[1]).toEqual(logs[0]);
  expect(logs[2]).toEqual(logs[0]);
  for (const a of acks) a.values.forEach((v, i) => expect(logs[0][a.base + i]).toMatch(new RegExp(`:${v}:x$`)));
  // Every replica reports its watermark and the size of its durable log.
  for (let o = 0; o < 3; o++) {
    const m = await cluster.metricsText(o);
    const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(m)?.[1]);
    expect(value('daftka_partition_high_watermark')).toBeGreaterThanOrEqual(hw);
    expect(value('daftka_partition_log_bytes')).toBeGreaterThan(0);
  }
});

test('nothing is visible at the high watermark; beyond it is OFFSET_OUT_OF_RANGE', async () => {
  for (let o = 0; o < 3; o++) {
    const st = (await cluster.status(o))!;
    const r = await cluster
      .client(o)
      .fetch({ ...T, offset: st.highWatermark, maxRecords: 10, maxBytes: 1 << 20, waitMs: 0, requestId: 'hw' });
    expect(r.records).toEqual([]);
    expect(r.nextOffset).toBe(st.highWatermark);
    const beyond = cluster
      .client(o)
      .fetch({ ...T, offset: r.highWatermark + 1, maxRecords: 10, maxBytes: 1 << 20, waitMs: 0, requestId: 'beyond' });
    await expect(beyond).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
    await expect(beyond).rejects.toThrow(/beyond the high watermark/);
  }
});

test('a long-poll at the high watermark wakes on every replica when a record commits', async () => {
  const { ordinal: leader, status } = await cluster.waitForLeader();
  // Every replica is caught up (previous test), so each one's high watermark is the leader's.
  const hw = status.highWatermark;
  for (let o = 0; o < 3; o++) await waitCaughtUp(cluster, o, hw);
  const started = Date.now();
  const polls = [0, 1, 2].map((o) =>
    cluster
      .client(o)
      .fetch({ ...T, offset: hw, maxRecords: 10, maxBytes: 1 << 20, waitMs: 20_000, requestId: `lp${o}` })
      .then((r) => ({ r, at: Date.now() })),
  );
  await sleep(500);
  const produced = Date.now();
  const ack = await cluster
    .client(leader)
    .produce({ ...T, records: [record('wake-up', 'lp')], requestId: 'lp-produce', timeoutMs: 5000 });
  expect(ack.baseOffset).toBe(hw);
  const results = await Promise.all(polls);
  for (const { r, at } of results) {
    expect(r.records.map((x) => text(x.value))).toEqual(['wake-up']);
    expect(r.records[0].offset).toBe(hw);
    // Woken by the commit, far before the 20 s wait ran out (and not before the produce).
    expect(at).toBeGreaterThanOrEqual(produced);
    expect(at - started).toBeLessThan(10_000);
  }
});

test('a long-poll with nothing to deliver returns empty after its wait', async () => {
  const st = (await cluster.status(1))!;
  const t0 = Date.now();
  const r = await cluster
    .client(1)
    .fetch({ ...T, offset: st.highWatermark, maxRecords: 10, maxBytes: 1 << 20, waitMs: 400, requestId: 'lp-empty' });
  expect(r.records).toEqual([]);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
});

test('a follower answers produce with NOT_LEADER and a hint naming the leader', async () => {
  const { ordinal: leader } = await cluster.waitForLeader();
  const follower = [0, 1, 2].find((o) => o !== leader)!;
  const err = await cluster
    .client(follower)
    .produce({ ...T, records: [record('nope')], requestId: 'nl', timeoutMs: 1000 })
    .then(
      () => null,
      (e: DaftkaError) => e,
    );
  expect(err).toMatchObject({ code: 'NOT_LEADER', leaderHint: cluster.slots[leader].clientEndpoint });
});

test('/readyz is 200 on every member and reports its role', async () => {
  const { ordinal: leader } = await cluster.waitForLeader();
  for (let o = 0; o < 3; o++) {
    const r = await cluster.readyz(o);
    expect(r.status).toBe(200);
    expect(r.body.reason).toBe(o === leader ? 'leader' : 'following');
  }
});

// ---- poison input on the peer and client ports ----

/** Connect, write `chunks` (then FIN when `end`), and resolve once the server closed the connection. */
function sendAndAwaitClose(port: number, chunks: Buffer[], end: boolean, timeoutMs = 10_000): Promise<'closed'> {
  return new Promise((res, rej) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      rej(new Error(`port ${port}: connection still open after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('error', () => undefined);
    sock.on('data', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      res('closed');
    });
    sock.on('connect', () => {
      for (const c of chunks) sock.write(c);
      if (end) sock.end();
    });
  });
}

const truncated = (frame: Buffer) => frame.subarray(0, frame.length - 3);
function corruptCrc(frame: Buffer): Buffer {
  const f = Buffer.from(frame);
  f[8] ^= 0xff;
  return f;
}

/** The replica answers status, and (if it leads) takes a produce that every replica then serves. */
async function expectServing(): Promise<void> {
  for (let o = 0; o < 3; o++) expect((await cluster.status(o, 3000))?.replicaId).toBeDefined();
  const { ordinal } = await cluster.waitForLeader();
  const r = await cluster
    .client(ordinal)
    .produce({ ...T, records: [record('still-serving')], requestId: 'alive', timeoutMs: 5000 });
  for (let o = 0; o < 3; o++) await waitCaughtUp(cluster, o, r.baseOffset + 1);
  for (const s of cluster.slots) expect(s.running).toBe(true);
}

test('garbage, truncated and meaningless frames on the peer port close the connection; the replica keeps serving', async () => {
  const o = 1;
  const port = cluster.slots[o].peerPort;
  const selfId = (await cluster.status(o))!.replicaId;
  const otherId = (await cluster.status(0))!.replicaId;
  const plain = { from: otherId, to: selfId, clusterId: 'orders/0' };
  const hello = encodeFrame(FrameType.PEER_HELLO, encodeHello(plain));
  // Posing as a real member takes the group's secret (each signed hello is good once).
  const signed = () =>
    encodeFrame(FrameType.PEER_HELLO, encodeHello(signHello(plain, Buffer.from(cluster.peerSecret), Date.now())));
  const before = await cluster.metric(o, 'daftka_peer_bad_frames_total');

  const cases: Array<[string, Buffer[], boolean]> = [
    ['random bytes', [randomBytes(4096)], false],
    ['a bad CRC', [corruptCrc(hello)], false],
    ['an unknown frame type', [encodeFrame(0x7f as FrameType, Buffer.alloc(8))], false],
    ['an oversize length', [Buffer.from([1, FrameType.PEER_HELLO, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])], false],
    ['a hello cut short, then FIN', [truncated(hello)], true],
    ['a malformed hello', [encodeFrame(FrameType.PEER_HELLO, randomBytes(40))], false],
    ['a message before the hello', [encodeFrame(FrameType.PEER_MESSAGE, randomBytes(40))], false],
    [
      'a hello for another group',
      [encodeFrame(FrameType.PEER_HELLO, encodeHello({ from: otherId, to: selfId, clusterId: 'other/9' }))],
      false,
    ],
    // Past the handshake (posing as a real member): a Raft message that does not decode is
    // dropped, and a frame that breaks framing closes the connection.
    [
      'a garbage message after the hello, then random bytes',
      [signed(), encodeFrame(FrameType.PEER_MESSAGE, randomBytes(64)), randomBytes(512)],
      false,
    ],
    [
      'a message cut short after the hello, then FIN',
      [signed(), truncated(encodeFrame(FrameType.PEER_MESSAGE, randomBytes(64)))],
      true,
    ],
  ];
  for (const [what, chunks, end] of cases) {
    await expect(sendAndAwaitClose(port, chunks, end).catch((e: Error) => `${what}: ${e.message}`)).resolves.toBe(
      'closed',
    );
  }
  expect(await cluster.metric(o, 'daftka_peer_bad_frames_total')).toBeGreaterThanOrEqual(before + 6);
  await expectServing();
});

test('a peer hello without the group secret, with another secret, or played again is refused as unauthenticated', async () => {
  const o = 2;
  const port = cluster.slots[o].peerPort;
  const selfId = (await cluster.status(o))!.replicaId;
  const otherId = (await cluster.status(0))!.replicaId;
  const plain = { from: otherId, to: selfId, clusterId: 'orders/0' };
  const before = await cluster.metric(o, 'daftka_peer_handshake_rejected_total', { reason: 'unauthenticated' });
  const reply = (frame: Buffer) =>
    new Promise<Buffer>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const got: Buffer[] = [];
      s.on('data', (d) => got.push(d));
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(got)));
      s.write(frame);
      setTimeout(() => s.destroy(), 3000);
    });
  const frame = (h: Parameters<typeof encodeHello>[0]) => encodeFrame(FrameType.PEER_HELLO, encodeHello(h));
  const once = frame(signHello(plain, Buffer.from(cluster.peerSecret), Date.now()));
  const cases: Array<[string, Buffer]> = [
    ['no signature', frame(plain)],
    ['another secret', frame(signHello(plain, randomBytes(32), Date.now()))],
    ['an old hello', frame(signHello(plain, Buffer.from(cluster.peerSecret), Date.now() - 10 * 60_000))],
  ];
  for (const [what, f] of cases) expect([what, (await reply(f))[1]]).toEqual([what, FrameType.PEER_HELLO_REJECT]);
  // The genuine hello is accepted once; the same bytes again are a replay.
  expect((await reply(once))[1]).toBe(FrameType.PEER_HELLO_ACK);
  expect((await reply(once))[1]).toBe(FrameType.PEER_HELLO_REJECT);
  expect(await cluster.metric(o, 'daftka_peer_handshake_rejected_total', { reason: 'unauthenticated' })).toBe(
    before + 4,
  );
  await expectServing();
});

test('garbage, truncated and meaningless frames on the client port close the connection; the replica keeps serving', async () => {
  const { ordinal: o } = await cluster.waitForLeader();
  const port = cluster.slots[o].clientPort;
  const before = await cluster.metric(o, 'daftka_rpc_server_bad_frames_total');
  const cases: Array<[string, Buffer[], boolean]> = [
    ['random bytes', [randomBytes(4096)], false],
    ['HTTP', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], false],
    ['a bad CRC', [corruptCrc(encodeFrame(FrameType.RPC_REQUEST, randomBytes(32)))], false],
    ['a peer frame type', [encodeFrame(FrameType.PEER_HELLO, randomBytes(32))], false],
    ['a response frame sent to the server', [encodeFrame(FrameType.RPC_RESPONSE, randomBytes(32))], false],
    ['a request whose header does not decode', [encodeFrame(FrameType.RPC_REQUEST, randomBytes(3))], false],
    ['a request cut short, then FIN', [truncated(encodeFrame(FrameType.RPC_REQUEST, randomBytes(100)))], true],
  ];
  for (const [what, chunks, end] of cases) {
    await expect(sendAndAwaitClose(port, chunks, end).catch((e: Error) => `${what}: ${e.message}`)).resolves.toBe(
      'closed',
    );
  }
  expect(await cluster.metric(o, 'daftka_rpc_server_bad_frames_total')).toBeGreaterThanOrEqual(before + 6);
  await expectServing();
});
