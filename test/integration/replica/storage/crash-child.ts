/**
 * Child process for the crash test: appends 1 KB entries with fsync 'always' (8 in flight),
 * applies each acknowledged prefix, and prints `ack <index>` only after the append resolved.
 * The parent SIGKILLs it at an arbitrary moment. Usage: node -r tsx/cjs crash-child.ts <dir>
 */
import { PassThrough } from 'node:stream';
import { createLogger } from '../../../../common/log';
import { ReplicaStorage } from '../../../../replica/storage/storage';
import { payload } from '../../../helpers/storage';

async function main(): Promise<void> {
  const dir = process.argv[2];
  const sink = new PassThrough();
  sink.resume();
  const s = await ReplicaStorage.open({
    dir,
    fsync: 'always',
    fsyncIntervalMs: 50,
    logger: createLogger('child', { stream: sink }),
  });
  let next = s.recovered.lastIndex + 1;
  let applied = s.recovered.appliedIndex;
  const acked = new Set<number>();
  process.stdout.write(`ready ${s.recovered.lastIndex}\n`);
  const lane = async (): Promise<void> => {
    for (;;) {
      const index = next++;
      await s.append([{ index, term: 1, type: 0, data: payload(index, 1, 1024) }], {
        term: 1,
        vote: 'self',
        commit: index - 1,
      });
      process.stdout.write(`ack ${index}\n`);
      acked.add(index);
      // Apply the acknowledged prefix: the state copy of the applied index must travel with it.
      while (acked.has(applied + 1)) {
        applied++;
        acked.delete(applied);
        void s.applyBatch(applied, [
          { op: 'put', key: Buffer.from('applied-copy'), value: Buffer.from(String(applied)) },
        ]);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
}

main().catch((err: unknown) => {
  process.stderr.write(`child failed: ${String(err)}\n`);
  process.exit(1);
});
