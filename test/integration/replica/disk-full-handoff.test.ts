/**
 * A leader whose disk is full hands leadership to a caught-up voter that reports room, so the
 * partition stays writable while that one volume is dealt with; the full replica keeps following,
 * reports not ready, and is ready again once space returns — the same process throughout. Three
 * real replica processes, each on its own size-limited tmpfs: below the reserve (a leadership
 * transfer), and at a real ENOSPC (the held leader goes quiet and the others elect).
 */
import { isDaftkaError } from '../../../common/errors';
import { ReplicaCluster } from '../../helpers/replica-cluster';
import { fillDisk, mountTmpfs, removeFile, unmountTmpfs } from '../../helpers/tmpfs';
import { fetchAll, record, TEST_ENV } from './helpers';
import type { ProduceResult } from '../../../common/partition-api';

jest.setTimeout(90_000);

const MiB = 1024 * 1024;
let mounts: string[] = [];
let cluster: ReplicaCluster | undefined;

beforeAll(async () => {
  mounts = [0, 1, 2].map((o) => mountTmpfs(`handoff-${o}`, 40));
  cluster = await ReplicaCluster.start({
    size: 3,
    topic: 'handoff',
    env: {
      ...TEST_ENV,
      DAFTKA_ROCKSDB_MEMTABLE_BYTES: String(4 * MiB),
      DAFTKA_STORAGE_MIN_FREE_BYTES: String(8 * MiB),
      DAFTKA_DISK_CHECK_INTERVAL_MS: '100',
    },
    envFor: (o) => ({ DAFTKA_DATA_DIR: `${mounts[o]}/data` }),
  });
  await cluster.waitFormed(60_000);
});

afterAll(async () => {
  await cluster?.stop();
  for (const m of mounts) unmountTmpfs(m);
});

test('a leader below its disk reserve hands leadership to a voter with room; writes go on; it recovers in place', async () => {
  const c = cluster!;
  const T = { topic: 'handoff', partition: 0 };
  const { ordinal: full, status: before } = await c.waitForLeader();
  const pids = c.slots.map((s) => s.pid);
  const acked: string[] = [];
  for (let i = 0; i < 10; i++) {
    await c.client(full).produce({ ...T, records: [record(`before-${i}`)], requestId: `b${i}`, timeoutMs: 5000 });
    acked.push(`before-${i}`);
  }

  const filler = fillDisk(mounts[full], 2 * MiB);
  const next = await c.waitForLeader(20_000, [full]);
  expect(next.ordinal).not.toBe(full);
  expect(next.status.term).toBeGreaterThan(before.term);
  expect(c.slots[full].logEvents().some((e) => e.message === 'disk_full_leadership_handoff')).toBe(true);

  // The partition takes writes through the new leader; the full replica refuses as it would anyway.
  for (let i = 0; i < 5; i++) {
    await c
      .client(next.ordinal)
      .produce({ ...T, records: [record(`after-${i}`)], requestId: `a${i}`, timeoutMs: 5000 });
    acked.push(`after-${i}`);
  }
  const refused = await c
    .client(full)
    .produce({ ...T, records: [record('nope')], requestId: 'n', timeoutMs: 2000 })
    .then(
      () => null,
      (err: unknown) => err,
    );
  expect(isDaftkaError(refused) && refused.code).toBe('NOT_LEADER');

  // Not ready for the disk; still a follower that has every acknowledged record.
  const r = await c.readyz(full);
  expect(r.status).toBe(503);
  expect(String(r.body.reason)).toMatch(/^disk full \(below_reserve\)/);
  await c.waitFor(
    async () => ((await c.status(full))?.appliedIndex ?? 0) >= ((await c.status(next.ordinal))?.commitIndex ?? 1),
    10_000,
    'the full replica to apply what the new leader committed',
  );
  const { records } = await fetchAll(c, full);
  expect(records.map((x) => Buffer.from(x.value).toString())).toEqual(acked);

  removeFile(filler);
  await c.waitFor(async () => (await c.readyz(full)).status === 200, 15_000, 'the full replica to be ready again');
  expect(c.slots.map((s) => s.pid)).toEqual(pids);
});

describe('at a real ENOSPC (no reserve)', () => {
  let mnts: string[] = [];
  let c2: ReplicaCluster | undefined;

  beforeAll(async () => {
    mnts = [0, 1, 2].map((o) => mountTmpfs(`handoff-enospc-${o}`, 40));
    c2 = await ReplicaCluster.start({
      size: 3,
      topic: 'handoff2',
      env: {
        ...TEST_ENV,
        DAFTKA_ROCKSDB_MEMTABLE_BYTES: String(4 * MiB),
        DAFTKA_STORAGE_MIN_FREE_BYTES: '0',
        DAFTKA_DISK_CHECK_INTERVAL_MS: '100',
        DAFTKA_DISK_FULL_PROBE_MAX_MS: '300',
      },
      envFor: (o) => ({ DAFTKA_DATA_DIR: `${mnts[o]}/data` }),
    });
    await c2.waitFormed(60_000);
  });

  afterAll(async () => {
    await c2?.stop();
    for (const m of mnts) unmountTmpfs(m);
  });

  test('the held leader goes quiet, a voter with room is elected, nothing acknowledged is lost, and it catches up in place', async () => {
    const c = c2!;
    const T = { topic: 'handoff2', partition: 0 };
    const { ordinal: full, status: before } = await c.waitForLeader();
    const pids = c.slots.map((s) => s.pid);
    const acked: string[] = [];
    const big = (tag: string) => `${tag}-${'y'.repeat(100_000)}`;
    const filler = fillDisk(mounts2(full));
    // Produce to the full leader until a write is held there (its preallocated WAL takes a few).
    for (let i = 0; ; i++) {
      if (i > 200) throw new Error('the disk never filled up');
      const v = big(`fill-${i}`);
      const r = await c
        .client(full)
        .produce({ ...T, records: [record(v)], requestId: `f${i}`, timeoutMs: 1500 })
        .then(
          (x: ProduceResult) => x,
          (err: unknown) => err,
        );
      if (!isDaftkaError(r)) {
        acked.push(v);
        continue;
      }
      // The batch that met ENOSPC (outcome unknown), or one refused behind it: never acknowledged.
      expect(['COMMIT_UNKNOWN', 'STORAGE_FULL', 'NOT_LEADER']).toContain(r.code);
      break;
    }
    const next = await c.waitForLeader(20_000, [full]);
    expect(next.status.term).toBeGreaterThan(before.term);
    expect(c.slots[full].logEvents().some((e) => e.message === 'disk_full_leader_quiet')).toBe(true);
    const rz = await c.readyz(full);
    expect(rz.status).toBe(503);
    expect(String(rz.body.reason)).toMatch(/^disk full \(enospc\)/);

    for (let i = 0; i < 3; i++) {
      const v = `after-${i}`;
      await c.client(next.ordinal).produce({ ...T, records: [record(v)], requestId: `a${i}`, timeoutMs: 5000 });
      acked.push(v);
    }

    removeFile(filler);
    await c.waitFor(async () => (await c.readyz(full)).status === 200, 30_000, 'the full replica to be ready again');
    const hw = (await c.status(next.ordinal))!.highWatermark;
    await c.waitFor(async () => ((await c.status(full))?.highWatermark ?? 0) >= hw, 10_000, 'catch-up');
    const { records } = await fetchAll(c, full);
    const values = records.map((x) => Buffer.from(x.value).toString());
    for (const v of acked) expect(values).toContain(v);
    expect(new Set(values).size).toBe(values.length);
    expect(c.slots.map((s) => s.pid)).toEqual(pids);
  });

  const mounts2 = (o: number) => mnts[o];
});
