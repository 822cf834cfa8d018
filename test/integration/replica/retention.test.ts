import { ReplicaCluster } from '../../helpers/replica-cluster';
import { fetchAll, record, TEST_ENV, text, waitCaughtUp } from './helpers';

/**
 * Retention with real processes: the leader advances the log start offset (a replicated
 * command), every replica drops the Raft log below it, fetch below it is OFFSET_OUT_OF_RANGE
 * with a message that says so, and a follower that was away while the log start moved past its
 * own log receives a snapshot — its state pulled from the leader in chunks — and then serves
 * records from the new log start.
 */

jest.setTimeout(150_000);
const T = { topic: 'orders', partition: 0 };
const VALUE = 'x'.repeat(1000);
const RETENTION_BYTES = 40_000;
let cluster: ReplicaCluster;

beforeAll(async () => {
  cluster = await ReplicaCluster.start({
    size: 3,
    env: {
      ...TEST_ENV,
      DAFTKA_RETENTION_BYTES: String(RETENTION_BYTES),
      DAFTKA_RETENTION_MS: '-1',
      DAFTKA_RETENTION_CHECK_MS: '100',
      // Few appends in flight per follower: one that goes away falls behind the log start
      // instead of finding everything queued for it on its way back.
      DAFTKA_MAX_INFLIGHT_MSGS: '4',
      // The smallest chunk: the snapshot's state (offset index, idempotency keys) takes several.
      DAFTKA_SNAPSHOT_CHUNK_BYTES: '1024',
    },
  });
  await cluster.waitFormed(60_000);
});
afterAll(async () => {
  await cluster?.stop();
});

/** `batches` batches of 10 × 1 KB records to the leader; returns the high watermark after the last. */
async function produce(prefix: string, batches: number): Promise<number> {
  let hw = 0;
  for (let b = 0; b < batches; b++) {
    for (let attempt = 0; ; attempt++) {
      const { ordinal } = await cluster.waitForLeader();
      try {
        const r = await cluster.client(ordinal).produce({
          ...T,
          records: Array.from({ length: 10 }, (_, i) => record(`${prefix}-${b}-${i}:${VALUE}`, `${prefix}-${b}`)),
          idempotencyKey: `${prefix}-${b}`,
          requestId: `${prefix}-${b}`,
          timeoutMs: 5000,
        });
        hw = r.baseOffset + r.count;
        break;
      } catch (e) {
        if (attempt > 20) throw e;
      }
    }
  }
  return hw;
}

async function logStartOf(ordinal: number): Promise<number> {
  return (await cluster.status(ordinal))?.logStartOffset ?? -1;
}

test('retention moves the log start offset on every replica and drops the log below it', async () => {
  const hw = await produce('r', 20); // 200 records ≈ 200 KB ≫ 40 KB retained
  const { ordinal: leader } = await cluster.waitForLeader();
  await cluster.waitFor(async () => (await logStartOf(leader)) > 0, 20_000, 'the log start offset to move');
  // Retention keeps at most RETENTION_BYTES of records (each is > 1000 bytes), cut at batch boundaries.
  await cluster.waitFor(
    async () => hw - (await logStartOf(leader)) < RETENTION_BYTES / 1000,
    20_000,
    'retention to catch up',
  );
  const start = await logStartOf(leader);
  expect(start % 10).toBe(0);
  for (let o = 0; o < 3; o++) {
    await waitCaughtUp(cluster, o, hw);
    await cluster.waitFor(async () => (await logStartOf(o)) >= start, 10_000, `replica ${o} to apply the log start`);
    // Every replica compacted its Raft log to the retained part.
    await cluster.waitFor(
      () => cluster.slots[o].logEvents().some((e) => e.message === 'log_compacted'),
      10_000,
      `replica ${o} to compact`,
    );
    const { records } = await fetchAll(cluster, o, start);
    expect(records[0].offset).toBe(start);
    expect(records[records.length - 1].offset).toBe(hw - 1);
    expect(text(records[0].value)).toBe(`r-${start / 10}-0:${VALUE}`);
  }
});

test('fetch below the log start offset is OFFSET_OUT_OF_RANGE and names the log start', async () => {
  for (let o = 0; o < 3; o++) {
    const st = (await cluster.status(o))!;
    expect(st.logStartOffset).toBeGreaterThan(0);
    const below = cluster
      .client(o)
      .fetch({ ...T, offset: 0, maxRecords: 10, maxBytes: 1 << 20, waitMs: 0, requestId: 'below' });
    await expect(below).rejects.toMatchObject({
      code: 'OFFSET_OUT_OF_RANGE',
      extra: { log_start_offset: st.logStartOffset },
    });
    await expect(below).rejects.toThrow(
      new RegExp(`offset 0 is below the log start offset ${st.logStartOffset} \\(deleted by retention\\)`),
    );
  }
});

test('a follower away while the log start passed its log receives a snapshot and serves from the new log start', async () => {
  const { ordinal: leader } = await cluster.waitForLeader();
  const f = [0, 1, 2].find((o) => o !== leader)!;
  const lastIndexBefore = (await cluster.status(f))!.lastIndex;
  await cluster.kill(f, 'SIGKILL');

  const hw = await produce('away', 30);
  // The leader's log now starts past everything the follower has.
  await cluster.waitFor(
    async () => {
      const first = cluster.slots[leader]
        .logEvents()
        .filter((e) => e.message === 'log_compacted')
        .map((e) => Number(e.first_index));
      return Math.max(0, ...first) > lastIndexBefore + 1;
    },
    20_000,
    'the leader to compact past the follower',
  );

  await cluster.restart(f);
  const pid = cluster.slots[f].pid;
  await cluster.waitFormed(60_000);
  await waitCaughtUp(cluster, f, hw);
  const events = cluster.slots[f].logEvents().filter((e) => e.pid === pid);
  expect(events.some((e) => e.message === 'snapshot_installed')).toBe(true);
  // The state came in chunks pulled from the leader's export, not in the Snap message.
  const staged = events.find((e) => e.message === 'snapshot_transfer_staged');
  expect(staged).toBeDefined();
  expect(Number(staged!.chunks)).toBeGreaterThan(2);
  expect(String(staged!.export)).toMatch(/^[^/]+\/[0-9a-f]{12}\/\d+$/);

  const start = await logStartOf(leader);
  await cluster.waitFor(async () => (await logStartOf(f)) >= start, 10_000, 'the follower to apply the log start');
  const fromLeader = (await fetchAll(cluster, leader, start)).records;
  const fromFollower = (await fetchAll(cluster, f, start)).records;
  expect(fromFollower.length).toBeGreaterThan(0);
  expect(fromFollower[0].offset).toBe(start);
  expect(fromFollower.map((r) => `${r.offset}:${text(r.value)}`)).toEqual(
    fromLeader.map((r) => `${r.offset}:${text(r.value)}`),
  );
  await expect(
    cluster.client(f).fetch({ ...T, offset: start - 1, maxRecords: 1, maxBytes: 1 << 20, waitMs: 0, requestId: 'b' }),
  ).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
});
