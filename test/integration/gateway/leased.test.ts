import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { partitionForKey } from '../../../common/partitioner';
import { localClientKeysDir, localLeaseSecret } from '../../../scripts/local-mode';
import { freePort } from '../../helpers/free-port';
import { LocalStack } from '../../helpers/local-stack';

/**
 * Issue 9 end to end on the real stack (nats-server + replica processes + the gateway, as
 * `npm run local` runs them), plus a second gateway process on the same topics and lease secret:
 * leased consumption with crashes, stale acks, poison records, dead letters and replay (run twice,
 * leader killed in the middle), and bad input.
 *
 *   work     2 partitions × RF 1, dead letters kept 4 s — leases, redelivery, two gateways, retention
 *   poison   2 partitions × RF 3, deadLetter.maxAttempts 2 — dead letters and replay under a leader kill
 *   parking  3 partitions × RF 1 — the target of a replay to another topic
 */

jest.setTimeout(120_000);

const REPO = resolve(__dirname, '..', '..', '..');
let stack: LocalStack;
let gw2: { url: string; proc: ChildProcess };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function startSecondGateway(): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const fd = openSync(join(stack.plan.logDir, 'gateway-2.log'), 'a');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('DAFTKA_')) env[k] = v;
  Object.assign(env, {
    DAFTKA_GATEWAY_HOST: '127.0.0.1',
    DAFTKA_GATEWAY_PORT: String(port),
    DAFTKA_GATEWAY_METRICS_PORT: '0',
    DAFTKA_GATEWAY_TOPICS_FILE: stack.plan.topicsFile,
    DAFTKA_NATS_URL: stack.natsUrlAs('gateway'),
    DAFTKA_GATEWAY_LEASE_SECRET: localLeaseSecret(stack.dataDir),
    // The replicas admit a client only with the topic's client key (docs/security.md).
    DAFTKA_GATEWAY_CLIENT_KEYS_DIR: localClientKeysDir(stack.dataDir),
    DAFTKA_LOG_LEVEL: 'warn',
  });
  const proc = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'gateway/main.ts')], {
    cwd: REPO,
    env,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  process.once('exit', () => proc.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await fetch(`${url}/healthz`).catch(() => null))?.ok) return { url, proc };
    await sleep(200);
  }
  throw new Error('second gateway did not start');
}

beforeAll(async () => {
  stack = await LocalStack.start({
    topics: [
      { name: 'work', partitions: 2, replicationFactor: 1, deadLetter: { retentionMs: 4000 } },
      { name: 'poison', partitions: 2, replicationFactor: 3, deadLetter: { maxAttempts: 2 } },
      { name: 'parking', partitions: 3, replicationFactor: 1 },
    ],
    replicaEnv: {
      DAFTKA_ELECTION_TIMEOUT_MS: '300',
      DAFTKA_HEARTBEAT_MS: '50',
      DAFTKA_LEASE_SWEEP_MS: '100',
      DAFTKA_LEASE_BACKOFF_INITIAL_MS: '0',
    },
  });
  gw2 = await startSecondGateway();
}, 180_000);

afterAll(async () => {
  gw2?.proc.kill('SIGKILL');
  await stack?.stop();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function http(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** The gateway of the local stack (0) or the second one (1). */
const gw = (i: number) => (i % 2 === 0 ? stack.url : gw2.url);

/** Retry on the retryable answers of a stack that may be electing (503/504). */
async function call(i: number, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await http(gw(i), method, path, body).catch((e: unknown) => ({ status: 0, body: { detail: String(e) } }));
    if (!(r.status === 0 || ((r.status === 503 || r.status === 504) && r.body?.retryable)) || Date.now() > deadline)
      return r;
    await sleep(200);
  }
}

async function produce(topic: string, partition: number, values: string[]): Promise<void> {
  const r = await call(0, 'POST', `/v1/topics/${topic}/records`, {
    records: values.map((value) => ({ value, partition })),
  });
  expect(r.status).toBe(200);
}

const leaseFetch = (i: number, group: string, body: Json) => call(i, 'POST', `/v1/groups/${group}/fetch`, body);
const acks = (i: number, group: string, list: Json[]) => call(i, 'POST', `/v1/groups/${group}/acks`, { acks: list });

/** Start `group` at the end of every partition of `topic`. */
async function startAtEnd(group: string, topic: string): Promise<void> {
  const off = await call(0, 'GET', `/v1/groups/${group}/offsets?topic=${topic}`);
  await call(0, 'POST', `/v1/groups/${group}/offsets`, {
    offsets: off.body.partitions.map((p: Json) => ({ topic, partition: p.partition, offset: p.high_watermark })),
  });
}

/** Lease and reject what `group` gets from `topic` until `n` records are dead-lettered. */
async function rejectAll(group: string, topic: string, n: number, error: string): Promise<number> {
  let rejected = 0;
  for (let i = 0; rejected < n && i < 30; i++) {
    const f = await leaseFetch(i, group, { topics: [topic], max_records: 50, wait_ms: 500 });
    if (f.body.records.length === 0) continue;
    const a = await acks(
      i,
      group,
      f.body.records.map((r: Json) => ({ token: r.lease_token, action: 'reject', error })),
    );
    rejected += a.body.results.filter((r: Json) => r.dead_lettered).length;
  }
  return rejected;
}

/** A replay request with an Idempotency-Key: `post()` sends it, `accepted()` sends it until 202. */
function replayRequest(topic: string, key: string, body: Json) {
  const post = () =>
    fetch(`${stack.url}/v1/topics/${topic}/deadletters:replay`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as Json }));
  const accepted = async () => {
    for (;;) {
      const r = await post();
      if (r.status === 202) return r;
      await sleep(300);
    }
  };
  return { post, accepted };
}

/** Poll a job until it is done (or the tries run out); returns its last state. */
async function jobDone(jobId: string, tries: number, pauseMs = 300): Promise<Json> {
  let progress: Json;
  for (let i = 0; i < tries; i++) {
    progress = (await call(i, 'GET', `/v1/jobs/${jobId}`)).body;
    if (progress.state === 'done') break;
    await sleep(pauseMs);
  }
  return progress;
}

describe('leased consumption on the real stack', () => {
  test('a consumer that crashes mid-lease has its records redelivered after lease_ms with attempt + 1; its late acks are refused', async () => {
    await produce('work', 0, ['c0', 'c1', 'c2']);
    await produce('work', 1, ['c3']);
    const group = 'crash';
    // Consumer A leases everything, then "crashes": it never acks.
    const a = await leaseFetch(0, group, { topics: ['work'], max_records: 100, lease_ms: 1500, encoding: 'utf8' });
    expect(a.status).toBe(200);
    expect(a.body.records.map((r: Json) => r.value).sort()).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(a.body.records.every((r: Json) => r.delivery_attempt === 1)).toBe(true);
    // Consumer B, through the other gateway, long-polls: it gets them once the leases end.
    const t0 = Date.now();
    const got: Json[] = [];
    while (got.length < 4 && Date.now() - t0 < 20_000) {
      const b = await leaseFetch(1, group, { topics: ['work'], max_records: 100, wait_ms: 5000, encoding: 'utf8' });
      expect(b.status).toBe(200);
      got.push(...b.body.records);
    }
    const waited = Date.now() - t0;
    expect(got.map((r) => r.value).sort()).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(got.every((r) => r.delivery_attempt === 2)).toBe(true);
    expect(waited).toBeGreaterThanOrEqual(1000);
    // A comes back and acks its old deliveries: refused, nothing applied.
    const late = await acks(
      0,
      group,
      a.body.records.map((r: Json) => ({ token: r.lease_token, action: 'accept' })),
    );
    expect(late.status).toBe(409);
    expect(late.body.results.every((r: Json) => r.status === 'stale_attempt')).toBe(true);
    // B accepts through the first gateway: no stickiness.
    const ok = await acks(
      0,
      group,
      got.map((r) => ({ token: r.lease_token, action: 'accept' })),
    );
    expect(ok.status).toBe(200);
    expect(ok.body.results.every((r: Json) => r.status === 'ok')).toBe(true);
    // The cumulative view agrees: committed = high watermark, lag 0.
    const off = await call(0, 'GET', `/v1/groups/${group}/offsets?topic=work`);
    expect(off.body.lag).toBe(0);
  });

  test('two gateways used alternately by one consumer: every record accepted exactly once', async () => {
    const values = Array.from({ length: 30 }, (_, i) => `alt-${i}`);
    await produce('work', 0, values.slice(0, 15));
    await produce('work', 1, values.slice(15));
    const group = 'alternating';
    await call(1, 'PUT', `/v1/groups/${group}/policy`, { topic: 'work', lease_ms: 10_000 });
    // Start the group at the records of this test (cumulative reset, then leased reads from there).
    const off = await call(0, 'GET', `/v1/groups/crash/offsets?topic=work`);
    for (const p of off.body.partitions)
      await call(0, 'POST', `/v1/groups/${group}/offsets`, {
        offsets: [{ topic: 'work', partition: p.partition, offset: p.high_watermark - 15 }],
      });
    const seen = new Map<string, number>();
    for (let i = 0; seen.size < 30 && i < 200; i++) {
      const f = await leaseFetch(i, group, { topics: ['work'], max_records: 4, wait_ms: 1000, encoding: 'utf8' });
      expect(f.status).toBe(200);
      for (const r of f.body.records) seen.set(r.value, (seen.get(r.value) ?? 0) + 1);
      if (f.body.records.length === 0) continue;
      const a = await acks(
        i + 1,
        group,
        f.body.records.map((r: Json) => ({ token: r.lease_token, action: 'accept' })),
      );
      expect(a.status).toBe(200);
    }
    expect([...seen.keys()].sort()).toEqual([...values].sort());
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect((await call(1, 'GET', `/v1/groups/${group}/offsets?topic=work`)).body.lag).toBe(0);
  });

  test('bad input: forged, garbled, expired tokens; unknown group; negative delays → clear 4xx', async () => {
    await produce('work', 0, ['bad-input']);
    const group = 'badinput';
    await call(0, 'PUT', `/v1/groups/${group}/policy`, { topic: 'work' }).catch(() => undefined);
    const f = await leaseFetch(0, group, { topics: ['work'], max_records: 1, lease_ms: 200 });
    const token: string = f.body.records[0].lease_token;
    const [p, m] = token.split('.');
    const forged = `${p}.${m.slice(0, -2)}${m.endsWith('AA') ? 'BA' : 'AA'}`;
    const r1 = await acks(1, group, [{ token: forged, action: 'accept' }]);
    expect(r1.status).toBe(400);
    expect(r1.body).toMatchObject({ code: 'INVALID_TOKEN', results: [{ status: 'invalid_token' }] });
    const r2 = await acks(0, group, [{ token: '%%%', action: 'accept' }]);
    expect(r2.status).toBe(400);
    const neg = await acks(0, group, [{ token, action: 'release', delay_ms: -1 }]);
    expect(neg.status).toBe(400);
    expect(neg.body).toMatchObject({ code: 'INVALID_REQUEST', pointer: '/acks/0/delay_ms' });
    await sleep(400);
    const expired = await acks(1, group, [{ token, action: 'accept' }]);
    expect(expired.status).toBe(409);
    expect(expired.body.results[0].status).toBe('lease_expired');
    expect((await call(0, 'GET', '/v1/groups/never-seen/policy?topic=work')).status).toBe(404);
    expect((await call(0, 'POST', '/v1/groups/x/fetch', { topics: ['work'], lease_ms: -5 })).status).toBe(400);
  });
});

describe('dead letters and replay on the real stack', () => {
  test('poison records reach the dead-letter stream after max_attempts with full origin', async () => {
    await produce('poison', 0, ['ok-0', 'poison-0', 'ok-1']);
    await produce('poison', 1, ['poison-1']);
    const group = 'workers';
    const accepted: string[] = [];
    // A consumer that fails on poison (release with an error) until the records are dead-lettered.
    for (let i = 0; i < 40; i++) {
      const f = await leaseFetch(i, group, { topics: ['poison'], max_records: 10, wait_ms: 500, encoding: 'utf8' });
      if (f.body.records.length === 0) {
        const dl = await call(0, 'GET', `/v1/topics/poison/deadletters?group=${group}`);
        if (dl.body.deadletters.length === 2 && accepted.length === 2) break;
        continue;
      }
      const a = await acks(
        i + 1,
        group,
        f.body.records.map((r: Json) =>
          r.value.startsWith('poison')
            ? { token: r.lease_token, action: 'release', error: 'ParseError: not JSON' }
            : { token: r.lease_token, action: 'accept' },
        ),
      );
      expect(a.status).toBe(200);
      f.body.records.filter((r: Json) => !r.value.startsWith('poison')).forEach((r: Json) => accepted.push(r.value));
    }
    expect(accepted.sort()).toEqual(['ok-0', 'ok-1']);
    const dl = await call(1, 'GET', `/v1/topics/poison/deadletters?group=${group}&encoding=utf8`);
    expect(dl.status).toBe(200);
    const byValue = new Map(dl.body.deadletters.map((d: Json) => [d.value, d]));
    expect(byValue.get('poison-0')).toMatchObject({
      topic: 'poison',
      partition: 0,
      offset: 1,
      group,
      attempts: 2,
      last_error: 'ParseError: not JSON',
      error_class: 'ParseError',
      state: 'active',
    });
    expect(byValue.get('poison-1')).toMatchObject({ partition: 1, offset: 0, attempts: 2 });
    const d: Json = byValue.get('poison-0');
    expect(d.first_delivery_at).toBeLessThanOrEqual(d.last_delivery_at);
    expect(d.last_delivery_at).toBeLessThanOrEqual(d.dead_lettered_at);
    // Everything is finished: the group's committed offsets are at the high watermarks.
    expect((await call(0, 'GET', `/v1/groups/${group}/offsets?topic=poison`)).body.lag).toBe(0);
    // A lease that simply expires on its last attempt is dead-lettered too (by the leader's sweep).
    await produce('poison', 1, ['silent']);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const f = await leaseFetch(0, group, { topics: ['poison'], max_records: 1, lease_ms: 300, wait_ms: 3000 });
      expect(f.body.records[0].delivery_attempt).toBe(attempt);
    }
    let silent: Json;
    for (let i = 0; i < 50 && !silent; i++) {
      await sleep(200);
      const r = await call(0, 'GET', `/v1/topics/poison/deadletters?error_class=lease_expired&encoding=utf8`);
      silent = r.body.deadletters.find((x: Json) => x.value === 'silent');
    }
    expect(silent).toMatchObject({ partition: 1, group, attempts: 2, error_class: 'lease_expired' });
  });

  test('replay writes each dead letter back to its origin once, though the job is sent twice and a leader is killed during it', async () => {
    const group = 'replayers';
    const values = Array.from({ length: 24 }, (_, i) => `bad-${i}`);
    await produce('poison', 0, values.slice(0, 12));
    await produce('poison', 1, values.slice(12));
    // Start the group at these records, then reject them all (straight to the dead-letter stream).
    const off = await call(0, 'GET', `/v1/groups/workers/offsets?topic=poison`);
    for (const p of off.body.partitions)
      await call(0, 'POST', `/v1/groups/${group}/offsets`, {
        offsets: [{ topic: 'poison', partition: p.partition, offset: p.high_watermark - 12 }],
      });
    expect(await rejectAll(group, 'poison', 24, 'Bad: x')).toBe(24);
    const hwBefore = await Promise.all(
      [0, 1].map(async (p) => (await call(0, 'GET', '/v1/topics/poison')).body.partitions[p].high_watermark),
    );

    // Start the job slowly, send the same request again, kill partition 0's leader mid-way.
    const { post, accepted } = replayRequest('poison', 'replay-e2e-1', { filter: { group }, rate_per_sec: 8 });
    const job = await post();
    expect(job.status).toBe(202);
    expect(job.body).toMatchObject({ state: 'running', matched: 24 });
    await sleep(1200);
    // Mid-job: some records written, not all.
    const mid = (await call(0, 'GET', `/v1/jobs/${job.body.job_id}`)).body;
    expect(mid.written).toBeGreaterThan(0);
    expect(mid.written).toBeLessThan(24);
    const leader = await stack.leader('poison', 0);
    expect(leader).not.toBeNull();
    stack.kill(leader!.name);
    const again = await accepted();
    expect(again.body.job_id).toBe(job.body.job_id);
    expect(await jobDone(job.body.job_id, 150)).toMatchObject({ state: 'done', matched: 24, written: 24 });
    // A second job over the same dead letters writes nothing.
    const second = await call(1, 'POST', '/v1/topics/poison/deadletters:replay', {
      filter: { group },
      rate_per_sec: 1000,
    });
    expect(second.status).toBe(202);
    expect(await jobDone(second.body.job_id, 50, 200)).toMatchObject({ state: 'done', written: 0, skipped: 24 });

    // Read both partitions from before the replay: each dead letter came back exactly once.
    const origins: string[] = [];
    for (const p of [0, 1]) {
      let offset = hwBefore[p];
      for (;;) {
        const r = await call(0, 'GET', `/v1/topics/poison/partitions/${p}/records?offset=${offset}&encoding=utf8`);
        expect(r.status).toBe(200);
        for (const rec of r.body.records) {
          const h = rec.headers.find((x: Json) => x.name === 'daftka-replay-of');
          if (h) origins.push(`${h.value}=${rec.value}`);
        }
        if (r.body.next_offset >= r.body.high_watermark) break;
        offset = r.body.next_offset;
      }
    }
    expect(origins).toHaveLength(24);
    expect(new Set(origins).size).toBe(24);
    expect(origins.map((o) => o.split('=')[1]).sort()).toEqual([...values].sort());
    const replayed = await call(0, 'GET', `/v1/topics/poison/deadletters?group=${group}&state=replayed&limit=100`);
    expect(replayed.body.deadletters).toHaveLength(24);
  });

  test('replay to another topic: each dead letter lands there once, where its key belongs, through a target outage, a repeated request and an origin leader kill', async () => {
    const group = 'movers';
    // Start the group at the end of the partitions, then dead-letter 16 keyed records.
    await startAtEnd(group, 'poison');
    const keys = Array.from({ length: 16 }, (_, i) => `key-${i}`);
    for (const p of [0, 1]) {
      const r = await call(0, 'POST', '/v1/topics/poison/records', {
        records: keys.filter((_, i) => i % 2 === p).map((key) => ({ key, value: `moved-${key}`, partition: p })),
      });
      expect(r.status).toBe(200);
    }
    expect(await rejectAll(group, 'poison', 16, 'Moved: elsewhere')).toBe(16);
    const hwBefore = (await call(0, 'GET', '/v1/topics/parking')).body.partitions.map((p: Json) => p.high_watermark);

    // Partition 1 of the target is down when the job starts: its batches wait, nothing is lost.
    const down = stack.replicas('parking', 1)[0].name;
    await stack.stopProcess(down, 'SIGKILL');
    const { post, accepted } = replayRequest('poison', 'replay-to-parking-1', {
      filter: { group },
      target: 'topic',
      target_topic: 'parking',
      rate_per_sec: 16,
    });
    const job = await post();
    expect(job.status).toBe(202);
    expect(job.body).toMatchObject({ state: 'running', matched: 16, target: 'parking' });
    let blocked: Json;
    for (let i = 0; i < 100 && !blocked?.last_error; i++) {
      await sleep(200);
      blocked = (await call(i, 'GET', `/v1/jobs/${job.body.job_id}`)).body;
    }
    expect(blocked.last_error).toMatch(/^writing to parking: /);
    expect(blocked.written).toBeLessThan(16);

    // The origin's leader of partition 0 dies, the target comes back, the request is sent again.
    const leader = await stack.leader('poison', 0);
    expect(leader).not.toBeNull();
    stack.kill(leader!.name);
    stack.resume(down);
    const again = await accepted();
    expect(again.body.job_id).toBe(job.body.job_id);
    const progress = await jobDone(job.body.job_id, 200);
    expect(progress).toMatchObject({ state: 'done', matched: 16, written: 16, target: 'parking' });
    expect(progress.last_error).toBeUndefined();

    // Every dead letter is in the target exactly once, in the partition its key maps to.
    const landed: string[] = [];
    for (const p of [0, 1, 2]) {
      let offset = hwBefore[p];
      for (;;) {
        const r = await call(0, 'GET', `/v1/topics/parking/partitions/${p}/records?offset=${offset}&encoding=utf8`);
        expect(r.status).toBe(200);
        for (const rec of r.body.records) {
          expect(p).toBe(partitionForKey(Buffer.from(rec.key), 3));
          expect(rec.headers).toEqual(
            expect.arrayContaining([
              { name: 'daftka-replay-job', value: job.body.job_id },
              expect.objectContaining({
                name: 'daftka-replay-of',
                value: expect.stringMatching(/^poison\/[01]\/\d+$/),
              }),
            ]),
          );
          landed.push(rec.value);
        }
        if (r.body.next_offset >= r.body.high_watermark) break;
        offset = r.body.next_offset;
      }
    }
    expect(landed.sort()).toEqual(keys.map((k) => `moved-${k}`).sort());
    // Nothing went back to the origin; each dead letter says where it went.
    const dl = await call(0, 'GET', `/v1/topics/poison/deadletters?group=${group}&limit=100&encoding=utf8`);
    expect(dl.body.deadletters).toHaveLength(16);
    for (const d of dl.body.deadletters) {
      expect(d.state).toBe('replayed');
      expect(d.replay).toMatchObject({ job_id: job.body.job_id, topic: 'parking' });
      expect(d.replay.partition).toBe(partitionForKey(Buffer.from(d.key), 3));
    }
  });
});

describe('dead-letter retention from the Topic spec', () => {
  test('dead letters older than deadLetter.retentionMs are purged by the leader', async () => {
    const group = 'short-lived';
    await startAtEnd(group, 'work');
    await produce('work', 0, ['doomed']);
    expect(await rejectAll(group, 'work', 1, 'Old: news')).toBe(1);
    const listed = async () =>
      (await call(0, 'GET', `/v1/topics/work/deadletters?group=${group}`)).body.deadletters as Json[];
    const first = await listed();
    expect(first).toHaveLength(1);
    const t0 = first[0].dead_lettered_at as number;
    let left = first;
    while (left.length > 0 && Date.now() - t0 < 30_000) {
      await sleep(500);
      left = await listed();
    }
    expect(left).toEqual([]);
    // Not before its time: retention is 4 s (the sweep looks every few seconds after that).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4000);
  });
});
