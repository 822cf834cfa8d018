/**
 * Disk-full drill (scripts/drill-disk-full): local mode with each replica's data directory on its
 * own size-limited tmpfs, under produce load through the gateway. Fill the leader's volume below
 * its reserve (it should hand leadership to a replica with room), then every volume (produce
 * should answer 503 STORAGE_FULL while reads go on and everything reports not ready), then give
 * the space back (writes should resume in the same processes). Checks that no acknowledged record
 * was lost or written twice, and writes a markdown report (docs/operations/drills/<date>-disk-full.md).
 * Needs root (mount -t tmpfs).
 *
 *   scripts/drill-disk-full [--out FILE] [--volume-mib 96] [--phase-s 8]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LocalPlan } from './local-mode';
import { LocalStack, metricValue } from '../test/helpers/local-stack';
import { fillDisk, freeBytes, removeFile } from '../test/helpers/tmpfs';

const TOPIC = 'drill';
const MiB = 1024 * 1024;
/** The replica's default reserve (DAFTKA_STORAGE_MIN_FREE_BYTES): the drill runs with defaults. */
const RESERVE = 64 * MiB;
/** What a filled volume keeps free: below the reserve, far from ENOSPC. */
const LEAVE = 32 * MiB;

interface Args {
  out: string;
  volumeMiB: number;
  phaseS: number;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string, dflt: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
  };
  const date = new Date().toISOString().slice(0, 10);
  return {
    out: path.resolve(get('--out', path.join('docs', 'operations', 'drills', `${date}-disk-full.md`))),
    volumeMiB: Number(get('--volume-mib', '96')),
    phaseS: Number(get('--phase-s', '8')),
  };
}

interface ProduceResult {
  sentMs: number;
  doneMs: number;
  value: string;
  status: number;
  code?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function mount(dir: string, sizeMiB: number): void {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(
      `cannot mount a tmpfs on ${dir} (the drill needs root): ${e.stderr?.toString().trim() || e.message}`,
    );
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  } catch {
    /* not mounted */
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (msg: string) => process.stdout.write(`[drill ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  const volumes = new Map<string, string>(); // replica name → mount point
  log(`starting local mode: topic ${TOPIC}, 1 partition × RF 3, each replica on a ${args.volumeMiB} MiB tmpfs`);
  const stack = await LocalStack.start({
    topics: [{ name: TOPIC, partitions: 1, replicationFactor: 3 }],
    keepData: true,
    beforeStart: (plan: LocalPlan) => {
      for (const r of plan.replicas) {
        const dir = r.env.DAFTKA_DATA_DIR;
        mount(dir, args.volumeMiB);
        volumes.set(r.name, dir);
      }
    },
  });
  const t0 = Date.now();
  const now = () => Date.now() - t0;
  const sec = (ms: number) => (ms / 1000).toFixed(3);
  const results: ProduceResult[] = [];
  const events: Array<{ tMs: number; what: string }> = [];
  const event = (what: string) => {
    events.push({ tMs: now(), what });
    log(`t=${sec(now())} s: ${what}`);
  };
  const fillers: string[] = [];
  let stopping = false;
  let seq = 0;

  const producer = async () => {
    while (!stopping) {
      const sentMs = now();
      const value = `v-${seq++}`;
      let status = 0;
      let code: string | undefined;
      try {
        const res = await stack.http<{ code?: string }>('POST', `/v1/topics/${TOPIC}/records`, {
          body: { records: [{ partition: 0, value }] },
          headers: { 'idempotency-key': value },
          timeoutMs: 10_000,
        });
        status = res.status;
        code = res.status >= 400 ? res.body?.code : undefined;
      } catch (err) {
        code = (err as Error).name;
      }
      results.push({ sentMs, doneMs: now(), value, status, code });
      if (status !== 200) await sleep(100);
    }
  };
  const readyz = async (name: string) => {
    const r = stack.replicas(TOPIC, 0).find((x) => x.name === name)!;
    try {
      const a = await fetch(`http://127.0.0.1:${r.httpPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      return { status: a.status, reason: ((await a.json()) as { reason: string }).reason };
    } catch (err) {
      return { status: 0, reason: (err as Error).message };
    }
  };
  const metrics = async (name: string) => {
    const r = stack.replicas(TOPIC, 0).find((x) => x.name === name)!;
    const text = await (await fetch(`http://127.0.0.1:${r.httpPort}/metrics`)).text();
    const tp = { topic: TOPIC, partition: '0' };
    return {
      diskFull: metricValue(text, 'daftka_storage_disk_full', tp),
      freeMiB: (metricValue(text, 'daftka_storage_free_bytes', tp) ?? NaN) / MiB,
      leader: metricValue(text, 'daftka_raft_leader', tp),
    };
  };
  const freeDisk = async () => {
    const r = await stack.http<{ checks: Array<{ id: string; status: string; reason: string }> }>(
      'GET',
      '/v1/readiness',
    );
    return r.body.checks?.find((c) => c.id === 'free_disk') ?? null;
  };
  const waitUntil = async (what: string, f: () => Promise<boolean>, timeoutMs: number): Promise<number | null> => {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (await f()) return now();
      await sleep(50);
    }
    log(`gave up waiting for ${what} after ${timeoutMs} ms`);
    return null;
  };

  const names = stack.replicas(TOPIC, 0).map((r) => r.name);
  const pidsBefore = new Map(names.map((n) => [n, stack.pid(n)]));
  const load = producer();
  const snapshots: string[] = [];
  const snapshot = async (label: string) => {
    const rows = await Promise.all(
      names.map(async (n) => {
        const rz = await readyz(n);
        const m = await metrics(n);
        return `| ${label} | ${n} | ${m.leader === 1 ? 'yes' : 'no'} | ${freeBytes(volumes.get(n)!) / MiB >= 0 ? (freeBytes(volumes.get(n)!) / MiB).toFixed(1) : '—'} | ${m.diskFull} | ${rz.status} ${rz.reason.replace(/\|/g, '\\|').slice(0, 110)} |`;
      }),
    );
    snapshots.push(...rows);
  };
  let fd: Awaited<ReturnType<typeof freeDisk>> = null;
  try {
    await sleep(args.phaseS * 1000);
    await snapshot('steady');
    const first = await stack.waitForLeader(TOPIC, 0);

    // ---- phase 1: the leader's volume only ----
    event(
      `fill ${first.name}'s volume (leader, term ${first.term}) to ${LEAVE / MiB} MiB free (reserve ${RESERVE / MiB} MiB)`,
    );
    const fill1Ms = now();
    fillers.push(fillDisk(volumes.get(first.name)!, LEAVE, 'drill-filler'));
    const handoffMs = await waitUntil(
      'leadership to move',
      async () => {
        const l = await stack.leader(TOPIC, 0);
        return l !== null && l.name !== first.name;
      },
      60_000,
    );
    const second = await stack.waitForLeader(TOPIC, 0);
    event(
      handoffMs === null
        ? 'leadership did not move'
        : `leadership moved to ${second.name} (term ${second.term}) ${sec(handoffMs - fill1Ms)} s after the fill`,
    );
    await sleep(args.phaseS * 1000);
    await snapshot('leader full');

    // ---- phase 2: every volume ----
    event('fill the other volumes below the reserve too');
    const fill2Ms = now();
    for (const n of names) if (n !== first.name) fillers.push(fillDisk(volumes.get(n)!, LEAVE, 'drill-filler'));
    const refusedMs = await waitUntil(
      'a STORAGE_FULL answer',
      async () => results.some((r) => r.sentMs >= fill2Ms && r.code === 'STORAGE_FULL'),
      30_000,
    );
    if (refusedMs !== null)
      event(`first produce answered 503 STORAGE_FULL ${sec(refusedMs - fill2Ms)} s after the fill`);
    await waitUntil('free_disk not_ready', async () => (await freeDisk())?.status === 'not_ready', 15_000);
    fd = await freeDisk();
    event(`gateway readiness free_disk: ${fd?.status} (${fd?.reason})`);
    const during = await readAll(stack);
    event(`fetch while full: ${during.length} records served`);
    await sleep(args.phaseS * 1000);
    await snapshot('all full');

    // ---- phase 3: space back ----
    event('remove every filler');
    const freedMs = now();
    for (const f of fillers.splice(0)) removeFile(f);
    const backMs = await waitUntil(
      'a produce to succeed',
      async () => results.some((r) => r.sentMs >= freedMs && r.status === 200),
      60_000,
    );
    if (backMs !== null) event(`produce answered 200 again ${sec(backMs - freedMs)} s after the space came back`);
    await waitUntil(
      'every replica ready',
      async () => (await Promise.all(names.map(readyz))).every((r) => r.status === 200),
      30_000,
    );
    event('every replica ready');
    await sleep(args.phaseS * 1000);
    await snapshot('space back');
    stopping = true;
    await load;

    // ---- checks ----
    const final = await readAll(stack);
    const counts = new Map<string, number>();
    for (const v of final) counts.set(v, (counts.get(v) ?? 0) + 1);
    const acked = results.filter((r) => r.status === 200);
    const lost = acked.filter((r) => !counts.has(r.value));
    const twice = [...counts].filter(([, n]) => n > 1);
    const restarts = names.map((n) => `${n}: ${stack.restarts(n)}`).join(', ');
    const samePids = names.every((n) => stack.pid(n) === pidsBefore.get(n));
    const byPhase = (from: number, to: number) => {
      const rs = results.filter((r) => r.sentMs >= from && r.sentMs < to);
      const codes = new Map<string, number>();
      for (const r of rs) {
        const k = r.status === 200 ? '200' : `${r.status} ${r.code ?? ''}`.trim();
        codes.set(k, (codes.get(k) ?? 0) + 1);
      }
      return `${rs.length} (${[...codes].map(([c, n]) => `${n} × ${c}`).join(', ')})`;
    };
    log(
      `acknowledged ${acked.length}; lost ${lost.length}; written twice ${twice.length}; pids unchanged: ${samePids}`,
    );

    const date = new Date(t0).toISOString().slice(0, 10);
    const report = `# Drill: disk full (${date})

Run by \`scripts/drill-disk-full\` (\`scripts/drill-disk-full.ts\`) on the development machine
(${os.cpus().length} cores, shared and loaded; local mode, fsync \`always\`, the replica's defaults:
reserve \`storageMinFreeBytes\` ${RESERVE / MiB} MiB, free-space check every second). Times are from the
drill's start (t = 0 when local mode reported the partition led).

## What was done

- Local mode: nats-server, topic \`${TOPIC}\` with 1 partition × RF 3, the gateway. Each replica's data
  directory is its own ${args.volumeMiB} MiB tmpfs (a size-limited volume, as a PVC is).
- Load through the gateway: one closed-loop producer (one record per request, an
  \`Idempotency-Key\` each), throughout.
- Phase 1: the leader's volume filled to ${LEAVE / MiB} MiB free, below the reserve. Phase 2: the other two
  as well. Phase 3: every filler removed. ${args.phaseS} s of load between phases.

## Results

| measurement | value |
| --- | --- |
| leader's volume full → leadership moved to a replica with room | ${handoffMs === null ? 'did not move' : `**${sec(handoffMs - fill1Ms)} s** (${first.name} → ${second.name})`} |
| every volume full → first produce answered 503 \`STORAGE_FULL\` | ${refusedMs === null ? '—' : `**${sec(refusedMs - fill2Ms)} s**`} |
| space back → first produce answered 200 | ${backMs === null ? 'never' : `**${sec(backMs - freedMs)} s**`} |
| produces before the first fill | ${byPhase(0, fill1Ms)} |
| produces while only the leader's volume was full | ${byPhase(fill1Ms, fill2Ms)} |
| produces while every volume was full | ${byPhase(fill2Ms, freedMs)} |
| produces after the space came back | ${byPhase(freedMs, Infinity)} |
| records served by a fetch while every volume was full | ${during.length} |
| gateway readiness \`free_disk\` while full | ${fd ? `${fd.status}: ${fd.reason.replace(/\|/g, '\\|')}` : '—'} |
| acknowledged records (200) | ${acked.length} |
| acknowledged records missing at the end | ${lost.length} |
| values written more than once | ${twice.length} |
| replica restarts | ${restarts} (same pids: ${samePids ? 'yes' : 'no'}) |

## Timeline

| t (s) | event |
| --- | --- |
${events.map((e) => `| ${sec(e.tMs)} | ${e.what.replace(/\|/g, '\\|')} |`).join('\n')}

## The replicas at each phase

| phase | replica | leader | free (MiB) | \`daftka_storage_disk_full\` | \`/readyz\` |
| --- | --- | --- | --- | --- | --- |
${snapshots.join('\n')}

## Reading

- A full volume is degradable: no replica exited, nothing acknowledged was lost or written twice.
- One full volume does not stop the partition: its leader hands leadership to a caught-up voter that
  reports room (at most every 30 s), and the full replica goes on following (it refuses nothing it
  must accept) while it reports not ready.
- Volumes that fill one after another move leadership along to the last replica that still has
  room; once none has, the leader stays (a handoff needs a voter that reports room) and refuses.
- Every volume full: the partition is read-only — produce answers \`503 STORAGE_FULL\` with
  \`Retry-After\`, fetches are served, the gateway's readiness report is \`not_ready\` — and the
  page is \`DaftkaStorageFull\` ([runbook](../../runbooks/DaftkaStorageFull.md)).
- Space back (here: fillers deleted; in a cluster: a bigger PVC, or retention): the next free-space
  check (1 s) clears the state, writes resume in the same processes.
- This drill never reaches a real ENOSPC (the reserve is there so it does not); that path — a write
  held and probed until RocksDB resumes, about 5 s after space returns — is exercised by
  \`test/integration/replica/disk-full.test.ts\` and \`storage/disk-full.test.ts\`.
`;
    fs.mkdirSync(path.dirname(args.out), { recursive: true });
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(args.out)) ?? {};
    fs.writeFileSync(args.out, await prettier.format(report, { ...config, filepath: args.out }));
    log(`report written to ${path.relative(process.cwd(), args.out)}`);
    if (lost.length > 0 || twice.length > 0 || !samePids) process.exitCode = 1;
  } finally {
    stopping = true;
    await Promise.allSettled([load]);
    for (const f of fillers) fs.rmSync(f, { force: true });
    await stack.stop(true);
    for (const dir of volumes.values()) unmount(dir);
    fs.rmSync(stack.dataDir, { recursive: true, force: true });
  }
}

/** Every value of partition 0, paged from offset 0. */
async function readAll(stack: LocalStack): Promise<string[]> {
  const out: string[] = [];
  let offset = 0;
  for (;;) {
    const r = await stack.http<{ records: Array<{ value: string }>; next_offset: number; high_watermark: number }>(
      'GET',
      `/v1/topics/${TOPIC}/partitions/0/records?offset=${offset}&max_records=1000&encoding=utf8`,
    );
    if (r.status !== 200) throw new Error(`fetch answered ${r.status}`);
    for (const x of r.body.records) out.push(x.value);
    offset = r.body.next_offset;
    if (r.body.records.length === 0 || offset >= r.body.high_watermark) return out;
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
