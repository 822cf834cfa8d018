import { DaftkaError } from '../../../common/errors';
import { RemotePartitionClient } from '../../../protocol/partition-client';
import { RpcClient } from '../../../protocol/rpc-client';
import { ReplicaCluster } from '../../helpers/replica-cluster';

/**
 * Issue 15, item 11, against real replica processes: a produce just under the 16 MiB frame cap
 * used to commit nowhere — its Raft append, a little larger, was refused by every follower, and
 * the partition never committed again. Batches are now bounded well below the cap
 * (DAFTKA_MAX_BATCH_BYTES, 8 MiB), and fetch replies stay under it whatever max_bytes asks.
 */

jest.setTimeout(120_000);

let cluster: ReplicaCluster;
let rpc: RpcClient;
let client: RemotePartitionClient;

beforeAll(async () => {
  cluster = await ReplicaCluster.start({ size: 3, topic: 'big' });
  await cluster.waitFormed(90_000);
  const { ordinal } = await cluster.waitForLeader();
  rpc = new RpcClient({
    host: '127.0.0.1',
    port: cluster.slots[ordinal].clientPort,
    auth: cluster.clientAuth,
    maxFrameBytes: 16 * 1024 * 1024,
  });
  client = new RemotePartitionClient(rpc, { defaultTimeoutMs: 10_000 });
});

afterAll(async () => {
  rpc?.close();
  await cluster?.stop();
});

const MiB = 1024 * 1024;
const batch = (n: number, bytes: number, tag: string) => ({
  topic: 'big',
  partition: 0,
  records: Array.from({ length: n }, () => ({
    key: null,
    value: Buffer.alloc(bytes, tag),
    headers: [] as Array<[string, Uint8Array]>,
    timestampMs: Date.now(),
  })),
  timeoutMs: 5000,
  requestId: 'frame-bounds',
});

test('a produce just under the frame cap is refused 413 at once, and the partition keeps committing', async () => {
  const hw = (await client.status({ topic: 'big', partition: 0, requestId: 'x' })).highWatermark;
  // 16 records of 1 MiB − 512 B: the request fits the 16 MiB frame; its Raft entry would not.
  let err: DaftkaError | undefined;
  try {
    await client.produce(batch(16, MiB - 512, 'a'));
  } catch (e) {
    err = e as DaftkaError;
  }
  expect(err?.code).toBe('PAYLOAD_TOO_LARGE');
  expect((await client.status({ topic: 'big', partition: 0, requestId: 'x' })).highWatermark).toBe(hw);

  // The partition still commits, at once.
  const t0 = Date.now();
  const ok = await client.produce(batch(1, 100, 'b'));
  expect(ok.baseOffset).toBe(hw);
  expect(Date.now() - t0).toBeLessThan(3000);
});

test('a fetch asking for 64 MiB gets a reply under the frame cap, and the shared connection survives', async () => {
  // Two batches of 7 MiB: 14 MiB of records (+ one more) readable from one offset.
  const first = await client.produce(batch(7, MiB - 512, 'c'));
  await client.produce(batch(7, MiB - 512, 'd'));
  await client.produce(batch(2, MiB - 512, 'e'));
  const r = await client.fetch({
    topic: 'big',
    partition: 0,
    offset: first.baseOffset,
    maxRecords: 1000,
    maxBytes: 64 * MiB,
    waitMs: 0,
    requestId: 'big-fetch',
  });
  const total = r.records.reduce((s, x) => s + (x.value?.length ?? 0), 0);
  expect(r.records.length).toBeGreaterThan(0);
  expect(total).toBeLessThan(15 * MiB);
  // The connection was not closed by an oversized frame: the next call on it answers.
  expect((await client.status({ topic: 'big', partition: 0, requestId: 'y' })).role).toBe('leader');
});
