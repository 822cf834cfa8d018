import { LocalStack } from '../../helpers/local-stack';

/**
 * Issue 19 items 3 and 4 on the real stack (nats-server + replica processes + the gateway):
 * ordering keys with many consumers, redeliveries and a leader killed in the middle; delayed
 * delivery (deliver_after_ms) in an unordered and an ordered group; expiry (ttl_ms) to dead
 * letters and to drop — while the cumulative fetch keeps returning the log as written.
 *
 *   keyed   1 partition × RF 3 — ordering keys, leader kill
 *   timed   1 partition × RF 1 — delays and expiries
 */

jest.setTimeout(60_000);

let stack: LocalStack;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

beforeAll(async () => {
  stack = await LocalStack.start({
    topics: [
      { name: 'keyed', partitions: 1, replicationFactor: 3 },
      { name: 'timed', partitions: 1, replicationFactor: 1 },
    ],
    replicaEnv: {
      DAFTKA_ELECTION_TIMEOUT_MS: '300',
      DAFTKA_HEARTBEAT_MS: '50',
      DAFTKA_LEASE_SWEEP_MS: '100',
      DAFTKA_LEASE_BACKOFF_INITIAL_MS: '0',
    },
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retry on the retryable answers of a stack that may be electing (503/504). */
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await fetch(stack.url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    })
      .then(async (res) => {
        const text = await res.text();
        return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as Json) };
      })
      .catch((e: unknown) => ({ status: 0, body: { detail: String(e) } as Json }));
    if (!(r.status === 0 || ((r.status === 503 || r.status === 504) && r.body?.retryable)) || Date.now() > deadline)
      return r;
    await sleep(200);
  }
}

const leaseFetch = (group: string, body: Json) => call('POST', `/v1/groups/${group}/fetch`, body);
const acks = (group: string, list: Json[]) => call('POST', `/v1/groups/${group}/acks`, { acks: list });

describe('leased groups: ordering keys, delayed delivery and expiry on the real stack', () => {
  test('ordering keys: six consumers with releases and a leader kill — one record per key out at a time, each key in offset order, every record accepted', async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
    // 8 keys × 10 records, interleaved, and 8 keyless records among them.
    const records: Array<{ key: string | null; value: string }> = [];
    for (let n = 0; n < 10; n++) {
      for (const k of keys) records.push({ key: k, value: `${k}-${n}` });
      if (n < 8) records.push({ key: null, value: `free-${n}` });
    }
    const p = await call('POST', '/v1/topics/keyed/records', {
      records: records.map((r) => ({ ...r, partition: 0 })),
    });
    expect(p.status).toBe(200);
    const keyOf = new Map<number, string | null>(
      p.body.results.map((r: Json, i: number) => [r.offset, records[i].key]),
    );
    const group = 'keyed-workers';
    const pol = await call('PUT', `/v1/groups/${group}/policy`, {
      topic: 'keyed',
      ordering_key: true,
      lease_ms: 5000,
      max_attempts: 20,
    });
    expect(pol.status).toBe(200);
    expect(pol.body.policy).toMatchObject({ ordering_key: true, expired: 'dead_letter', ordered: false });

    /** key → until when a consumer holds a valid lease on a record of it. */
    const held = new Map<string, number>();
    /** Offsets whose accept was sent (before the ack leaves, so no race with another consumer). */
    const acceptSent = new Set<number>();
    const accepted = new Set<number>();
    const violations: string[] = [];
    let releases = 0;
    let killed = false;
    let done = false;

    const consumer = async (id: number) => {
      for (let round = 0; !done && round < 200; round++) {
        const f = await leaseFetch(group, { topics: ['keyed'], max_records: 3, wait_ms: 1000, encoding: 'utf8' });
        if (f.status !== 200) continue;
        const list: Json[] = [];
        for (const r of f.body.records) {
          const key = keyOf.get(r.offset);
          expect(key).toBe(r.key);
          if (key === null || key === undefined) {
            list.push({ token: r.lease_token, action: 'accept', offset: r.offset });
            continue;
          }
          const until = held.get(key);
          if (until !== undefined && Date.now() < until - 500)
            violations.push(`consumer ${id} got ${key}@${r.offset} while it was held`);
          // Every earlier record of the key was accepted first.
          for (const [o, k] of keyOf)
            if (k === key && o < r.offset && !acceptSent.has(o))
              violations.push(`${key}@${r.offset} before ${key}@${o} was accepted`);
          held.set(key, r.lease_expires_at);
          // A quarter of the deliveries are released: the same record must come back first.
          const release = r.delivery_attempt < 3 && (r.offset * 7 + r.delivery_attempt * 3 + id) % 4 === 0;
          if (release) releases++;
          list.push({ token: r.lease_token, action: release ? 'release' : 'accept', offset: r.offset, key });
        }
        if (list.length === 0) continue;
        for (const a of list) {
          if (a.key !== undefined) held.delete(a.key);
          if (a.action === 'accept') acceptSent.add(a.offset);
        }
        await sleep(id * 5);
        const a = await acks(
          group,
          list.map((x) => ({ token: x.token, action: x.action })),
        );
        if (a.status === 200)
          a.body.results.forEach((res: Json, i: number) => {
            if (res.status === 'ok' && list[i].action === 'accept') accepted.add(list[i].offset);
          });
      }
    };

    const killer = (async () => {
      while (accepted.size < records.length / 2 && !done) await sleep(50);
      const leader = await stack.leader('keyed', 0);
      expect(leader).not.toBeNull();
      stack.kill(leader!.name);
      killed = true;
    })();
    // Done when the group's committed offset reached the end (an ack whose answer was lost in
    // the leader kill may have applied: the log, not the answers, says when all are finished).
    const watcher = (async () => {
      while (!done) {
        await sleep(300);
        const off = await call('GET', `/v1/groups/${group}/offsets?topic=keyed`);
        if (off.status === 200 && off.body.lag === 0) done = true;
      }
    })();
    await Promise.all([...Array.from({ length: 6 }, (_, i) => consumer(i)), killer, watcher]);

    expect(violations).toEqual([]);
    expect(killed).toBe(true);
    expect(releases).toBeGreaterThan(5);
    expect(done).toBe(true);
    // Every record was accepted: none went to the dead letters, and each accept was sent.
    expect((await call('GET', `/v1/topics/keyed/deadletters?group=${group}`)).body.deadletters).toEqual([]);
    expect([...acceptSent].sort((a, b) => a - b)).toEqual([...keyOf.keys()].sort((a, b) => a - b));
  });

  test('delayed delivery: an unordered group gets the records behind a delayed one at once (held apart, the committed offset passes it) and, across a restart, the delayed one at its time; an ordered group waits for it', async () => {
    const base = (await call('GET', '/v1/topics/timed')).body.partitions[0].high_watermark as number;
    const p = await call('POST', '/v1/topics/timed/records', {
      records: [
        { value: 'later', deliver_after_ms: 6000, partition: 0 },
        { value: 'now-1', partition: 0 },
        { value: 'now-2', partition: 0 },
      ],
    });
    expect(p.status).toBe(200);
    for (const g of ['delay-free', 'delay-ordered'])
      await call('POST', `/v1/groups/${g}/offsets`, { offsets: [{ topic: 'timed', partition: 0, offset: base }] });
    await call('PUT', '/v1/groups/delay-ordered/policy', { topic: 'timed', ordered: true });

    const first = await leaseFetch('delay-free', { topics: ['timed'], max_records: 10, encoding: 'utf8' });
    expect(first.body.records.map((r: Json) => r.value)).toEqual(['now-1', 'now-2']);
    const blocked = await leaseFetch('delay-ordered', { topics: ['timed'], max_records: 10, encoding: 'utf8' });
    expect(blocked.body.records).toEqual([]);
    await acks(
      'delay-free',
      first.body.records.map((r: Json) => ({ token: r.lease_token, action: 'accept' })),
    );

    // Held apart: the committed offset passed it (lag 0), the group counts it as waiting.
    expect((await call('GET', '/v1/groups/delay-free/offsets?topic=timed')).body.lag).toBe(0);
    const held = await call('GET', '/v1/groups/delay-free/policy?topic=timed');
    expect(held.body.partitions[0]).toMatchObject({ waiting: 1, leased: 0 });
    // The replica restarts (kill -9): the held-apart record is in its persisted state.
    const before = await stack.leader('timed', 0);
    expect(before).not.toBeNull();
    stack.kill(before!.name);
    let after = await stack.waitForLeader('timed', 0, { timeoutMs: 60_000 });
    for (let i = 0; after.pid === before!.pid && i < 300; i++) {
      await sleep(200);
      after = await stack.waitForLeader('timed', 0, { timeoutMs: 60_000 });
    }
    expect(after.pid).not.toBe(before!.pid);
    // The delayed record comes to a long-poll at its time, never before.
    const got: Json[] = [];
    for (let i = 0; got.length === 0 && i < 10; i++)
      got.push(
        ...(await leaseFetch('delay-free', { topics: ['timed'], max_records: 10, wait_ms: 5000, encoding: 'utf8' }))
          .body.records,
      );
    const at = Date.now();
    expect(got.map((r: Json) => r.value)).toEqual(['later']);
    expect(typeof got[0].deliver_at).toBe('number');
    expect(at).toBeGreaterThanOrEqual(got[0].deliver_at);
    // The ordered group now gets the three in offset order.
    const inOrder: string[] = [];
    for (let i = 0; inOrder.length < 3 && i < 10; i++) {
      const f = await leaseFetch('delay-ordered', {
        topics: ['timed'],
        max_records: 10,
        wait_ms: 2000,
        encoding: 'utf8',
      });
      for (const r of f.body.records) inOrder.push(r.value);
      if (f.body.records.length)
        await acks(
          'delay-ordered',
          f.body.records.map((r: Json) => ({ token: r.lease_token, action: 'accept' })),
        );
    }
    expect(inOrder).toEqual(['later', 'now-1', 'now-2']);
  });

  test('expiry: an expired record is never offered — dead-lettered (error class expired) or dropped as the policy says; the cumulative fetch still returns it', async () => {
    const base = (await call('GET', '/v1/topics/timed')).body.partitions[0].high_watermark as number;
    const p = await call('POST', '/v1/topics/timed/records', {
      records: [
        { key: 'gone', value: 'short-lived', ttl_ms: 300, partition: 0 },
        { value: 'stays', partition: 0 },
      ],
    });
    expect(p.status).toBe(200);
    for (const g of ['ttl-dl', 'ttl-drop'])
      await call('POST', `/v1/groups/${g}/offsets`, { offsets: [{ topic: 'timed', partition: 0, offset: base }] });
    await call('PUT', '/v1/groups/ttl-drop/policy', { topic: 'timed', expired: 'drop' });
    await sleep(800);

    for (const g of ['ttl-dl', 'ttl-drop']) {
      const f = await leaseFetch(g, { topics: ['timed'], max_records: 10, wait_ms: 500, encoding: 'utf8' });
      expect(f.body.records.map((r: Json) => r.value)).toEqual(['stays']);
      await acks(
        g,
        f.body.records.map((r: Json) => ({ token: r.lease_token, action: 'accept' })),
      );
      expect((await call('GET', `/v1/groups/${g}/offsets?topic=timed`)).body.lag).toBe(0);
    }
    const dl = await call('GET', '/v1/topics/timed/deadletters?group=ttl-dl&encoding=utf8');
    expect(dl.body.deadletters).toHaveLength(1);
    expect(dl.body.deadletters[0]).toMatchObject({
      value: 'short-lived',
      key: 'gone',
      offset: base,
      group: 'ttl-dl',
      attempts: 0,
      error_class: 'expired',
    });
    const dropped = await call('GET', '/v1/topics/timed/deadletters?group=ttl-drop');
    expect(dropped.body.deadletters).toEqual([]);

    // The log as written: both records, the expiry shown.
    const log = await call('GET', `/v1/topics/timed/partitions/0/records?offset=${base}&encoding=utf8`);
    expect(log.body.records.map((r: Json) => r.value)).toEqual(['short-lived', 'stays']);
    expect(typeof log.body.records[0].expires_at).toBe('number');
  });
});
