import { PassThrough } from 'node:stream';
import { createLogger } from '../../../../common/log';
import { createRegistry } from '../../../../common/metrics';
import {
  SNAPSHOT_TRANSFER_DEFAULTS,
  SnapshotTransfer,
  TRANSFER_TAG,
  type TransferSettings,
} from '../../../../replica/driver/snapshot-transfer';
import { K_STATE_INDEX, encodeStreamedSnapshot, streamedSnapshotOf } from '../../../../replica/driver/snapshots';
import { replicaMetrics } from '../../../../replica/metrics';
import { MessageType, type Message, type SnapshotRequest } from '../../../../replica/raft';
import type { ReplicaStorage } from '../../../../replica/storage/storage';
import { dec, enc, entries, openStorage, quietLogger, removeDir, tempDir } from '../../../helpers/storage';

/**
 * A snapshot's state pulled in chunks between two real storages: the follower stages exactly the
 * leader's view, survives lost frames, gives up on a closed export, and the leader's pin on
 * retention lasts only while someone pulls.
 */

jest.setTimeout(30_000);

interface Side {
  storage: ReplicaStorage;
  transfer: SnapshotTransfer;
  delivered: Message[];
  closedExports: number;
  metrics: ReturnType<typeof replicaMetrics>;
}

const dirs: string[] = [];
const storages: ReplicaStorage[] = [];
afterEach(async () => {
  for (const s of storages.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) removeDir(d);
});

/** Leader 'a' and follower 'b', wired through `link` (which may drop frames). */
async function pair(settings: Partial<TransferSettings>, link: (from: string, to: string, frame: Buffer) => boolean) {
  const sides = new Map<string, Side>();
  for (const id of ['a', 'b']) {
    const dir = tempDir(`transfer-${id}`);
    dirs.push(dir);
    const storage = await openStorage(dir);
    storages.push(storage);
    const metrics = replicaMetrics(createRegistry('test', { defaultMetrics: false }));
    const side: Side = {
      storage,
      transfer: null as unknown as SnapshotTransfer,
      delivered: [],
      closedExports: 0,
      metrics,
    };
    side.transfer = new SnapshotTransfer({
      id,
      storage,
      metrics,
      lbl: { topic: 't', partition: '0' },
      logger: quietLogger(),
      settings: { ...SNAPSHOT_TRANSFER_DEFAULTS, ...settings },
      // Frames arrive asynchronously, as over a socket.
      send: (to, frame) => {
        if (link(id, to, frame)) setImmediate(() => sides.get(to)!.transfer.onFrame(id, frame));
      },
      deliver: (msg) => side.delivered.push(msg),
      exportClosed: () => side.closedExports++,
    });
    sides.set(id, side);
  }
  return { a: sides.get('a')!, b: sides.get('b')! };
}

/** The leader's state: `n` rows of ~40 bytes, applied at index 15 of a log in term 4. */
async function fillState(s: ReplicaStorage, n: number): Promise<string[]> {
  await s.append(entries(1, 20, 4), undefined, { voters: ['a', 'b'], learners: [] });
  const rows = Array.from({ length: n }, (_, i) => [
    `row/${String(i).padStart(5, '0')}`,
    `value-${i}-${'v'.repeat(20)}`,
  ]);
  await s.applyBatch(
    15,
    rows.map(([k, v]) => ({ op: 'put' as const, key: enc(k), value: enc(v) })),
  );
  return rows.map(([k, v]) => `${k}=${v}`);
}

function snapMessage(term: number, data: Uint8Array): SnapshotRequest {
  return {
    type: MessageType.Snap,
    from: 'a',
    to: 'b',
    term,
    snapshot: { meta: { index: 10, term: 4, conf: { voters: ['a', 'b'], learners: [] } }, data },
  };
}

async function until(what: string, cond: () => boolean, tick?: () => void): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    tick?.();
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function stagedRows(s: ReplicaStorage): Promise<string[]> {
  // Install what was staged and read the live state back.
  await s.installStaged({ index: 10, term: 4, conf: { voters: ['a', 'b'], learners: [] } });
  const rows = await s.scan({ gte: new Uint8Array(0), lt: new Uint8Array(0) });
  return rows.map(
    ([k, v]) => `${dec(k)}=${Buffer.compare(Buffer.from(k), Buffer.from(K_STATE_INDEX)) === 0 ? 'X' : dec(v)}`,
  );
}

test('the follower stages exactly the state the leader exported, in chunks, then the held message is stepped', async () => {
  const frames: number[] = [];
  const { a, b } = await pair(
    { chunkBytes: 1024, requestTimeoutMs: 100 },
    (_from, _to, f) => (frames.push(f.byteLength), true),
  );
  const expected = await fillState(a.storage, 500);
  const { exportKey, meta } = await a.transfer.open(10);
  expect(meta.index).toBe(15);
  expect(a.transfer.pinnedIndex()).toBe(10);
  // The state moves on after the export: the transfer still carries the exported view.
  await a.storage.applyBatch(16, [{ op: 'put', key: enc('row/late'), value: enc('x') }]);

  const msg = snapMessage(3, encodeStreamedSnapshot(15, exportKey));
  expect(b.transfer.offer(msg, exportKey, 15)).toBe(false); // held while the state is pulled
  // A retry of the same snapshot while the transfer runs is held too (no second transfer).
  expect(b.transfer.offer(snapMessage(3, msg.snapshot.data), exportKey, 15)).toBe(false);
  await until('the state staged', () => b.delivered.length === 1);
  expect(b.transfer.stagedExport()).toBe(exportKey);
  // Once staged, the message may go to the core at once.
  expect(b.transfer.offer(msg, exportKey, 15)).toBe(true);
  // The core may be about to install it: another snapshot, even of a newer term, does not replace
  // the staged state for two request timeouts.
  expect(b.transfer.offer(snapMessage(9, msg.snapshot.data), 'c/other/1', 15)).toBe(false);
  expect(b.transfer.stagedExport()).toBe(exportKey);
  expect(frames.length).toBeGreaterThanOrEqual(2 * 15); // ~40 B rows, 1 KiB chunks: a request and an answer per chunk
  expect(Math.max(...frames)).toBeLessThan(2048);
  expect(await stagedRows(b.storage)).toEqual([...expected, `${dec(K_STATE_INDEX)}=X`].sort());
  // Installed: a late retry of the same snapshot goes to the core at once (it ignores it), not
  // into a second transfer.
  b.transfer.finished(exportKey);
  expect(b.transfer.offer(msg, exportKey, 15)).toBe(true);
  expect(b.transfer.stagedExport()).toBeNull();
  const received = await b.metrics.snapshotTransferBytes.get();
  expect(received.values.find((v) => v.labels.action === 'received')?.value).toBeGreaterThan(500 * 40);
});

test('lost frames are asked for again after the request timeout, and the transfer completes', async () => {
  let n = 0;
  // Every third frame, either way, is lost.
  const { a, b } = await pair({ chunkBytes: 2048, requestTimeoutMs: 50 }, () => ++n % 3 !== 0);
  const expected = await fillState(a.storage, 300);
  const { exportKey } = await a.transfer.open(10);
  b.transfer.offer(snapMessage(3, encodeStreamedSnapshot(15, exportKey)), exportKey, 15);
  await until(
    'the state staged despite losses',
    () => b.delivered.length === 1,
    () => b.transfer.tick(Date.now()),
  );
  expect((await stagedRows(b.storage)).filter((r) => r.startsWith('row/'))).toEqual(expected);
});

test('an export the leader closed (idle, or restarted) aborts the transfer; the leader builds the next snapshot afresh', async () => {
  let linkUp = false;
  const { a, b } = await pair({ chunkBytes: 1024, idleMs: 1_000, requestTimeoutMs: 50 }, () => linkUp);
  await fillState(a.storage, 200);
  const { exportKey } = await a.transfer.open(10);
  b.transfer.offer(snapMessage(3, encodeStreamedSnapshot(15, exportKey)), exportKey, 15);
  await new Promise((r) => setTimeout(r, 20));
  // Nobody pulled for idleMs: the export closes, the pin goes, the snapshot naming it is forgotten.
  a.transfer.tick(Date.now() + 1_000);
  expect(a.transfer.pinnedIndex()).toBeUndefined();
  expect(a.closedExports).toBe(1);
  // The follower asks again; the leader answers "gone"; the follower gives up (the leader's next
  // Snap names a new export).
  linkUp = true;
  await until(
    'the abort',
    () => b.transfer.stagedExport() === null && b.metrics.snapshotTransfersAborted !== undefined && aborts(b) === 1,
    () => b.transfer.tick(Date.now()),
  );
  expect(b.delivered).toEqual([]);
  expect(b.transfer.offer(snapMessage(3, new Uint8Array()), 'a/other/1', 15)).toBe(false); // a new transfer starts
});

let abortCount = 0;
function aborts(s: Side): number {
  void s.metrics.snapshotTransfersAborted.get().then((m) => {
    abortCount = m.values.find((v) => v.labels.reason === 'export_gone')?.value ?? 0;
  });
  return abortCount;
}

test('a snapshot from a newer term replaces a transfer in progress; an older one waits for it', async () => {
  const { a, b } = await pair({ chunkBytes: 1024 }, () => false); // nothing arrives: transfers stay in progress
  await fillState(a.storage, 10);
  expect(b.transfer.offer(snapMessage(3, new Uint8Array()), 'a/x/1', 15)).toBe(false);
  await new Promise((r) => setTimeout(r, 20));
  expect(b.transfer.offer(snapMessage(3, new Uint8Array()), 'a/x/2', 15)).toBe(false); // same term: ignored
  expect(b.transfer.offer(snapMessage(4, new Uint8Array()), 'c/y/1', 15)).toBe(false); // newer term: replaces
  const aborted = await b.metrics.snapshotTransfersAborted.get();
  expect(aborted.values.find((v) => v.labels.reason === 'replaced')?.value).toBe(1);
});

test('malformed transfer frames are dropped with a log line each, never thrown', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => {
    for (const l of chunk.toString('utf8').split('\n')) if (l.startsWith('{')) lines.push(JSON.parse(l));
  });
  const dir = tempDir('transfer-bad');
  dirs.push(dir);
  const storage = await openStorage(dir);
  storages.push(storage);
  const t = new SnapshotTransfer({
    id: 'b',
    storage,
    metrics: replicaMetrics(createRegistry('test', { defaultMetrics: false })),
    lbl: { topic: 't', partition: '0' },
    logger: createLogger('transfer-test', { stream: sink }),
    settings: SNAPSHOT_TRANSFER_DEFAULTS,
    send: () => {
      throw new Error('nothing is answered to a malformed frame');
    },
    deliver: () => {},
    exportClosed: () => {},
  });
  const bad = [
    Buffer.from([TRANSFER_TAG]), // no kind
    Buffer.from([TRANSFER_TAG, 7, 0, 1, 0x61, 0, 0, 0, 1]), // unknown kind
    Buffer.from([TRANSFER_TAG, 2, 0, 1, 0x61, 0, 0, 0, 1, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0]), // 5 pairs, no last key
    Buffer.from([TRANSFER_TAG, 1, 0, 1, 0x61, 0, 0, 0, 1, 0, 0, 0, 0, 4, 0xff]), // a request with a trailing byte
  ];
  for (const f of bad) expect(() => t.onFrame('a', f)).not.toThrow();
  await new Promise((r) => setImmediate(r));
  expect(lines.filter((l) => l.message === 'snapshot_transfer_frame_malformed')).toHaveLength(bad.length);
});

test('the streamed snapshot descriptor round-trips; inline snapshot data is not taken for one', () => {
  expect(streamedSnapshotOf(encodeStreamedSnapshot(42, 'r0/abc/7'))).toEqual({ stateIndex: 42, exportKey: 'r0/abc/7' });
  expect(streamedSnapshotOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBeNull();
  expect(() => streamedSnapshotOf(Buffer.from([2, 0]))).toThrow();
});
