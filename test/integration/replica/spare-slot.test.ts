import { ReplicaCluster, sleep } from '../../helpers/replica-cluster';
import { checkLog, fetchAll, LoadProducer, TEST_ENV, waitCaughtUp } from './helpers';

/**
 * The replica's side of the operator's replica move (docs/operator.md, "Replica moves"): four
 * configured ordinals for replication factor 3 — the fourth is the spare slot, whose pod does not
 * run until a move needs it. The first three found the group without it; when it starts, the
 * leader adds it as a learner and promotes it once caught up (four voters: never fewer than three
 * copies); the operator's removeMember then takes the replica being moved out, and the leader
 * never adds it back while it still runs. Every acknowledged record is on the three that remain.
 */

jest.setTimeout(120_000);
let cluster: ReplicaCluster;

beforeAll(async () => {
  cluster = await ReplicaCluster.start({ size: 4, replicationFactor: 3, startOrdinals: [0, 1, 2], env: TEST_ENV });
});
afterAll(async () => {
  await cluster?.stop();
});

test('a group of RF 3 forms from the first three ordinals while the spare slot does not run', async () => {
  const formed = await cluster.waitFormed(60_000, [0, 1, 2]);
  expect(formed.voters).toHaveLength(3);
  expect(formed.voters.every((id) => !id.startsWith('3.'))).toBe(true);
});

test('a move: the spare joins as a learner and becomes a voter; the old replica is removed and not added back', async () => {
  const producer = new LoadProducer(cluster, { prefix: 'move', batch: 5, concurrency: 2 }).start();
  await cluster.waitFor(() => producer.acked.size >= 20, 30_000, 'some acknowledged batches');

  // Add: the spare slot's replica starts (the operator admits its pod) and is added by the leader.
  await cluster.restart(3);
  const four = await cluster.waitFormed(60_000, [0, 1, 2, 3]);
  expect(four.voters).toHaveLength(4);
  const spareId = (await cluster.status(3))!.replicaId;
  expect(four.voters).toContain(spareId);

  // Remove: a follower among the first three (the replica being moved), by the operator's call to
  // the leader (asked again should leadership have moved meanwhile).
  const { ordinal: leader } = await cluster.waitForLeader();
  const moved = [0, 1, 2].find((o) => o !== leader)!;
  const movedId = (await cluster.status(moved))!.replicaId;
  await cluster.waitFor(
    async () => {
      const l = await cluster.waitForLeader();
      try {
        await cluster
          .client(l.ordinal)
          .removeMember({ topic: cluster.topic, partition: cluster.partition, id: movedId, requestId: 'move' });
        return true;
      } catch {
        return !(await cluster.leader())?.status.voters.includes(movedId);
      }
    },
    20_000,
    `the leader to remove ${movedId}`,
  );
  const stay = [0, 1, 2, 3].filter((o) => o !== moved);
  await cluster.waitFormed(30_000, stay);

  // Its process still runs and answers status for a while (its pod is deleted next): the leader's
  // membership check (every 200 ms here) must not add it back as a learner.
  for (let i = 0; i < 10; i++) {
    const l = (await cluster.leader())!.status;
    expect([...l.voters, ...l.learners]).not.toContain(movedId);
    await sleep(200);
  }
  await cluster.kill(moved, 'SIGTERM');

  await producer.stop();
  expect(producer.unexpected).toEqual([]);
  const { status } = await cluster.waitForLeader();
  expect(status.voters).toHaveLength(3);
  for (const o of stay) {
    await waitCaughtUp(cluster, o, status.highWatermark);
    const { records } = await fetchAll(cluster, o);
    expect(checkLog(records, producer)).toEqual([]);
  }
});
