import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../../helpers/free-port';
import { LocalStack } from '../../helpers/local-stack';
import { localClientKeysDir } from '../../../scripts/local-mode';

/**
 * The `daftka` CLI end to end: bin/daftka as a child process (exactly what `npx daftka` runs)
 * against local mode — real nats-server, replicas and gateway — plus a second gateway with
 * bearer-token auth over the same replicas (local mode's own readiness check does not send a
 * token, so the stack's gateway stays auth=off). Each command once, and the errors a user meets
 * first: wrong URL, bad token, missing topic.
 */

jest.setTimeout(120_000);

const REPO = resolve(__dirname, '..', '..', '..');
const BIN = join(REPO, 'bin', 'daftka');
const TOKEN = 'cli-test-token-0123456789abcdef';

let stack: LocalStack;
let authGateway: ChildProcess | null = null;
let authUrl = '';
const home = mkdtempSync(join(tmpdir(), 'daftka-cli-home-'));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run the CLI; DAFTKA_* from the test's own environment never leak in. */
function daftka(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DAFTKA_') && v !== undefined) env[k] = v;
  Object.assign(env, { XDG_CONFIG_HOME: home, DAFTKA_URL: stack.url, NO_COLOR: '1' }, opts.env ?? {});
  const t0 = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr, ms: performance.now() - t0 }));
    child.stdin.end(opts.input ?? '');
  });
}

/** The run succeeded (else its stderr is the failure message). */
const ok = (r: Run): Run => {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return r;
};
const json = <T = Record<string, unknown>>(r: Run): T => JSON.parse(ok(r).stdout) as T;
const lines = (s: string) => s.split('\n').filter((l) => l !== '');
/** An error is one line on stderr, prefixed with daftka:. */
const oneErrorLine = (r: Run) => {
  expect(lines(r.stderr)).toHaveLength(1);
  expect(r.stderr).toMatch(/^daftka: /);
};

const ALICE = { producers: ['alice'], consumers: ['alice'], admins: ['alice'] };

async function startAuthGateway(): Promise<void> {
  const port = await freePort();
  const tokens = join(home, 'tokens.json');
  writeFileSync(tokens, JSON.stringify({ tokens: { [TOKEN]: 'alice' } }));
  // stdin is a pipe from this process: the watchdog kills the gateway if the test run dies without afterAll.
  const watchdog = join(REPO, 'test', 'helpers', 'parent-watchdog.cjs');
  authGateway = spawn(process.execPath, ['--require', watchdog, '--import', 'tsx', join(REPO, 'gateway', 'main.ts')], {
    cwd: REPO,
    env: {
      ...process.env,
      DAFTKA_GATEWAY_HOST: '127.0.0.1',
      DAFTKA_GATEWAY_PORT: String(port),
      DAFTKA_GATEWAY_METRICS_PORT: '0',
      DAFTKA_GATEWAY_TOPICS_FILE: stack.plan.topicsFile,
      DAFTKA_NATS_URL: stack.natsUrlAs('gateway'),
      DAFTKA_GATEWAY_AUTH: 'tokens',
      DAFTKA_GATEWAY_TOKENS_FILE: tokens,
      // The replicas admit a client only with the topic's client key (docs/security.md).
      DAFTKA_GATEWAY_CLIENT_KEYS_DIR: localClientKeysDir(stack.dataDir),
      DAFTKA_LOG_LEVEL: 'warn',
    },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let err = '';
  authGateway.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  authUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (authGateway.exitCode !== null) throw new Error(`auth gateway exited: ${err}`);
    const ok = await fetch(`${authUrl}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`auth gateway not ready: ${err}`);
}

beforeAll(async () => {
  stack = await LocalStack.start({
    // Closed by default: the token gateway's principal alice holds every right on both topics.
    topics: [
      { name: 't', partitions: 2, replicationFactor: 1, access: ALICE },
      { name: 'dl', partitions: 1, replicationFactor: 1, access: ALICE },
    ],
    // A readiness snapshot a second, so `readiness --history` has some to show.
    gatewayEnv: { DAFTKA_GATEWAY_READINESS_INTERVAL_MS: '1000' },
  });
  await startAuthGateway();
});

afterAll(async () => {
  if (authGateway !== null && authGateway.exitCode === null) {
    const exited = new Promise((r) => authGateway!.once('exit', r));
    authGateway.kill('SIGKILL');
    await exited;
  }
  await stack?.stop();
  rmSync(home, { recursive: true, force: true });
});

describe('topics', () => {
  it('lists the topics, as a table and as JSON', async () => {
    const r = await daftka(['topics']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+PARTITIONS\n/);
    expect(r.stdout).toMatch(/^t\s+2$/m);
    const j = json<{ topics: Array<{ name: string }> }>(await daftka(['topics', 'list', '-o', 'json']));
    expect(j.topics.map((t) => t.name).sort()).toEqual(['dl', 't']);
  });

  it('describes a topic: every partition with leader, term and watermarks', async () => {
    const r = await daftka(['topics', 'describe', 't']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/PARTITION\s+LEADER\s+TERM\s+LOG START\s+HIGH WATERMARK/);
    const j = json<{ partitions: Array<{ leader: string; term: number; high_watermark: number }> }>(
      await daftka(['topics', 'describe', 't', '-o', 'yaml', '--output', 'json']),
    );
    expect(j.partitions).toHaveLength(2);
    for (const p of j.partitions) {
      expect(typeof p.leader).toBe('string');
      expect(p.term).toBeGreaterThan(0);
      expect(p.high_watermark).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('produce and consume', () => {
  it('produces stdin lines with key and headers, and reads them back as JSON', async () => {
    const p = await daftka(['produce', 't', '-k', 'user-1', '-H', 'source=cli', '-H', 'v=2', '-o', 'json'], {
      input: 'one\ntwo\n\nthree\n',
    });
    const sum = json<{
      records: number;
      written: number;
      partitions: Array<{ partition: number; first_offset: number }>;
    }>(p);
    expect(sum).toMatchObject({ records: 3, written: 3 });
    expect(sum.partitions).toHaveLength(1); // one key, one partition
    const { partition, first_offset } = sum.partitions[0];
    const c = await daftka(['consume', 't', '-p', String(partition), '--offset', String(first_offset), '-F', 'json']);
    expect(c.code).toBe(0);
    const recs = lines(c.stdout).map((l) => JSON.parse(l));
    expect(recs.map((r) => r.value)).toEqual(['one', 'two', 'three']);
    expect(recs[0]).toMatchObject({ topic: 't', partition, key: 'user-1' });
    expect(recs[0].headers).toEqual([
      { name: 'source', value: 'cli' },
      { name: 'v', value: '2' },
    ]);
    expect(c.stderr).toContain('3 record(s) from t');
  });

  it('produces an NDJSON file idempotently: the same run again writes nothing twice', async () => {
    const file = join(home, 'in.ndjson');
    writeFileSync(
      file,
      Array.from({ length: 30 }, (_, i) => JSON.stringify({ key: `k${i}`, value: { n: i } })).join('\n') + '\n',
    );
    const args = [
      'produce',
      't',
      '--format',
      'ndjson',
      '-f',
      file,
      '--idempotency-key',
      'load-1',
      '-b',
      '10',
      '-o',
      'json',
    ];
    expect(json(await daftka(args))).toMatchObject({ records: 30, written: 30, duplicate: 0, batches: 3 });
    expect(json(await daftka(args))).toMatchObject({ records: 30, written: 0, duplicate: 30 });
  });

  it('JSON values and null values: produced from NDJSON as they are, consumed as JSON with -E json', async () => {
    const file = join(home, 'json.ndjson');
    const rows = [{ order: 42, items: ['a'] }, [1, 2], null, 'text'];
    writeFileSync(file, rows.map((value) => JSON.stringify({ key: 'json-1', value })).join('\n') + '\n');
    const sum = json<{ partitions: Array<{ partition: number; first_offset: number }> }>(
      await daftka(['produce', 't', '--format', 'ndjson', '-f', file, '-o', 'json']),
    );
    const { partition, first_offset } = sum.partitions[0];
    const from = ['-p', String(partition), '--offset', String(first_offset), '-n', '4'];
    const asJson = await daftka(['consume', 't', ...from, '-E', 'json', '-F', 'json']);
    expect(asJson.code).toBe(0);
    const recs = lines(asJson.stdout).map((l) => JSON.parse(l) as { value?: unknown; value_b64?: string });
    expect(recs.slice(0, 3).map((r) => r.value)).toEqual([{ order: 42, items: ['a'] }, [1, 2], null]);
    expect(recs[3].value_b64).toBe(Buffer.from('text').toString('base64')); // not JSON text
    const asValue = await daftka(['consume', 't', ...from, '-E', 'json']);
    expect(asValue.stdout.split('\n').slice(0, 4)).toEqual(['{"order":42,"items":["a"]}', '[1,2]', '', 'dGV4dA==']);
  });

  it('--rate holds the producer to the rate', async () => {
    const r = json<{ elapsed_ms: number; records: number }>(
      await daftka(['produce', 't', '--rate', '40', '-o', 'json'], {
        input: Array.from({ length: 20 }, (_, i) => `r${i}`).join('\n'),
      }),
    );
    expect(r.records).toBe(20);
    // 20 records at 40/s in batches of a quarter second's worth: the second batch leaves 250 ms after the first.
    expect(r.elapsed_ms).toBeGreaterThanOrEqual(240);
  });

  it('consumes from a timestamp, with a template, and stops after -n', async () => {
    await daftka(['produce', 't', '-p', '1', '-q'], { input: 'before\n' });
    await new Promise((r) => setTimeout(r, 30));
    const since = Date.now();
    await daftka(['produce', 't', '-p', '1', '-q'], { input: 'after-1\nafter-2\n' });
    const c = await daftka(['consume', 't', '-p', '1', '-t', String(since), '-T', '{{partition}}:{{value}}']);
    expect(c.code).toBe(0);
    expect(lines(c.stdout)).toEqual(['1:after-1', '1:after-2']);
    const n = await daftka(['consume', 't', '-n', '2', '-q']);
    expect(lines(n.stdout)).toHaveLength(2);
  });

  it('--follow waits for new records and ends after -n', async () => {
    type T = { partitions: Array<{ partition: number; high_watermark: number }> };
    const hwm = json<T>(await daftka(['topics', 'describe', 't', '-o', 'json'])).partitions[0].high_watermark;
    const child = daftka(['consume', 't', '-p', '0', '--offset', String(hwm), '-f', '-n', '2', '--wait', '1s']);
    // Let the consumer start long-polling at the end of the log, then write.
    await new Promise((r) => setTimeout(r, 1500));
    await daftka(['produce', 't', '-p', '0', '-q'], { input: 'live-1\nlive-2\nlive-3\n' });
    const r = await child;
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toEqual(['live-1', 'live-2']);
  });
});

describe('groups', () => {
  it('a cumulative group consumes, commits, shows its lag, and resets with a dry run first', async () => {
    const c = await daftka(['consume', 't', '-g', 'billing', '-p', '0', '-n', '1']);
    expect(c.code).toBe(0);
    expect(lines(c.stdout)).toHaveLength(1);
    type G = {
      lag: number;
      topics: Array<{ partitions: Array<{ partition: number; offset: number | null; lag: number }> }>;
    };
    const g = json<G>(await daftka(['groups', 'describe', 'billing', '-o', 'json']));
    const p0 = g.topics[0].partitions.find((p) => p.partition === 0)!;
    expect(p0.offset).toBe(1);
    const table = await daftka(['groups', 'describe', 'billing', '--topic', 't']);
    expect(table.stdout).toMatch(/TOPIC\s+PARTITION\s+COMMITTED\s+LOG START\s+HIGH WATERMARK\s+LAG/);
    expect(table.stdout).toContain(`total lag ${g.lag}`);

    const dry = await daftka(['groups', 'reset', 'billing', '--topic', 't', '--to-latest', '-p', '0', '--dry-run']);
    expect(dry.stdout).toContain('dry run: nothing committed');
    expect(json<G>(await daftka(['groups', 'describe', 'billing', '-o', 'json'])).topics[0].partitions[0].offset).toBe(
      1,
    );

    const reset = json<{ partitions: Array<{ new_offset: number; high_watermark: number }> }>(
      await daftka(['groups', 'reset', 'billing', '--topic', 't', '--to-latest', '-p', '0', '-o', 'json']),
    );
    expect(reset.partitions[0].new_offset).toBe(reset.partitions[0].high_watermark);
    const after = json<G>(await daftka(['groups', 'describe', 'billing', '--topic', 't', '-o', 'json']));
    expect(after.topics[0].partitions.find((p) => p.partition === 0)!.lag).toBe(0);
  });

  it('groups list shows the groups with their topic; --prefix narrows it', async () => {
    const all = json<{ groups: Array<{ group: string; topic: string }> }>(
      await daftka(['groups', 'list', '-o', 'json']),
    );
    expect(all.groups).toContainEqual({ group: 'billing', topic: 't' });
    const none = json<{ groups: unknown[] }>(await daftka(['groups', 'list', '--prefix', 'zzz-', '-o', 'json']));
    expect(none.groups).toEqual([]);
    const table = await daftka(['groups', 'list', '--topic', 't']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/billing\s+t/);
  });
});

describe('leased consumption and dead letters', () => {
  it('rejects leased records into the DLQ, lists and shows them, replays with a dry run first, archives and purges', async () => {
    const start = json<{ partitions: Array<{ first_offset: number }> }>(
      await daftka(['produce', 'dl', '-o', 'json'], { input: 'poison-1\npoison-2\n' }),
    ).partitions[0].first_offset;
    expect(start).toBe(0);
    const rejected = ok(
      await daftka(['consume', 'dl', '-g', 'w', '--leased', '--ack', 'reject', '--ack-error', 'SchemaError: no id']),
    );
    expect(lines(rejected.stdout)).toEqual(['poison-1', 'poison-2']);

    const list = json<{ deadletters: Array<{ id: string; error_class: string; state: string }> }>(
      await daftka(['dlq', 'list', 'dl', '--group', 'w', '-o', 'json']),
    );
    expect(list.deadletters.map((d) => [d.error_class, d.state])).toEqual([
      ['SchemaError', 'active'],
      ['SchemaError', 'active'],
    ]);
    const table = await daftka(['dlq', 'list', 'dl']);
    expect(table.stdout).toMatch(/ID\s+GROUP\s+ORIGIN\s+ATTEMPTS\s+STATE\s+ERROR CLASS/);
    const show = await daftka(['dlq', 'show', 'dl', list.deadletters[0].id]);
    expect(show.stdout).toMatch(/value:\s+poison-1/);
    expect(show.stdout).toMatch(/last error:\s+SchemaError: no id/);

    const dry = json<{ state: string; matched: number; written: number; dry_run: boolean }>(
      await daftka(['dlq', 'replay', 'dl', '--group', 'w', '--dry-run', '-o', 'json']),
    );
    expect(dry).toMatchObject({ matched: 2, written: 0, dry_run: true });
    const job = await daftka(['dlq', 'replay', 'dl', '--group', 'w', '--idempotency-key', 'fix-1', '--poll', '200ms']);
    expect(job.code).toBe(0);
    expect(lines(job.stdout).pop()).toMatch(/: done, matched 2, written 2, skipped 0$/);
    const jobId = /job (\S+):/.exec(job.stdout)![1];
    expect((await daftka(['dlq', 'job', jobId])).stdout).toMatch(/PARTITION\s+STATE\s+MATCHED\s+WRITTEN/);
    // The replayed records are new records at the end of their partition.
    const replayed = await daftka(['consume', 'dl', '--offset', String(start + 2), '-q']);
    expect(lines(replayed.stdout)).toEqual(['poison-1', 'poison-2']);

    const noFilter = await daftka(['dlq', 'archive', 'dl']);
    expect(noFilter.code).toBe(1);
    oneErrorLine(noFilter);
    expect((await daftka(['dlq', 'archive', 'dl', '--group', 'w'])).stdout).toContain('archived 0 dead letter(s)');
    expect(json(await daftka(['dlq', 'purge', 'dl', '--all', '-o', 'json']))).toEqual({ purged: 2 });
    expect(json<{ deadletters: unknown[] }>(await daftka(['dlq', 'list', 'dl', '-o', 'json'])).deadletters).toEqual([]);
  });
});

describe('status and readiness', () => {
  it('status: every partition has a leader (exit 0)', async () => {
    const r = await daftka(['status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^healthy: 2 topic\(s\), 3 partition\(s\), 0 leaderless/m);
    expect(json(await daftka(['status', 't', '-o', 'json']))).toMatchObject({
      healthy: true,
      partitions: 2,
      leaderless: 0,
    });
  });

  it('readiness: the report with every check (exit 0 ready or warning, 7 not_ready); --history answers', async () => {
    const r = await daftka(['readiness']);
    expect([0, 7]).toContain(r.code);
    expect(r.stdout).toMatch(/^readiness: (ready|warning|not_ready)/m);
    const j = json(await daftka(['readiness', '-o', 'json'])) as { status: string; checks: unknown[] };
    expect(['ready', 'warning', 'not_ready']).toContain(j.status);
    expect(j.checks.length).toBeGreaterThan(5);
    expect(r.code).toBe(j.status === 'not_ready' ? 7 : 0);
    const history = await daftka(['readiness', '--history', '5']);
    expect([0, 7]).toContain(history.code);
    const rows = lines(history.stdout).filter((l) => /^\d{4}-\d\d-\d\dT/.test(l));
    expect(rows.length).toBeGreaterThanOrEqual(1);
    expect(rows.length).toBeLessThanOrEqual(5);
    for (const row of rows) expect(row).toMatch(/ (ready|warning|not_ready)\b/);
    expect(history.stdout).toMatch(/^\d+ snapshots, one every 1 s \(at most \d+ kept\)$/m);
    // Exit 7 when the newest snapshot is not_ready: parse the JSON either way.
    const h = JSON.parse((await daftka(['readiness', '--history', '3', '-o', 'json'])).stdout) as {
      snapshots: Array<{ at: number; status: string }>;
      interval_ms: number;
    };
    expect(h.interval_ms).toBe(1000);
    expect(h.snapshots.length).toBeGreaterThanOrEqual(1);
    expect(h.snapshots.length).toBeLessThanOrEqual(3);
    const at = h.snapshots.map((x) => x.at);
    expect([...at].sort((a, b) => a - b)).toEqual(at); // oldest first
  });
});

describe('errors a user meets first', () => {
  it('wrong URL: connection refused, exit 4', async () => {
    const port = await freePort();
    const r = await daftka(['topics'], { env: { DAFTKA_URL: `http://127.0.0.1:${port}` } });
    expect(r.code).toBe(4);
    oneErrorLine(r);
    expect(r.stderr).toContain(
      `cannot reach the gateway at http://127.0.0.1:${port}: connection refused (ECONNREFUSED)`,
    );
  });

  it('missing topic: TOPIC_NOT_FOUND, exit 2, for describe, produce and consume', async () => {
    for (const args of [
      ['topics', 'describe', 'nope'],
      ['produce', 'nope'],
      ['consume', 'nope'],
    ]) {
      const r = await daftka(args, { input: 'x\n' });
      expect(r.code).toBe(2);
      oneErrorLine(r);
      expect(r.stderr).toMatch(/^daftka: TOPIC_NOT_FOUND \(HTTP 404\): .*nope.*; request \S+/);
    }
  });

  it('bad or missing token on a gateway with auth: UNAUTHENTICATED, exit 3; a good token from a profile works', async () => {
    const bad = await daftka(['topics', '--token', 'wrong-token-0123456789'], { env: { DAFTKA_URL: authUrl } });
    expect(bad.code).toBe(3);
    oneErrorLine(bad);
    expect(bad.stderr).toMatch(/^daftka: UNAUTHENTICATED \(HTTP 401\): .*hint: pass a valid token/);
    expect((await daftka(['status'], { env: { DAFTKA_URL: authUrl } })).code).toBe(3);

    mkdirSync(join(home, 'daftka'), { recursive: true });
    writeFileSync(join(home, 'alice.token'), `${TOKEN}\n`);
    writeFileSync(
      join(home, 'daftka', 'config.yaml'),
      `profiles:\n  secured:\n    url: ${authUrl}\n    token_file: ${join(home, 'alice.token')}\n`,
    );
    const ok = await daftka(['--profile', 'secured', 'topics', '-o', 'json'], { env: { DAFTKA_URL: '' } });
    expect(json<{ topics: unknown[] }>(ok).topics).toHaveLength(2);
    const env = await daftka(['topics'], { env: { DAFTKA_URL: authUrl, DAFTKA_TOKEN: TOKEN } });
    expect(env.code).toBe(0);
    const unknownProfile = await daftka(['--profile', 'nope', 'topics']);
    expect(unknownProfile.code).toBe(1);
    expect(unknownProfile.stderr).toContain('profile "nope" is not in');
  });

  it('bad flags: exit 1 with a suggestion', async () => {
    const r = await daftka(['topcis']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(Did you mean topics?)');
    const help = await daftka(['produce', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Examples:');
  });

  it('a leaderless partition makes status unhealthy (exit 7)', async () => {
    await stack.stopProcess('dl-0-0', 'SIGKILL');
    const r = await daftka(['status', 'dl']);
    expect(r.code).toBe(7);
    expect(r.stdout).toMatch(/^dl\s+0\s+-\s+-\s+-\s+leaderless/m);
    expect(r.stdout).toMatch(/^UNHEALTHY: 1 topic\(s\), 1 partition\(s\), 1 leaderless/m);
  });
});
