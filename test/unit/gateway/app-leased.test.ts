import { DaftkaError } from '../../../common/errors';
import { shareOut } from '../../../gateway/handlers/leased';
import { LeaseTokens } from '../../../gateway/lease-token';
import { FakeLeased } from './fake-leased';
import { topic } from './fixtures';
import { startGateway, type Harness, type Json } from './harness';

const SECRET = 'test-secret-test-secret-test-secret-0123';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('gateway leased groups', () => {
  let gw: Harness;
  let fake: FakeLeased;
  beforeEach(async () => {
    fake = new FakeLeased();
    gw = await startGateway({
      topics: [
        topic('orders', { partitions: 1, access: { producers: ['*'], consumers: ['*'], admins: ['*'] } }),
        topic('wide', { partitions: 4 }),
      ],
      leased: { client: fake, tokens: new LeaseTokens(SECRET) },
    });
    fake.produce('orders', 0, ['a', 'b', 'c']);
  });
  afterEach(() => gw.close());

  const fetchLeased = (body: Json, group = 'billing') => gw.req('POST', `/v1/groups/${group}/fetch`, { body });
  const ack = (acks: Json[], group = 'billing') => gw.req('POST', `/v1/groups/${group}/acks`, { body: { acks } });

  test('fetch hands out records with attempt and token; accept commits the contiguous prefix', async () => {
    const f = await fetchLeased({ topics: ['orders'], max_records: 2, encoding: 'utf8' });
    expect(f.status).toBe(200);
    expect(f.json.records).toHaveLength(2);
    expect(f.json.records[0]).toMatchObject({
      topic: 'orders',
      partition: 0,
      offset: 0,
      value: 'a',
      delivery_attempt: 1,
      headers: [{ name: 'origin', value: 'test' }],
    });
    expect(typeof f.json.records[0].lease_token).toBe('string');
    expect(f.json.records[0].lease_expires_at).toBeGreaterThan(Date.now());
    // Accepting the second only does not commit (gap at 0); the first closes the gap.
    const a1 = await ack([{ token: f.json.records[1].lease_token, action: 'accept' }]);
    expect(a1.status).toBe(200);
    expect(a1.json).toEqual({ results: [{ status: 'ok' }] });
    let p = await gw.req('GET', '/v1/groups/billing/policy?topic=orders');
    expect(p.json.partitions[0]).toMatchObject({ committed_offset: null, leased: 1, done: 1 });
    await ack([{ token: f.json.records[0].lease_token, action: 'accept' }]);
    p = await gw.req('GET', '/v1/groups/billing/policy?topic=orders');
    expect(p.json.partitions[0]).toMatchObject({ committed_offset: 2, leased: 0, done: 0 });
    // The next fetch gets only what is left.
    const f2 = await fetchLeased({ topics: ['orders'] });
    expect(f2.json.records.map((r: Json) => r.offset)).toEqual([2]);
  });

  test('a late ack for a redelivered record is refused; the current one is accepted', async () => {
    const f1 = await fetchLeased({ topics: ['orders'], max_records: 1, lease_ms: 100 });
    await sleep(150);
    const f2 = await fetchLeased({ topics: ['orders'], max_records: 1, lease_ms: 1000 });
    expect(f2.json.records[0]).toMatchObject({ offset: 0, delivery_attempt: 2 });
    const stale = await ack([{ token: f1.json.records[0].lease_token, action: 'accept' }]);
    expect(stale.status).toBe(409);
    expect(stale.json).toMatchObject({ code: 'CONFLICT', results: [{ status: 'stale_attempt' }] });
    const ok = await ack([{ token: f2.json.records[0].lease_token, action: 'accept' }]);
    expect(ok.json.results).toEqual([{ status: 'ok' }]);
  });

  test('an expired lease answers lease_expired (409 when nothing was applied)', async () => {
    const f = await fetchLeased({ topics: ['orders'], max_records: 1, lease_ms: 100 });
    await sleep(150);
    const r = await ack([{ token: f.json.records[0].lease_token, action: 'accept' }]);
    expect(r.status).toBe(409);
    expect(r.json.results[0].status).toBe('lease_expired');
  });

  test('forged, garbled and other-group tokens are invalid_token; all invalid → 400 INVALID_TOKEN', async () => {
    const f = await fetchLeased({ topics: ['orders'], max_records: 2 });
    const good = f.json.records[0].lease_token as string;
    const [payload, mac] = good.split('.');
    const forgedPayload = Buffer.from(payload, 'base64url');
    forgedPayload[forgedPayload.length - 13] ^= 1; // attempt
    const forged = `${forgedPayload.toString('base64url')}.${mac}`;
    const otherKey = new LeaseTokens('another-secret-another-secret-another-0').sign({
      principal: 'anonymous',
      group: 'billing',
      topic: 'orders',
      partition: 0,
      offset: 0,
      attempt: 1,
      leaseUntilMs: Date.now() + 10_000,
    });
    const bad = await ack([
      { token: forged, action: 'accept' },
      { token: 'not-a-token', action: 'accept' },
      { token: otherKey, action: 'accept' },
    ]);
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('INVALID_TOKEN');
    expect(bad.json.results.map((r: Json) => r.status)).toEqual(['invalid_token', 'invalid_token', 'invalid_token']);
    const otherGroup = await ack([{ token: good, action: 'accept' }], 'shipping');
    expect(otherGroup.status).toBe(400);
    expect(otherGroup.json.results[0]).toMatchObject({
      status: 'invalid_token',
      detail: expect.stringContaining('another group'),
    });
    // A batch with some good acks applies them and reports the rest.
    const mixed = await ack([
      { token: good, action: 'accept' },
      { token: 'garbage.garbage', action: 'accept' },
    ]);
    expect(mixed.status).toBe(200);
    expect(mixed.json.results.map((r: Json) => r.status)).toEqual(['ok', 'invalid_token']);
  });

  test('bad input is a clear 400: negative delay, delay with the wrong action, unknown action, no acks', async () => {
    const f = await fetchLeased({ topics: ['orders'], max_records: 1 });
    const token = f.json.records[0].lease_token;
    const neg = await ack([{ token, action: 'release', delay_ms: -5 }]);
    expect(neg.status).toBe(400);
    expect(neg.json).toMatchObject({ code: 'INVALID_REQUEST', pointer: '/acks/0/delay_ms' });
    const wrong = await ack([{ token, action: 'accept', delay_ms: 5 }]);
    expect(wrong.json).toMatchObject({ code: 'INVALID_REQUEST', pointer: '/acks/0/delay_ms' });
    expect((await ack([{ token, action: 'nack' }])).json).toMatchObject({
      code: 'INVALID_REQUEST',
      pointer: '/acks/0/action',
    });
    expect((await ack([])).status).toBe(400);
    expect((await fetchLeased({ topics: [] })).status).toBe(400);
    expect((await fetchLeased({ topics: ['orders'], lease_ms: 5 })).json).toMatchObject({ pointer: '/lease_ms' });
    expect((await fetchLeased({ topics: ['nope'] })).json).toMatchObject({
      code: 'TOPIC_NOT_FOUND',
      pointer: '/topics/0',
    });
    expect((await gw.req('POST', '/v1/groups/bad%20name/fetch', { body: { topics: ['orders'] } })).status).toBe(400);
  });

  test('release redelivers with attempt + 1; reject dead-letters with full origin', async () => {
    const f = await fetchLeased({ topics: ['orders'], max_records: 2 });
    const [r0, r1] = f.json.records;
    const a = await ack([
      { token: r0.lease_token, action: 'release', delay_ms: 0, error: 'Timeout: upstream' },
      { token: r1.lease_token, action: 'reject', error: 'SchemaError: missing id' },
    ]);
    expect(a.json.results).toEqual([{ status: 'ok' }, { status: 'ok', dead_lettered: true }]);
    const again = await fetchLeased({ topics: ['orders'], max_records: 1 });
    expect(again.json.records[0]).toMatchObject({ offset: 0, delivery_attempt: 2 });
    const dl = await gw.req('GET', '/v1/topics/orders/deadletters?encoding=utf8');
    expect(dl.status).toBe(200);
    expect(dl.json.deadletters).toHaveLength(1);
    expect(dl.json.deadletters[0]).toMatchObject({
      id: '0-0',
      topic: 'orders',
      partition: 0,
      offset: 1,
      group: 'billing',
      value: 'b',
      headers: [{ name: 'origin', value: 'test' }],
      attempts: 1,
      last_error: 'SchemaError: missing id',
      error_class: 'SchemaError',
      state: 'active',
    });
    const one = await gw.req('GET', '/v1/topics/orders/deadletters/0-0');
    expect(one.json.value_b64).toBe(Buffer.from('b').toString('base64'));
    expect((await gw.req('GET', '/v1/topics/orders/deadletters/0-9')).status).toBe(404);
    expect((await gw.req('GET', '/v1/topics/orders/deadletters?error_class=Other')).json.deadletters).toEqual([]);
  });

  test('extend returns a new token; policy PUT/GET; unknown group is 404', async () => {
    expect((await gw.req('GET', '/v1/groups/nobody/policy?topic=orders')).json.code).toBe('GROUP_NOT_FOUND');
    const put = await gw.req('PUT', '/v1/groups/billing/policy', {
      body: { topic: 'orders', max_attempts: 2, backoff: { initial_ms: 10, max_ms: 50 }, ordered: true },
    });
    expect(put.status).toBe(200);
    expect(put.json.policy).toMatchObject({ max_attempts: 2, ordered: true, backoff: { initial_ms: 10, max_ms: 50 } });
    expect(put.json.override).toEqual({ max_attempts: 2, backoff: { initial_ms: 10, max_ms: 50 }, ordered: true });
    const bad = await gw.req('PUT', '/v1/groups/billing/policy', { body: { topic: 'orders', max_attempts: 0 } });
    expect(bad.json).toMatchObject({ code: 'INVALID_REQUEST', pointer: '/max_attempts' });
    const inverted = await gw.req('PUT', '/v1/groups/billing/policy', {
      body: { topic: 'orders', backoff: { initial_ms: 100, max_ms: 10 } },
    });
    expect(inverted.status).toBe(400);
    const f = await fetchLeased({ topics: ['orders'], max_records: 3 });
    // Ordered: one holder at a time.
    expect((await fetchLeased({ topics: ['orders'] })).json.records).toEqual([]);
    const e = await ack([{ token: f.json.records[0].lease_token, action: 'extend', lease_ms: 5000 }]);
    expect(e.json.results[0]).toMatchObject({ status: 'ok', lease_expires_at: expect.any(Number) });
    const newToken = e.json.results[0].lease_token as string;
    expect(newToken).not.toBe(f.json.records[0].lease_token);
    expect((await ack([{ token: newToken, action: 'accept' }])).json.results[0].status).toBe('ok');
    // Clearing the policy: back to defaults.
    const cleared = await gw.req('PUT', '/v1/groups/billing/policy', { body: { topic: 'orders' } });
    expect(cleared.json.override).toEqual({});
    expect(cleared.json.policy.ordered).toBe(false);
  });

  test('policy ordering_key and expired: set, shown, cleared; ordered with ordering_key or an unknown expired action is 400', async () => {
    const put = await gw.req('PUT', '/v1/groups/keyed/policy', {
      body: { topic: 'orders', ordering_key: true, expired: 'drop' },
    });
    expect(put.status).toBe(200);
    expect(put.json.policy).toMatchObject({ ordering_key: true, expired: 'drop', ordered: false });
    expect(put.json.override).toEqual({ ordering_key: true, expired: 'drop' });
    const both = await gw.req('PUT', '/v1/groups/keyed/policy', {
      body: { topic: 'orders', ordering_key: true, ordered: true },
    });
    expect(both.status).toBe(400);
    expect(both.json.detail).toMatch(/exclude each other/);
    const unknown = await gw.req('PUT', '/v1/groups/keyed/policy', { body: { topic: 'orders', expired: 'keep' } });
    expect(unknown.json).toMatchObject({ code: 'INVALID_REQUEST', pointer: '/expired' });
    // The refused ones changed nothing.
    const get = await gw.req('GET', '/v1/groups/keyed/policy?topic=orders');
    expect(get.json.override).toEqual({ ordering_key: true, expired: 'drop' });
    const cleared = await gw.req('PUT', '/v1/groups/keyed/policy', { body: { topic: 'orders' } });
    expect(cleared.json.policy).toMatchObject({ ordering_key: false, expired: 'dead_letter' });
  });

  test('poison records reach the dead-letter stream after max_attempts; replay returns them once', async () => {
    await gw.req('PUT', '/v1/groups/billing/policy', { body: { topic: 'orders', max_attempts: 2 } });
    for (let i = 0; i < 2; i++) {
      const f = await fetchLeased({ topics: ['orders'], max_records: 1 });
      expect(f.json.records[0]).toMatchObject({ offset: 0, delivery_attempt: i + 1 });
      await ack([{ token: f.json.records[0].lease_token, action: 'release', error: 'Crash: boom' }]);
    }
    let dl = await gw.req('GET', '/v1/topics/orders/deadletters');
    expect(dl.json.deadletters[0]).toMatchObject({ offset: 0, attempts: 2, error_class: 'Crash', state: 'active' });
    // Dry run counts, writes nothing.
    const dry = await gw.req('POST', '/v1/topics/orders/deadletters:replay', { body: { dry_run: true } });
    expect(dry.status).toBe(202);
    expect(dry.json).toMatchObject({ state: 'done', dry_run: true, matched: 1, written: 0 });
    const job = await gw.req('POST', '/v1/topics/orders/deadletters:replay', {
      body: { filter: { group: 'billing' }, rate_per_sec: 1000 },
      headers: { 'idempotency-key': 'replay-1' },
    });
    expect(job.status).toBe(202);
    expect(job.headers.get('location')).toBe(`/v1/jobs/${job.json.job_id}`);
    expect(job.json).toMatchObject({ state: 'running', matched: 1, written: 0 });
    // The clock stands still between the two passes: the first spends the job's only token on the
    // batch, and the second must still finish the job (its last step writes nothing, needs no token).
    const now = jest.spyOn(Date, 'now').mockReturnValue(Date.now());
    try {
      await fake.tick();
      await fake.tick();
    } finally {
      now.mockRestore();
    }
    const done = await gw.req('GET', `/v1/jobs/${job.json.job_id}`);
    expect(done.json).toMatchObject({ state: 'done', matched: 1, written: 1, skipped: 0 });
    // The same request again is the same job: nothing more is written.
    const again = await gw.req('POST', '/v1/topics/orders/deadletters:replay', {
      body: { filter: { group: 'billing' }, rate_per_sec: 1000 },
      headers: { 'idempotency-key': 'replay-1' },
    });
    expect(again.json.job_id).toBe(job.json.job_id);
    await fake.tick();
    // Another job finds the entry replayed.
    const other = await gw.req('POST', '/v1/topics/orders/deadletters:replay', { body: {} });
    await fake.tick();
    await fake.tick();
    expect((await gw.req('GET', `/v1/jobs/${other.json.job_id}`)).json).toMatchObject({
      state: 'done',
      written: 0,
      skipped: 1,
    });
    expect(fake.part('orders', 0).state.nextOffset).toBe(4);
    dl = await gw.req('GET', '/v1/topics/orders/deadletters?state=replayed');
    expect(dl.json.deadletters[0]).toMatchObject({ state: 'replayed', replay: { job_id: job.json.job_id, offset: 3 } });
    // The replayed record comes back to the group with its origin in headers.
    const f = await fetchLeased({ topics: ['orders'], max_records: 10, encoding: 'utf8' });
    const back = f.json.records.find((r: Json) => r.offset === 3);
    expect(back.value).toBe('a');
    expect(back.headers).toEqual(
      expect.arrayContaining([
        { name: 'daftka-replay-of', value: 'orders/0/0' },
        { name: 'daftka-replay-job', value: job.json.job_id },
      ]),
    );
    expect((await gw.req('GET', '/v1/jobs/orders.doesnotexist')).status).toBe(404);
    // Replay to another topic: the target is named, is not the origin, is visible and writable.
    const replayTo = (body: Json) => gw.req('POST', '/v1/topics/orders/deadletters:replay', { body });
    const bad = await replayTo({ target: 'topic' });
    expect([bad.status, bad.json.detail]).toEqual([400, expect.stringContaining('target_topic is required')]);
    const own = await replayTo({ target: 'topic', target_topic: 'orders' });
    expect([own.status, own.json.detail]).toEqual([400, expect.stringContaining("dead letters' own topic")]);
    expect((await replayTo({ target: 'topic', target_topic: 'nope' })).status).toBe(404);
    const stray = await replayTo({ target_topic: 'wide' });
    expect([stray.status, stray.json.detail]).toEqual([400, expect.stringContaining('only allowed with target')]);
    // These in-process replicas have no NATS to find the other topic's leaders: 503, nothing started.
    const noNats = await replayTo({ target: 'topic', target_topic: 'wide' });
    expect([noNats.status, noNats.json.code, noNats.json.detail]).toEqual([
      503,
      'UNAVAILABLE',
      expect.stringContaining('needs the NATS control channel'),
    ]);
  });

  test('archive and purge', async () => {
    const f = await fetchLeased({ topics: ['orders'], max_records: 3 });
    await ack(
      f.json.records.map((r: Json, i: number) => ({
        token: r.lease_token,
        action: 'reject',
        error: i ? 'B: x' : 'A: y',
      })),
    );
    const ar = await gw.req('POST', '/v1/topics/orders/deadletters:archive', {
      body: { filter: { error_class: 'B' } },
    });
    expect(ar.json).toEqual({ archived: 2 });
    expect((await gw.req('GET', '/v1/topics/orders/deadletters?state=active')).json.deadletters).toHaveLength(1);
    const pu = await gw.req('POST', '/v1/topics/orders/deadletters:purge', { body: { filter: { ids: ['0-0'] } } });
    expect(pu.json).toEqual({ purged: 1 });
    expect((await gw.req('GET', '/v1/topics/orders/deadletters')).json.deadletters.map((d: Json) => d.id)).toEqual([
      '0-1',
      '0-2',
    ]);
  });

  test('dead-letter admin needs the admin right', async () => {
    const r = await gw.req('POST', '/v1/topics/wide/deadletters:purge', { body: { filter: {} } });
    expect(r.status).toBe(200); // anonymous is a superuser with auth off
    const tok = await startGateway({
      topics: [topic('orders', { partitions: 1, access: { producers: [], consumers: ['ann'], admins: [] } })],
      tokens: { 'token-of-ann-0123456789': 'ann' },
      leased: { client: fake, tokens: new LeaseTokens(SECRET) },
    });
    try {
      const denied = await tok.req('POST', '/v1/topics/orders/deadletters:purge', {
        body: { filter: {} },
        token: 'token-of-ann-0123456789',
      });
      expect(denied.status).toBe(403);
      const list = await tok.req('GET', '/v1/topics/orders/deadletters', { token: 'token-of-ann-0123456789' });
      expect(list.status).toBe(200);
    } finally {
      await tok.close();
    }
  });

  test('a fetch long-polls until a record arrives', async () => {
    const f = await fetchLeased({ topics: ['orders'], max_records: 10 });
    expect(f.json.records).toHaveLength(3);
    const t0 = Date.now();
    setTimeout(() => fake.produce('orders', 0, ['late']), 200);
    const w = await fetchLeased({ topics: ['orders'], wait_ms: 3000 });
    expect(w.json.records.map((r: Json) => r.offset)).toEqual([3]);
    expect(Date.now() - t0).toBeLessThan(2000);
    const empty = await fetchLeased({ topics: ['orders'], wait_ms: 100 });
    expect(empty.json.records).toEqual([]);
  });

  test('a fetch over many partitions returns at most max_records, and waits across them', async () => {
    for (let p = 0; p < 4; p++) fake.produce('wide', p, ['x', 'y']);
    const f = await fetchLeased({ topics: ['wide'], max_records: 3 });
    expect(f.json.records).toHaveLength(3);
    const all = await fetchLeased({ topics: ['wide', 'orders'], max_records: 100 });
    expect(all.json.records).toHaveLength(5 + 3);
    setTimeout(() => fake.produce('wide', 2, ['z']), 150);
    const w = await fetchLeased({ topics: ['wide'], max_records: 1, wait_ms: 3000 });
    expect(w.json.records).toMatchObject([{ partition: 2, offset: 2 }]);
  });

  test('a token issued by one gateway pod is accepted by another with the same secret', async () => {
    const other = await startGateway({
      topics: [topic('orders', { partitions: 1 })],
      leased: { client: fake, tokens: new LeaseTokens(SECRET) },
    });
    try {
      const f = await fetchLeased({ topics: ['orders'], max_records: 1 });
      const r = await other.req('POST', '/v1/groups/billing/acks', {
        body: { acks: [{ token: f.json.records[0].lease_token, action: 'accept' }] },
      });
      expect(r.json.results).toEqual([{ status: 'ok' }]);
    } finally {
      await other.close();
    }
  });

  test('without a lease secret leased fetch and acks are 501; a partition failing is its problem', async () => {
    const plain = await startGateway({
      topics: [topic('orders', { partitions: 1 })],
      leased: { client: fake, tokens: null },
    });
    try {
      const r = await plain.req('POST', '/v1/groups/g/fetch', { body: { topics: ['orders'] } });
      expect(r.status).toBe(501);
      expect(r.json.detail).toMatch(/DAFTKA_GATEWAY_LEASE_SECRET/);
      expect((await plain.req('GET', '/v1/topics/orders/deadletters')).status).toBe(200);
    } finally {
      await plain.close();
    }
    fake.fail = (op) =>
      op === 'leaseFetch' ? new DaftkaError('NO_QUORUM', 'no quorum', { retryAfterMs: 500 }) : undefined;
    const r = await fetchLeased({ topics: ['orders'] });
    expect(r.status).toBe(503);
    expect(r.json.code).toBe('NO_QUORUM');
  });

  test('shareOut spreads max_records over partitions', () => {
    expect(shareOut(10, 4, 0)).toEqual([3, 3, 2, 2]);
    expect(shareOut(2, 4, 3)).toEqual([1, 0, 0, 1]);
    expect(shareOut(5, 1, 0)).toEqual([5]);
  });
});

describe('lease tokens', () => {
  const t = new LeaseTokens(SECRET);
  const claims = {
    principal: 'alice',
    group: 'g',
    topic: 't',
    partition: 3,
    offset: 2 ** 40,
    attempt: 7,
    leaseUntilMs: 1_800_000_000_000,
  };

  test('round-trip; any changed byte is forged or garbled', () => {
    const tok = t.sign(claims);
    expect(t.verify(tok)).toEqual(claims);
    for (let i = 0; i < tok.length; i++) {
      if (tok[i] === '.') continue;
      const c = tok[i] === 'A' ? 'B' : 'A';
      const bad = tok.slice(0, i) + c + tok.slice(i + 1);
      expect(['forged', 'garbled']).toContain(t.verify(bad));
    }
    expect(t.verify('')).toBe('garbled');
    expect(t.verify('x'.repeat(5000))).toBe('garbled');
    expect(new LeaseTokens('x'.repeat(32)).verify(tok)).toBe('forged');
  });

  test('short secrets are refused', () => {
    expect(() => new LeaseTokens('short')).toThrow(/at least 32/);
  });
});
