import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { firstBusyPort, planLocal } from '../../../scripts/local-mode';
import { loadConfig } from '../../../common/config';
import { localSchema } from '../../../scripts/local-config';

/**
 * `npm run local` itself (scripts/local.ts as a child process, exactly what the npm script runs
 * after scripts/ensure-deps.sh — which is left out here so a test never runs `npm ci` under
 * other tests): a fresh data dir starts, prints READY, serves, and stops on SIGINT with exit 0
 * and no process left; a second start on the same data dir resumes with the data; with
 * DAFTKA_LOCAL_EXIT_AFTER_READY=1 it starts, reports ready and stops by itself.
 *
 * "No process left" is checked independently of the program: every process it starts (nats-server,
 * replicas, gateway, and their helpers) inherits DAFTKA_LOCAL_DATA_DIR, so /proc/<pid>/environ
 * names the test's data dir.
 */

jest.setTimeout(90_000);

const REPO = resolve(__dirname, '..', '..', '..');
const dataDir = mkdtempSync(join(tmpdir(), 'daftka-local-'));
const TOPIC = 'lm';
let ports: { base: number; nats: number; gateway: number };

/** Pids of live processes whose environment names our data dir (zombies excluded). */
function processesOfRun(): number[] {
  const needle = Buffer.from(`DAFTKA_LOCAL_DATA_DIR=${dataDir}\0`);
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${d}/environ`).includes(needle)) continue;
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1];
      if (state !== 'Z') out.push(Number(d));
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return out;
}

interface Run {
  child: ChildProcess;
  output: () => string;
  waitFor(text: string, timeoutMs: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const runs: Run[] = [];

function startLocal(extraEnv: Record<string, string> = {}): Run {
  // Not detached: a Ctrl-C on the test run reaches local.ts too, which then stops its children.
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'scripts', 'local.ts')], {
    cwd: REPO,
    env: {
      ...process.env,
      DAFTKA_LOCAL_DATA_DIR: dataDir,
      DAFTKA_LOCAL_TOPICS: `${TOPIC}:1:3`,
      DAFTKA_LOCAL_BASE_PORT: String(ports.base),
      DAFTKA_LOCAL_NATS_PORT: String(ports.nats),
      DAFTKA_LOCAL_GATEWAY_PORT: String(ports.gateway),
      DAFTKA_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const run: Run = {
    child,
    output: () => out,
    exited,
    async waitFor(text, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!out.includes(text)) {
        if (child.exitCode !== null) throw new Error(`local.ts exited (${child.exitCode}) before "${text}":\n${out}`);
        if (Date.now() > deadline) throw new Error(`no "${text}" from local.ts within ${timeoutMs} ms:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
  runs.push(run);
  return run;
}

async function stopped(run: Run, timeoutMs = 45_000) {
  const t = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const r = await run.exited;
  clearTimeout(t);
  return r;
}

/** Processes of the run still alive shortly after local.ts exited (allow a moment for reaping). */
async function leftovers(): Promise<number[]> {
  for (let i = 0; i < 20; i++) {
    const left = processesOfRun();
    if (left.length === 0) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
  return processesOfRun();
}

const gw = () => `http://127.0.0.1:${ports.gateway}`;

beforeAll(async () => {
  // A free layout below the ephemeral port range (3 replicas × 3 ports + NATS + gateway).
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 11_000);
    const plan = planLocal(
      loadConfig(localSchema, {
        DAFTKA_LOCAL_TOPICS: `${TOPIC}:1:3`,
        DAFTKA_LOCAL_BASE_PORT: String(base),
        DAFTKA_LOCAL_NATS_PORT: String(base - 2),
        DAFTKA_LOCAL_GATEWAY_PORT: String(base - 1),
      }),
    );
    if ((await firstBusyPort(plan)) === null) {
      ports = { base, nats: base - 2, gateway: base - 1 };
      return;
    }
  }
  throw new Error('no free ports');
});

afterAll(async () => {
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  for (const pid of processesOfRun()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (process.env.DAFTKA_KEEP_LOGS !== '1') rmSync(dataDir, { recursive: true, force: true });
});

const written: Array<{ key: string; value: string; offset: number }> = [];

test('an invalid setting exits 2 naming the key, before starting anything', async () => {
  const run = startLocal({ DAFTKA_LOCAL_TOPICS_JSON: '[{"name":"Not_A_DNS_Label","partitions":1}]' });
  const r = await stopped(run, 30_000);
  expect(r.code).toBe(2);
  expect(run.output()).toContain('topicsJson');
  expect(run.output()).toContain('DAFTKA_LOCAL_TOPICS_JSON');
  expect(existsSync(join(dataDir, 'topics.json'))).toBe(false);
  expect(processesOfRun()).toEqual([]);
});

test('fresh data dir: READY, serves produce and fetch, SIGINT → exit 0 and every child gone', async () => {
  const run = startLocal();
  await run.waitFor('READY', 80_000);
  const children = processesOfRun();
  // nats-server + 3 replicas + gateway (plus their tsx helpers): the detection sees them.
  expect(children.length).toBeGreaterThanOrEqual(5);

  // Writable right after READY (no NO_QUORUM while the group forms).
  const p = await fetch(`${gw()}/v1/topics/${TOPIC}/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ records: ['a', 'b', 'c'].map((k) => ({ key: k, value: `value-${k}` })) }),
  });
  expect(p.status).toBe(200);
  const { results } = (await p.json()) as { results: Array<{ offset: number }> };
  ['a', 'b', 'c'].forEach((k, i) => written.push({ key: k, value: `value-${k}`, offset: results[i].offset }));
  const c = await fetch(`${gw()}/v1/groups/lm-readers/offsets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ offsets: [{ topic: TOPIC, partition: 0, offset: 2, metadata: 'before restart' }] }),
  });
  expect(c.status).toBe(200);
  for (const name of ['gateway', 'nats-server', `${TOPIC}-0-0`, `${TOPIC}-0-1`, `${TOPIC}-0-2`])
    expect(existsSync(join(dataDir, 'logs', `${name}.log`))).toBe(true);

  run.child.kill('SIGINT');
  const r = await stopped(run);
  expect(r).toEqual({ code: 0, signal: null });
  expect(run.output()).toContain('stopped.');
  expect(await leftovers()).toEqual([]);
  // Grandchildren (tsx's esbuild service) exit right after their parent: allow them a moment.
  expect(await stillAlive(children, 5000)).toEqual([]);
});

test('second start on the same data dir resumes with the records and group offsets; SIGTERM → exit 0', async () => {
  expect(written).toHaveLength(3);
  const run = startLocal();
  await run.waitFor('READY', 80_000);
  const f = await fetch(`${gw()}/v1/topics/${TOPIC}/partitions/0/records?offset=0&encoding=utf8`);
  expect(f.status).toBe(200);
  const body = (await f.json()) as {
    records: Array<{ offset: number; key: string; value: string }>;
    high_watermark: number;
  };
  expect(body.high_watermark).toBe(3);
  expect(body.records.map((x) => ({ key: x.key, value: x.value, offset: x.offset }))).toEqual(written);
  const g = await fetch(`${gw()}/v1/groups/lm-readers/offsets?topic=${TOPIC}`);
  expect(await g.json()).toMatchObject({
    partitions: [{ partition: 0, offset: 2, metadata: 'before restart', lag: 1 }],
  });
  // And it takes new writes at the next offset.
  const p = await fetch(`${gw()}/v1/topics/${TOPIC}/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ records: [{ value: 'after restart' }] }),
  });
  expect(((await p.json()) as { results: Array<{ offset: number }> }).results[0].offset).toBe(3);

  run.child.kill('SIGTERM');
  expect(await stopped(run)).toEqual({ code: 0, signal: null });
  expect(await leftovers()).toEqual([]);
});

test('DAFTKA_LOCAL_EXIT_AFTER_READY=1: starts, prints READY, stops by itself with exit 0, nothing left', async () => {
  const run = startLocal({ DAFTKA_LOCAL_EXIT_AFTER_READY: '1' });
  const r = await stopped(run, 80_000);
  expect(run.output()).toContain('READY');
  expect(r).toEqual({ code: 0, signal: null });
  expect(await leftovers()).toEqual([]);
});

/** The pids among `pids` that still exist after waiting up to `withinMs` for them to go. */
async function stillAlive(pids: number[], withinMs: number): Promise<number[]> {
  // A zombie (exited, not yet reaped by whoever inherited it) is gone for our purposes.
  const alive = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + withinMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(alive);
}
