/**
 * `npm run bench`: runs every `bench/*.bench.ts` (side-by-side and whole-system benches) and
 * `replica/bench/*.bench.ts` (micro-benchmarks of the replica's internals: the Raft core, the
 * storage engine — they live in the program they measure, since nothing outside replica/ may
 * import it) in its own process, one after the other (so they do not compete for the 2 cores),
 * and prints their figures. `npm run bench -- storage rpc` runs
 * only the named ones; extra flags after `--` are passed to each bench (e.g. `--quick`).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dirs = [__dirname, join(__dirname, '..', 'replica', 'bench')];
const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('--'));
const flags = args.filter((a) => a.startsWith('--'));
const where = new Map<string, string>();
for (const d of dirs)
  for (const f of readdirSync(d)) if (f.endsWith('.bench.ts')) where.set(f.replace(/\.bench\.ts$/, ''), join(d, f));
const all = [...where.keys()].sort();
const unknown = names.filter((n) => !all.includes(n));
if (unknown.length > 0) {
  console.error(`unknown bench ${unknown.join(', ')}; available: ${all.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of names.length > 0 ? names : all) {
  console.log(`\n=== bench ${name} ===`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', where.get(name)!, ...flags], {
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    console.error(`bench ${name} failed with ${r.status ?? r.signal}`);
    failed++;
  }
}
process.exit(failed > 0 ? 1 : 0);
