/**
 * How a replica process is started, besides its configuration (common/replica-config.ts): the
 * settings that must be in place before the process runs its first line, so the replica cannot
 * apply them itself (what it can, it does at start: `heapGrowingPercent`, replica/main.ts).
 * Measured with `npm run bench -- scale --quick` (docs/benchmarks.md, Scale; issue 20):
 *
 * - `--max-semi-space-size=4`: V8's young generation defaults to 16 MB semi-spaces. At 8 MB the
 *   RSS while producing was ~13 MB lower (178 → 165 MB at 200,000 records) for ~5 % more CPU per
 *   record, within the noise; at 4 MB ~6–8 MB lower still, for ~10–15 % more CPU (more
 *   scavenges, more promoted garbage). 4 MB is what keeps a writing replica near 150 MB with the
 *   other defaults (smaller RocksDB budgets and entry cache; docs/benchmarks.md, Scale). Allowed
 *   in NODE_OPTIONS, so a replica started by hand can trade memory for CPU the other way.
 * - `MALLOC_ARENA_MAX=2`: glibc gives each thread that allocates (the storage worker, RocksDB's
 *   flush and compaction threads, libuv's pool) an arena of its own, and each keeps its free
 *   pages; two arenas saved ~13 MB of RSS while producing and ~10 MB after a restart.
 * - `MALLOC_MMAP_THRESHOLD_=131072`, `MALLOC_TRIM_THRESHOLD_=131072`: glibc raises its mmap
 *   threshold as large blocks are freed (up to 32 MB), after which RocksDB's write batches and
 *   iterator buffers come from the arenas and their pages stay after they are freed. Fixed at
 *   128 KiB, blocks that large are mapped and unmapped, and free heap tops are trimmed sooner.
 *   With retention deleting, 1–2 million records (session 6, two runs each): 146–155 MB
 *   against 163–174 MB while writing, produce rate and CPU per record within the noise.
 */
export const REPLICA_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
export const REPLICA_PROCESS_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};

/**
 * Both as environment, for launchers that only set variables: every replica of `desiredReplicas`
 * (local mode, the bench stack, the operator's pods). NODE_OPTIONS keeps the image's
 * `--enable-source-maps` (Dockerfile), which a pod's own NODE_OPTIONS replaces.
 */
export const REPLICA_LAUNCH_ENV: Readonly<Record<string, string>> = {
  ...REPLICA_PROCESS_ENV,
  NODE_OPTIONS: ['--enable-source-maps', ...REPLICA_NODE_FLAGS].join(' '),
};
