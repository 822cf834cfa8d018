import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { ReplicaCluster } from '../../helpers/replica-cluster';
import { encodeFrame, FrameType } from '../../../replica/transport/frame';
import { encodeHello } from '../../../replica/transport/handshake';
import { record, TEST_ENV, waitCaughtUp } from './helpers';

/**
 * Poison input never takes a replica down: garbage, truncated and well-framed-but-meaningless
 * bytes on the peer and client ports close that connection (and are counted), and the process
 * keeps serving. A bad configuration stops the process at start with a message naming the key.
 */

jest.setTimeout(120_000);
const T = { topic: 'orders', partition: 0 };
let cluster: ReplicaCluster;

beforeAll(async () => {
  cluster = await ReplicaCluster.start({ size: 3, env: TEST_ENV });
  await cluster.waitFormed(60_000);
});
afterAll(async () => {
  await cluster?.stop();
});

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
  const hello = encodeFrame(FrameType.PEER_HELLO, encodeHello({ from: otherId, to: selfId, clusterId: 'orders/0' }));
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
      [hello, encodeFrame(FrameType.PEER_MESSAGE, randomBytes(64)), randomBytes(512)],
      false,
    ],
    [
      'a message cut short after the hello, then FIN',
      [hello, truncated(encodeFrame(FrameType.PEER_MESSAGE, randomBytes(64)))],
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

/** Run replica/main.ts with `env` and no cluster: resolves with the exit code and output. */
function runReplica(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((res) => {
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('DAFTKA_')) base[k] = v;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(resolve(__dirname, '../../../replica'), 'main.ts')],
      {
        cwd: resolve(__dirname, '../../..'),
        env: { ...base, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      res({ code, output });
    });
  });
}

test('a bad configuration exits non-zero at start with a message naming the key', async () => {
  const good = {
    DAFTKA_TOPIC: 'orders',
    DAFTKA_PARTITION: '0',
    DAFTKA_ORDINAL: '0',
    DAFTKA_REPLICAS: '127.0.0.1:1:2,127.0.0.1:3:4,127.0.0.1:5:6',
    DAFTKA_REPLICATION_FACTOR: '3',
    DAFTKA_DATA_DIR: join(cluster.baseDir, 'never-created'),
  };
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ DAFTKA_ORDINAL: '9' }, 'ordinal', /DAFTKA_ORDINAL/],
    [{ DAFTKA_ORDINAL: '3' }, 'ordinal', /DAFTKA_ORDINAL.*3 has no entry in DAFTKA_REPLICAS/],
    [{ DAFTKA_REPLICAS: '127.0.0.1:1,oops' }, 'replicas', /DAFTKA_REPLICAS/],
    [{ DAFTKA_TOPIC: 'Not_A_Label' }, 'topic', /DAFTKA_TOPIC/],
    [{ DAFTKA_HEARTBEAT_MS: '500' }, 'heartbeatMs', /DAFTKA_HEARTBEAT_MS.*below electionTimeoutMs/],
    [{ DAFTKA_FSYNC: 'sometimes' }, 'fsync', /DAFTKA_FSYNC/],
  ];
  const results = await Promise.all(cases.map(([env]) => runReplica({ ...good, ...env })));
  results.forEach(({ code, output }, i) => {
    const [, key, message] = cases[i];
    expect({ case: cases[i][0], code }).toEqual({ case: cases[i][0], code: 2 });
    const line = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => e.message === 'config_invalid');
    expect(line).toMatchObject({ level: 'error', key });
    expect(String(line!.error)).toMatch(message);
  });
});
