import { LocalStack, metricValue } from '../../helpers/local-stack';
import { produceIdempotent, readAll, sleep, type Attempt, type FetchAnswer } from './client';

/**
 * Issue 6 end to end on the real stack (nats-server + 2 partitions × RF 3 replica processes +
 * the gateway, as `npm run local` runs them): a partition leader SIGKILLed during a stream of
 * idempotent produces, and NATS taken away (and a leader change while it is away).
 */

jest.setTimeout(120_000);

let stack: LocalStack;
const TOPIC = 't';

beforeAll(async () => {
  stack = await LocalStack.start({ topics: [{ name: TOPIC, partitions: 2, replicationFactor: 3 }] });
}, 150_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

/** Fail with the gateway's and the replicas' log tails, which is what one needs to debug. */
function withLogs(msg: string): string {
  const names = ['gateway', ...stack.replicas(TOPIC).map((r) => r.name)];
  return `${msg}\n${names.map((n) => `--- ${n}\n${stack.logTail(n, 1200)}`).join('\n')}`;
}

describe('leader killed (SIGKILL) during a stream of idempotent produces', () => {
  test('every acknowledged record is fetched exactly once, at its acknowledged offset; the client sees only retryable errors', async () => {
    const gatewayPid = stack.gatewayPid;
    const run = `kill-${Date.now()}`;
    const acked = new Map<string, { partition: number; offset: number }>();
    const failures: Attempt[] = [];
    const givenUp: string[] = [];
    let stop = false;
    let sent = 0;

    const producer = async (w: number) => {
      for (let n = 0; !stop; n++) {
        const count = 1 + (n % 3);
        // Keyless records: with an Idempotency-Key their partition is murmur2(key) % 2, so the
        // stream covers both partitions and every retry lands where the first attempt did.
        const records = Array.from({ length: count }, (_, j) => ({
          value: `${run}/w${w}/n${n}/r${j}`,
          headers: { writer: String(w) },
        }));
        sent += count;
        const r = await produceIdempotent(stack, TOPIC, records, `${run}-w${w}-n${n}`, { deadlineMs: 40_000 });
        failures.push(...r.failures);
        if (r.ok === null) {
          givenUp.push(`w${w}/n${n}: ${JSON.stringify(r.final ?? r.failures.at(-1))}`);
          continue;
        }
        r.ok.results.forEach((res, j) => acked.set(records[j].value, { partition: res.partition, offset: res.offset }));
      }
    };

    const writers = Array.from({ length: 4 }, (_, w) => producer(w));
    const killed: string[] = [];
    try {
      for (const p of [0, 1]) {
        await sleep(1500);
        const leader = await stack.waitForGroup(TOPIC, p);
        const before = acked.size;
        stack.kill(leader.name, 'SIGKILL');
        killed.push(`${leader.name} (term ${leader.term})`);
        const next = await stack.waitForLeader(TOPIC, p, { not: leader.name, timeoutMs: 30_000 });
        expect(next.term).toBeGreaterThan(leader.term);
        // Keep producing until the stream has clearly moved on past the failover.
        const until = Date.now() + 20_000;
        while (acked.size < before + 40 && Date.now() < until) await sleep(100);
      }
      await sleep(1000);
    } finally {
      stop = true;
      await Promise.all(writers);
    }

    // Only retryable errors (503/504, retryable=true) before success; nothing given up.
    const bad = failures.filter((f) => !((f.status === 503 || f.status === 504) && f.retryable));
    expect({ bad, givenUp }).toEqual({ bad: [], givenUp: [] });
    for (const f of failures) expect(f.retryAfter).not.toBeNull();
    expect(acked.size).toBe(sent);

    // Read everything back: each acknowledged value exactly once, where the gateway said.
    const seen = new Map<string, Array<{ partition: number; offset: number }>>();
    for (const p of [0, 1]) {
      const recs = await readAll(stack, TOPIC, p);
      recs.forEach((r, i) => expect(r.offset).toBe(i)); // dense, in order
      for (const r of recs) {
        if (typeof r.value !== 'string' || !r.value.startsWith(`${run}/`)) continue;
        const l = seen.get(r.value) ?? [];
        l.push({ partition: p, offset: r.offset });
        seen.set(r.value, l);
      }
    }
    const problems: string[] = [];
    for (const [value, at] of acked) {
      const found = seen.get(value) ?? [];
      if (found.length !== 1) problems.push(`${value}: acked at ${JSON.stringify(at)}, found ${JSON.stringify(found)}`);
      else if (found[0].partition !== at.partition || found[0].offset !== at.offset)
        problems.push(`${value}: acked at ${JSON.stringify(at)}, stored at ${JSON.stringify(found[0])}`);
    }
    for (const [value, at] of seen)
      if (!acked.has(value)) problems.push(`${value}: never acked, stored at ${JSON.stringify(at)}`);
    if (problems.length > 0)
      throw new Error(withLogs(`${problems.length} problems:\n${problems.slice(0, 30).join('\n')}`));

    expect(stack.gatewayPid).toBe(gatewayPid);
    const codes = failures.reduce<Record<string, number>>(
      (m, f) => ((m[`${f.status} ${f.code}`] = (m[`${f.status} ${f.code}`] ?? 0) + 1), m),
      {},
    );
    console.log(
      `leader kill: killed ${killed.join(', ')}; ${acked.size} records acked; retryable answers seen: ${JSON.stringify(codes)}`,
    );
  });
});

describe('NATS stopped', () => {
  async function readyz(): Promise<{ status: number; body: { status: string; nats?: string } }> {
    const r = await stack.http<{ status: string; nats?: string }>('GET', '/readyz');
    return { status: r.status, body: r.body };
  }
  async function waitReadyz(want: string, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    let last = await readyz();
    while (last.body.status !== want && Date.now() < deadline) {
      await sleep(200);
      last = await readyz();
    }
    return last;
  }
  async function gatewayMetric(name: string, labels: Record<string, string> = {}) {
    const r = await stack.http<string>('GET', '/metrics');
    return metricValue(r.body, name, labels) ?? 0;
  }
  async function produceAndRead(partition: number, value: string) {
    const r = await produceIdempotent(stack, TOPIC, [{ partition, value }], `nats-${value}`, { deadlineMs: 30_000 });
    if (r.ok === null) throw new Error(withLogs(`produce ${value} failed: ${JSON.stringify(r)}`));
    const bad = r.failures.filter((f) => !((f.status === 503 || f.status === 504) && f.retryable));
    expect(bad).toEqual([]);
    const { offset } = r.ok.results[0];
    const f = await stack.http<FetchAnswer>(
      'GET',
      `/v1/topics/${TOPIC}/partitions/${partition}/records?offset=${offset}&encoding=utf8`,
    );
    expect(f.status).toBe(200);
    expect(f.body.records[0]).toMatchObject({ offset, value });
    return r;
  }

  test('produce and fetch keep working through redirects, also after a leader change; /readyz degraded; NATS back → connected', async () => {
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', nats: 'connected' } });
    expect(await gatewayMetric('daftka_gateway_nats_connected')).toBe(1);

    await stack.stopNats('SIGKILL');
    const degraded = await waitReadyz('degraded', 15_000);
    expect(degraded).toMatchObject({ status: 200, body: { status: 'degraded', nats: 'disconnected' } });
    expect(await gatewayMetric('daftka_gateway_nats_connected')).toBe(0);

    for (const p of [0, 1]) await produceAndRead(p, `no-nats-${p}`);

    // A leader change nobody announces: the gateway must find the new leader by redirects.
    const redirectsBefore =
      (await gatewayMetric('daftka_gateway_redirects_total', { reason: 'not_leader' })) +
      (await gatewayMetric('daftka_gateway_redirects_total', { reason: 'unreachable' }));
    // One failure at a time: the replica killed by the previous test must be back first.
    const old = await stack.waitForGroup(TOPIC, 0);
    stack.kill(old.name, 'SIGKILL');
    const t0 = Date.now();
    const r = await produceAndRead(0, 'after-leader-change');
    const recoveryMs = Date.now() - t0;
    // Election (150–300 ms) plus finding the new leader by redirects; generous for a loaded box.
    expect(recoveryMs).toBeLessThan(15_000);
    const now = await stack.waitForLeader(TOPIC, 0);
    expect(now.term).toBeGreaterThan(old.term);
    const redirectsAfter =
      (await gatewayMetric('daftka_gateway_redirects_total', { reason: 'not_leader' })) +
      (await gatewayMetric('daftka_gateway_redirects_total', { reason: 'unreachable' }));
    expect(redirectsAfter).toBeGreaterThan(redirectsBefore);
    // Still degraded (NATS is still down) and still serving reads on the other partition.
    expect((await readyz()).body.status).toBe('degraded');
    await produceAndRead(1, 'no-nats-again-1');

    stack.startNats();
    const back = await waitReadyz('ready', 20_000);
    expect(back).toEqual({ status: 200, body: { status: 'ready', nats: 'connected' } });
    expect(await gatewayMetric('daftka_gateway_nats_connected')).toBe(1);
    expect(await gatewayMetric('daftka_gateway_nats_reconnects_total')).toBeGreaterThanOrEqual(1);
    await produceAndRead(0, 'nats-back-0');
    console.log(
      `NATS down: leader change ${old.name} → ${now.name} (term ${now.term}); produce answered after ${recoveryMs} ms; retryable answers first: ${JSON.stringify(r.failures.map((f) => `${f.status} ${f.code} ${f.ms.toFixed(0)} ms`))}`,
    );
  });
});
