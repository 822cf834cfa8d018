import { isDaftkaError } from '../../../common/errors';
import type { RecordIn, RecordOut } from '../../../common/partition-api';
import { ReplicaCluster } from '../../helpers/replica-cluster';
import { fetchAll, TEST_ENV, text, waitCaughtUp } from './helpers';

/**
 * Key compaction on three real replica processes (docs/compaction.md): many versions of many
 * keys and some tombstones; every replica's fetch converges to the same compacted view — the
 * latest record of each key at the offset it was written at, tombstoned keys gone after the
 * delete retention — with more keys than one pass's dedupe buffer holds (several passes);
 * produce goes on while passes run; after a replica is killed and restarted and leadership
 * moves, more versions compact to the same view on every replica again.
 */

jest.setTimeout(120_000);
const T = { topic: 'users', partition: 0 };
/** 4 KiB of dedupe buffer = 127 keys a pass: every batch of 250 keys takes two passes or more. */
const KEYS = 2500;
let cluster: ReplicaCluster;

beforeAll(async () => {
  cluster = await ReplicaCluster.start({
    size: 3,
    topic: T.topic,
    env: {
      ...TEST_ENV,
      DAFTKA_CLEANUP_POLICY: 'compact',
      DAFTKA_COMPACTION_CHECK_MS: '200',
      DAFTKA_COMPACTION_MIN_DIRTY_PERCENT: '0',
      DAFTKA_DELETE_RETENTION_MS: '1000',
      DAFTKA_COMPACTION_DEDUPE_BUFFER_BYTES: String(4 * 1024),
    },
  });
  await cluster.waitFormed(60_000);
});
afterAll(async () => {
  await cluster?.stop();
});

/** What was written: offset → [key, value | null]. */
const written = new Map<number, [string, string | null]>();

function rec(key: string, value: string | null): RecordIn {
  return {
    key: Buffer.from(key),
    value: Buffer.from(value ?? ''),
    headers: [],
    timestampMs: Date.now(),
    ...(value === null ? { tombstone: true } : {}),
  };
}

/** One batch to whoever leads (retried with its idempotency key); records what got which offset. */
async function produce(records: RecordIn[], id: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const { ordinal } = await cluster.waitForLeader();
    try {
      const r = await cluster
        .client(ordinal)
        .produce({ ...T, records, idempotencyKey: id, requestId: id, timeoutMs: 5000 });
      records.forEach((x, i) => written.set(r.baseOffset + i, [text(x.key)!, x.tombstone ? null : text(x.value)]));
      return;
    } catch (e) {
      if (attempt > 30) throw e;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

/** The compacted view of everything written: the latest record of each key, tombstoned keys gone. */
function expected(): Array<[number, string, string]> {
  const latest = new Map<string, number>();
  for (const [o, [k]] of [...written].sort((a, b) => a[0] - b[0])) latest.set(k, o);
  return [...latest.values()]
    .sort((a, b) => a - b)
    .filter((o) => written.get(o)![1] !== null)
    .map((o) => [o, written.get(o)![0], written.get(o)![1]!]);
}

const view = (records: RecordOut[]): Array<[number, string, string | null]> =>
  records.map((r) => [r.offset, text(r.key)!, r.tombstone ? null : text(r.value)]);

async function waitCompacted(what: string): Promise<void> {
  const want = expected();
  const hw = Math.max(...written.keys()) + 1;
  for (let o = 0; o < 3; o++) {
    await waitCaughtUp(cluster, o, hw);
    let got: Array<[number, string, string | null]> = [];
    try {
      await cluster.waitFor(
        async () => {
          got = view((await fetchAll(cluster, o)).records);
          return got.length === want.length;
        },
        40_000,
        `replica ${o} to compact (${what})`,
      );
    } finally {
      if (got.length !== want.length) console.log(`replica ${o}: ${got.length} records, want ${want.length}`);
    }
    expect(got).toEqual(want);
  }
}

test('every replica compacts to the latest record per key, at its original offset, in several passes; produce goes on meanwhile', async () => {
  // Four versions of each key, 250 records a batch; the last version of keys 0–99 is a tombstone.
  for (let v = 0; v < 4; v++)
    for (let b = 0; b < KEYS / 250; b++)
      await produce(
        Array.from({ length: 250 }, (_, i) => {
          const k = b * 250 + i;
          return rec(`k${k}`, v === 3 && k < 100 ? null : `v${v}-${k}`);
        }),
        `v${v}-b${b}`,
      );
  // Produce while the passes run: every batch is acknowledged (compaction never holds it).
  for (let b = 0; b < 20; b++) await produce([rec(`late${b}`, `x${b}`), rec('k5', `v4-${b}`)], `late-${b}`);

  await waitCompacted('first round');
  // More keys than one pass's map: some pass stopped short and the next went on.
  let partial = 0;
  let reclaimed = 0;
  for (let o = 0; o < 3; o++) {
    partial += await cluster.metric(o, 'daftka_compaction_passes_total', { result: 'partial' });
    reclaimed += await cluster.metric(o, 'daftka_compaction_reclaimed_bytes_total');
  }
  expect(partial).toBeGreaterThan(0);
  expect(reclaimed).toBeGreaterThan(0);

  // Offsets never moved: a fetch from a removed offset answers from the next survivor, and its
  // next offset steps over the gap.
  const { ordinal: leader } = await cluster.waitForLeader();
  const r = await cluster.client(leader).fetch({
    ...T,
    offset: 0,
    maxRecords: 1,
    maxBytes: 1 << 20,
    waitMs: 0,
    requestId: 'gap',
  });
  const first = expected()[0];
  expect(r.records.map((x) => x.offset)).toEqual([first[0]]);
  expect(r.nextOffset).toBe(first[0] + 1);
  expect(r.logStartOffset).toBe(0);
});

test('a keyless record is refused on a compacted topic', async () => {
  const { ordinal } = await cluster.waitForLeader();
  const err = await cluster
    .client(ordinal)
    .produce({
      ...T,
      records: [{ key: null, value: Buffer.from('v'), headers: [], timestampMs: Date.now() }],
      requestId: 'keyless',
      timeoutMs: 5000,
    })
    .catch((e: unknown) => e);
  expect(isDaftkaError(err) && err.code).toBe('INVALID_REQUEST');
  expect((err as Error).message).toMatch(/no key/);
});

test('after a replica restart and a leadership change, new versions compact to the same view on every replica', async () => {
  const { ordinal: oldLeader } = await cluster.waitForLeader();
  const follower = (oldLeader + 1) % 3;
  await cluster.kill(follower, 'SIGKILL');
  for (let b = 0; b < 4; b++)
    await produce(
      Array.from({ length: 100 }, (_, i) => rec(`k${b * 100 + i}`, `v5-${b * 100 + i}`)),
      `v5-b${b}`,
    );
  await cluster.restart(follower);
  // The leader hands over (SIGTERM: transfer first), then comes back.
  await cluster.sigterm(oldLeader);
  for (let b = 0; b < 4; b++)
    await produce(
      Array.from({ length: 100 }, (_, i) => rec(`k${400 + b * 100 + i}`, i % 10 === 0 ? null : `v6-${b}-${i}`)),
      `v6-b${b}`,
    );
  await cluster.restart(oldLeader);
  const { ordinal: newLeader } = await cluster.waitForLeader();
  expect(newLeader).not.toBe(oldLeader);
  await waitCompacted('after restart and leader change');
});
