/**
 * Storage micro-benchmark: ReplicaStorage.append of 1 KB entries.
 *   matrix: batch (entries per append) 1 | 100 × concurrency (appends in flight) 1 | 16 | 64
 *           × fsync 'always' | 'interval'
 *   reports: entries/s, MB/s, p50/p99 append latency, synced writes/s, fsync p50, event-loop
 *   delay p99/max, and process CPU (all threads, user + system) per entry — the steadier figure
 *   on a shared machine.
 *
 * Run: npx tsx bench/storage.bench.ts [--quick]   (--quick: 0.5 s per cell, a smoke run)
 * Env: BENCH_SECONDS (per cell, default 3), BENCH_DIR (default the OS temp dir — put it on the
 *      disk you want to measure), BENCH_FILTER (substring of the cell name, e.g. "always").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../common/log';
import { ReplicaStorage, type StoredEntry } from '../storage/storage';

const QUICK = process.argv.includes('--quick');
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 0.5 : 3));
const BASE = process.env.BENCH_DIR ?? tmpdir();
const FILTER = process.env.BENCH_FILTER ?? '';
const ENTRY_BYTES = 1024;

interface Cell {
  fsync: 'always' | 'interval';
  batch: number;
  concurrency: number;
}

interface Result extends Cell {
  entriesPerSec: number;
  mbPerSec: number;
  p50Ms: number;
  p99Ms: number;
  fsyncsPerSec: number;
  lagP99Ms: number;
  lagMaxMs: number;
  fsyncP50Ms: number;
  cpuUsPerEntry: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function runCell(cell: Cell): Promise<Result> {
  const dir = mkdtempSync(path.join(BASE, 'daftka-bench-storage-'));
  const sink = new PassThrough();
  sink.resume();
  let synced = 0;
  const fsyncMs: number[] = [];
  const s = await ReplicaStorage.open({
    dir,
    fsync: cell.fsync,
    fsyncIntervalMs: 50,
    logger: createLogger('bench', { stream: sink }),
    onFlush: (f) => {
      if (!f.synced) return;
      synced++;
      fsyncMs.push(f.fsyncSeconds * 1000);
    },
  });
  const data = Buffer.alloc(ENTRY_BYTES, 0x5a);
  let next = 1;
  const latencies: number[] = [];
  const lag = monitorEventLoopDelay({ resolution: 1 });
  // Warm-up: open the WAL, fault in the worker's code paths.
  for (let i = 0; i < 20; i++)
    await s.append([{ index: next, term: 1, type: 0, data }].map((e) => ({ ...e, index: next++ })));
  synced = 0;
  fsyncMs.length = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + SECONDS * 1000;
  lag.enable();
  const writer = async (): Promise<void> => {
    while (performance.now() < until) {
      const batch: StoredEntry[] = [];
      for (let i = 0; i < cell.batch; i++) batch.push({ index: next++, term: 1, type: 0, data });
      const start = performance.now();
      await s.append(batch);
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: cell.concurrency }, writer));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lag.disable();
  await s.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  fsyncMs.sort((a, b) => a - b);
  const entries = latencies.length * cell.batch;
  return {
    ...cell,
    entriesPerSec: entries / elapsed,
    mbPerSec: (entries * ENTRY_BYTES) / elapsed / 1e6,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    fsyncsPerSec: synced / elapsed,
    lagP99Ms: lag.percentile(99) / 1e6,
    lagMaxMs: lag.max / 1e6,
    fsyncP50Ms: quantile(fsyncMs, 0.5),
    cpuUsPerEntry: (cpu.user + cpu.system) / entries,
  };
}

function fmt(n: number, digits = 1): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
}

async function main(): Promise<void> {
  const cells: Cell[] = [];
  for (const fsync of ['always', 'interval'] as const)
    for (const batch of [1, 100]) for (const concurrency of [1, 16, 64]) cells.push({ fsync, batch, concurrency });
  const rows: Result[] = [];
  // The loop's delay with nothing to do: the noise floor the lag column should be read against.
  const idle = monitorEventLoopDelay({ resolution: 1 });
  idle.enable();
  await new Promise((r) => setTimeout(r, 1000));
  idle.disable();
  console.log(`storage bench: 1 KB entries, ${SECONDS}s per cell, dir ${BASE}`);
  console.log(
    `idle event-loop delay (noise floor): p99 ${fmt(idle.percentile(99) / 1e6)} ms, max ${fmt(idle.max / 1e6)} ms`,
  );
  console.log('');
  console.log(
    '| fsync | batch | concurrency | entries/s | MB/s | append p50 ms | append p99 ms | fsyncs/s | fsync p50 ms | loop lag p99 / max ms | CPU µs/entry |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of cells) {
    const name = `${c.fsync}/b${c.batch}/c${c.concurrency}`;
    if (FILTER && !name.includes(FILTER)) continue;
    const r = await runCell(c);
    rows.push(r);
    console.log(
      `| ${r.fsync} | ${r.batch} | ${r.concurrency} | ${fmt(r.entriesPerSec)} | ${fmt(r.mbPerSec)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.fsyncsPerSec)} | ${fmt(r.fsyncP50Ms, 2)} | ${fmt(r.lagP99Ms)} / ${fmt(r.lagMaxMs)} | ${fmt(r.cpuUsPerEntry)} |`,
    );
  }
  if (process.env.BENCH_JSON) console.log(JSON.stringify(rows));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
