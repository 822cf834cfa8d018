import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { DaftkaError } from '../../../common/errors';
import { encodeProduceRequest } from '../../../protocol/codecs/partition';
import { encodeFrame, FrameDecoder, FrameType, RPC_FRAME_TYPES } from '../../../protocol/frame';
import { METHODS } from '../../../protocol/methods';
import { RemotePartitionClient } from '../../../protocol/partition-client';
import { clientKeyOf, encodeChallenge, encodeWelcome, type RpcClientAuth } from '../../../protocol/rpc-auth';
import { RpcClient } from '../../../protocol/rpc-client';
import { encodeRequestHeader } from '../../../protocol/wire';
import { metricFromText, ReplicaCluster } from '../../helpers/replica-cluster';

/**
 * Issue 15, item 3, against real replica processes: the client port admits a connection only
 * after it proves the topic's client key (an HMAC challenge–response, protocol/rpc-auth.ts), and
 * membership and leadership need the operator's admin key. Each attack asserts the refusal and
 * that nothing was written or changed.
 */

jest.setTimeout(120_000);

let cluster: ReplicaCluster;
const clients: RpcClient[] = [];

beforeAll(async () => {
  cluster = await ReplicaCluster.start({ size: 3, topic: 'orders' });
  await cluster.waitFormed(90_000);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
});

function clientOf(ordinal: number, auth?: RpcClientAuth): RemotePartitionClient {
  const rpc = new RpcClient({
    host: '127.0.0.1',
    port: cluster.slots[ordinal].clientPort,
    connectTimeoutMs: 2000,
    ...(auth ? { auth } : {}),
  });
  clients.push(rpc);
  return new RemotePartitionClient(rpc, { defaultTimeoutMs: 3000 });
}

async function failure(p: Promise<unknown>): Promise<DaftkaError> {
  try {
    await p;
  } catch (e) {
    return e as DaftkaError;
  }
  throw new Error('expected a failure');
}

const produce = (value: string) => ({
  topic: 'orders',
  partition: 0,
  records: [{ key: null, value: Buffer.from(value), headers: [], timestampMs: Date.now() }],
  timeoutMs: 3000,
  requestId: 'attack',
});

async function leaderState() {
  const { ordinal, status } = await cluster.waitForLeader();
  return { ordinal, hw: status.highWatermark, voters: [...status.voters].sort(), term: status.term };
}

async function refusedCount(ordinal: number): Promise<number> {
  return metricFromText(await cluster.metricsText(ordinal), 'daftka_rpc_server_admissions_total', {
    outcome: 'refused',
  });
}

test("a produce without the topic's credential, or with another topic's, is refused at admission and writes nothing", async () => {
  const before = await leaderState();
  const refusedBefore = await refusedCount(before.ordinal);

  const anonymous = await failure(clientOf(before.ordinal).produce(produce('anon')));
  expect(anonymous.code).toBe('UNAUTHENTICATED');
  const otherTopic = { keyFor: () => clientKeyOf(randomBytes(32).toString('base64'), 'orders') };
  const forged = await failure(clientOf(before.ordinal, otherTopic).produce(produce('forged')));
  expect(forged.code).toBe('UNAUTHENTICATED');
  // The anonymous client gave up by itself (it holds no key: nothing sent); the forged hello was refused.
  expect(await refusedCount(before.ordinal)).toBe(refusedBefore + 1);

  const after = await leaderState();
  expect(after.hw).toBe(before.hw);

  // The topic's own credential is admitted (the control).
  const ok = await clientOf(after.ordinal, cluster.clientAuth).produce(produce('mine'));
  expect(ok.baseOffset).toBe(before.hw);
});

test('a request sent before the hello is closed unread', async () => {
  const before = await leaderState();
  const frame = encodeFrame(
    FrameType.RPC_REQUEST,
    Buffer.concat([
      encodeRequestHeader({ correlationId: 1, timeoutMs: 3000, method: METHODS.produce.wire, requestId: 'raw' }),
      encodeProduceRequest(produce('raw')),
    ]),
  );
  const s = net.connect(cluster.slots[before.ordinal].clientPort, '127.0.0.1');
  s.on('error', () => {});
  const got: Buffer[] = [];
  s.on('data', (d) => got.push(d));
  s.write(frame);
  await new Promise((r) => s.on('close', r));
  // Only the challenge came back: no answer, no error frame.
  const dec = new FrameDecoder({ allowedTypes: RPC_FRAME_TYPES });
  dec.push(Buffer.concat(got));
  expect([...dec.frames()].map((f) => f.type)).toEqual([FrameType.RPC_CHALLENGE]);
  expect((await leaderState()).hw).toBe(before.hw);
});

test("the topic's credential cannot change membership or leadership; the operator's can", async () => {
  const before = await leaderState();
  const follower = before.voters.find((id) => !id.startsWith(`${before.ordinal}`))!;
  const asGateway = clientOf(before.ordinal, cluster.clientAuth);
  const target = { topic: 'orders', partition: 0, requestId: 'attack' };

  for (const call of [
    asGateway.removeMember({ ...target, id: follower }),
    asGateway.transferLeadership({ ...target, to: follower }),
    asGateway.addLearner({ ...target, id: '9.deadbeef', endpoint: '127.0.0.1:1' }),
  ]) {
    const e = await failure(call);
    expect(e.code).toBe('FORBIDDEN');
  }
  const after = await leaderState();
  expect(after.voters).toEqual(before.voters);
  expect(after.ordinal).toBe(before.ordinal);
  expect(after.term).toBe(before.term);

  // Without any credential, the connection is not even admitted.
  expect((await failure(clientOf(before.ordinal).removeMember({ ...target, id: follower }))).code).toBe(
    'UNAUTHENTICATED',
  );
  expect((await leaderState()).voters).toEqual(before.voters);

  // The operator's admin key: the same call is served.
  const followerOrdinal = Number(follower.split('.')[0]);
  await clientOf(before.ordinal, cluster.adminAuth).transferLeadership({ ...target, to: follower });
  expect((await cluster.waitForLeader(20_000, [before.ordinal])).ordinal).toBe(followerOrdinal);
});

test('an endpoint that cannot prove the topic key never receives a request (no unwritten data acknowledged)', async () => {
  const frames: number[] = [];
  const impostor = net.createServer((s) => {
    s.on('error', () => {});
    const dec = new FrameDecoder({ allowedTypes: RPC_FRAME_TYPES });
    s.write(
      encodeFrame(
        FrameType.RPC_CHALLENGE,
        encodeChallenge({ required: true, nonce: randomBytes(32), topic: 'orders' }),
      ),
    );
    s.on('data', (d) => {
      dec.push(d);
      for (const f of dec.frames()) {
        frames.push(f.type);
        // Welcome anyone, with a proof it cannot compute.
        if (f.type === FrameType.RPC_HELLO)
          s.write(encodeFrame(FrameType.RPC_WELCOME, encodeWelcome('topic', randomBytes(32))));
      }
    });
  });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  try {
    const rpc = new RpcClient({
      host: '127.0.0.1',
      port: (impostor.address() as net.AddressInfo).port,
      connectTimeoutMs: 2000,
      auth: cluster.clientAuth,
    });
    clients.push(rpc);
    const e = await failure(new RemotePartitionClient(rpc).produce(produce('secret payload')));
    expect(e.code).toBe('UNAUTHENTICATED');
    expect(frames).toEqual([FrameType.RPC_HELLO]);
  } finally {
    await new Promise((r) => impostor.close(r));
  }
});
