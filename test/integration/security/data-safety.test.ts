import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { logKey } from '../../../replica/storage/codec';
import { createRocksDb } from '../../../replica/storage/rocksdb';
import { RemotePartitionClient } from '../../../protocol/partition-client';
import { RpcClient } from '../../../protocol/rpc-client';
import { ReplicaCluster } from '../../helpers/replica-cluster';

/**
 * Issue 15, item 12, against real replica processes: a follower's committed (acknowledged) log
 * entries are damaged on disk while it is down. It must not come back with a lowered commit
 * index and a vote: it exits (storage corruption), its data dir is moved aside, and the restart
 * is a new incarnation that joins as a learner, catches up and replaces the old id. (Damage at or
 * below the commit index but above the applied one — once answered by lowering the commit index —
 * is covered by test/unit/replica/storage/recovery.test.ts.)
 */

jest.setTimeout(120_000);

let cluster: ReplicaCluster;

beforeAll(async () => {
  cluster = await ReplicaCluster.start({ size: 3, topic: 'safe' });
  await cluster.waitFormed(90_000);
});

afterAll(async () => {
  await cluster?.stop();
});

async function flipEntries(dataDir: string, indexes: number[]): Promise<void> {
  const db = createRocksDb(`${dataDir}/rocksdb`);
  await db.open({ createIfMissing: false });
  try {
    const b = db.batch();
    for (const i of indexes) {
      const [v] = await db.getMany([logKey(i)]);
      if (v === undefined) throw new Error(`no entry ${i}`);
      const bad = Buffer.from(v);
      bad[bad.length - 1] ^= 0xff;
      b.put(logKey(i), bad);
    }
    await b.write({ sync: true });
  } finally {
    await db.close();
  }
}

test('a follower whose committed entries fail their CRC exits, is quarantined, and returns as a new incarnation with every record', async () => {
  const { ordinal: leader } = await cluster.waitForLeader();
  const rpc = new RpcClient({ host: '127.0.0.1', port: cluster.slots[leader].clientPort, auth: cluster.clientAuth });
  const client = new RemotePartitionClient(rpc, { defaultTimeoutMs: 5000 });
  try {
    for (let i = 0; i < 10; i++)
      await client.produce({
        topic: 'safe',
        partition: 0,
        records: [{ key: null, value: Buffer.from(`r${i}`), headers: [], timestampMs: Date.now() }],
        timeoutMs: 5000,
        requestId: 'seed',
      });
    const formed = await cluster.waitFormed(30_000);
    const f = [0, 1, 2].find((o) => o !== leader)!;
    const before = (await cluster.status(f))!;
    expect(before.appliedIndex).toBe(formed.commitIndex);

    await cluster.sigterm(f);
    // Its last two entries, both committed and acknowledged, are damaged on disk.
    await flipEntries(cluster.slots[f].dataDir, [before.commitIndex - 1, before.commitIndex]);

    await cluster.restart(f);
    const exit = await cluster.slots[f].exited;
    expect(exit.code).not.toBe(0);
    const parent = dirname(cluster.slots[f].dataDir);
    const aside = readdirSync(parent).filter((n) => n.startsWith(`${basename(cluster.slots[f].dataDir)}.corrupt-`));
    expect(aside).toHaveLength(1);
    expect(existsSync(cluster.slots[f].dataDir)).toBe(false);

    // Back as a new incarnation: a new id, the old one removed, every record there.
    await cluster.restart(f);
    const whole = await cluster.waitFormed(60_000);
    const after = (await cluster.status(f))!;
    expect(after.replicaId).not.toBe(before.replicaId);
    expect(whole.voters).toContain(after.replicaId);
    expect(whole.voters).not.toContain(before.replicaId);
    expect(after.highWatermark).toBe(before.highWatermark);
  } finally {
    rpc.close();
  }
});
