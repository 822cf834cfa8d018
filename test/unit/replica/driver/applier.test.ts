import { createRegistry } from '../../../../common/metrics';
import { Applier } from '../../../../replica/driver/applier';
import { Proposals } from '../../../../replica/driver/proposals';
import { SNAPSHOT_TRANSFER_DEFAULTS, SnapshotTransfer } from '../../../../replica/driver/snapshot-transfer';
import { replicaMetrics } from '../../../../replica/metrics';
import { PartitionState } from '../../../../replica/state/partition-state';
import { entries, openStorage, quietLogger, removeDir, tempDir } from '../../../helpers/storage';

/** The applier's recovery reads a fixed set of ranges; a directory it cannot serve is refused. */

function applierOn(storage: Awaited<ReturnType<typeof openStorage>>): Applier {
  const metrics = replicaMetrics(createRegistry('test', { defaultMetrics: false }));
  const lbl = { topic: 't', partition: '0' };
  const transfer = new SnapshotTransfer({
    id: '0.test',
    storage,
    metrics,
    lbl,
    logger: quietLogger(),
    settings: SNAPSHOT_TRANSFER_DEFAULTS,
    send: () => {},
    deliver: () => {},
    exportClosed: () => {},
  });
  return new Applier({
    id: '0.test',
    storage,
    state: new PartitionState({ dedupWindowMs: 60_000 }),
    proposals: new Proposals(),
    metrics,
    lbl,
    logger: quietLogger(),
    transfer,
    leaderHint: () => null,
    membershipChanged: () => {},
    applied: () => {},
    fatal: (err) => {
      throw err;
    },
  });
}

describe('Applier.recover', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('applier');
  });
  afterEach(() => removeDir(dir));

  test('a new directory recovers to an empty partition', async () => {
    const storage = await openStorage(dir);
    try {
      const a = applierOn(storage);
      await a.recover();
      expect(a.conf).toEqual({ voters: [], learners: [] });
    } finally {
      await storage.close();
    }
  });

  test('a directory of the old state format (offset index keyed by base offset) is refused, naming the way out', async () => {
    const storage = await openStorage(dir);
    try {
      // One row of the old index: prefix 'o' + a u64 base offset.
      const key = Buffer.alloc(9);
      key[0] = 0x6f;
      await storage.append(entries(1, 1, 1), { term: 1, vote: null, commit: 1 });
      await storage.applyBatch(1, [{ op: 'put', key, value: Buffer.alloc(24) }]);
      await expect(applierOn(storage).recover()).rejects.toThrow(/old partition-state format.*wipe the volume/);
    } finally {
      await storage.close();
    }
  });
});
