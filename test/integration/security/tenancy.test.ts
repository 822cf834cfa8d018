import { LocalStack } from '../../helpers/local-stack';

/**
 * Issue 15, items 1 and 2, performed as an attacker would against the real stack (nats-server,
 * replica processes and a gateway with bearer tokens, as `DAFTKA_LOCAL_AUTH=tokens npm run local`
 * runs them). Each attack asserts the refusal (status and code) and that nothing was written or
 * changed.
 *
 *   private  producers: [alice] — and nothing else: nobody else may read, list or administer it
 *   shared   alice produces; alice and carol consume; groups alice-* are alice's, carol-* carol's,
 *            team-x both's; no admins but local-admin (local mode's token)
 */

jest.setTimeout(120_000);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const TOKENS = {
  alice: 'alice-token-0123456789abcdef',
  bob: 'bob-token-0123456789abcdef',
  carol: 'carol-token-0123456789abcdef',
} as const;
type Who = keyof typeof TOKENS | 'admin';

let stack: LocalStack;

beforeAll(async () => {
  stack = await LocalStack.start({
    topics: [
      { name: 'private', partitions: 1, replicationFactor: 1, access: { producers: ['alice'] } },
      {
        name: 'shared',
        partitions: 1,
        replicationFactor: 1,
        access: {
          producers: ['alice'],
          consumers: ['alice', 'carol'],
          groups: [
            { principals: ['alice'], prefix: 'alice-' },
            { principals: ['carol'], prefix: 'carol-' },
            { principals: ['alice', 'carol'], name: 'team-x' },
          ],
        },
      },
    ],
    tokens: Object.fromEntries(Object.entries(TOKENS).map(([who, token]) => [token, who])),
  });
});

afterAll(async () => {
  await stack?.stop();
});

function as(who: Who, method: string, path: string, body?: unknown) {
  const token = who === 'admin' ? stack.adminToken : TOKENS[who];
  return stack.http<Json>(method, path, { body, headers: { authorization: `Bearer ${token}` } });
}

async function highWatermark(topic: string): Promise<number> {
  const r = await as('admin', 'GET', `/v1/topics/${topic}`);
  expect(r.status).toBe(200);
  return r.body.partitions[0].high_watermark;
}

/** A problem without what differs per request. */
function problemShape(b: Json) {
  const { instance: _i, request_id: _r, detail, ...rest } = b;
  return { ...rest, detail: String(detail).replace(/private|no-such-topic/g, 'T') };
}

test('a topic that grants bob nothing answers him exactly like a missing one: no read, no write, no listing', async () => {
  const before = await highWatermark('private');
  expect((await as('alice', 'POST', '/v1/topics/private/records', { records: [{ value: 'a1' }] })).status).toBe(200);

  const read = await as('bob', 'GET', '/v1/topics/private/partitions/0/records?offset=0');
  const missing = await as('bob', 'GET', '/v1/topics/no-such-topic/partitions/0/records?offset=0');
  expect(read.status).toBe(404);
  expect(read.body.code).toBe('TOPIC_NOT_FOUND');
  expect(problemShape(read.body)).toEqual(problemShape(missing.body));

  const info = await as('bob', 'GET', '/v1/topics/private');
  expect(info.status).toBe(404);
  expect(problemShape(info.body)).toEqual(problemShape((await as('bob', 'GET', '/v1/topics/no-such-topic')).body));

  const write = await as('bob', 'POST', '/v1/topics/private/records', { records: [{ value: 'b1' }] });
  expect(write.status).toBe(404);
  expect(write.body.code).toBe('TOPIC_NOT_FOUND');

  const list = await as('bob', 'GET', '/v1/topics');
  expect(list.status).toBe(200);
  expect(list.body.topics.map((t: Json) => t.name)).not.toContain('private');
  const limits = await as('bob', 'GET', '/v1/limits');
  expect(limits.body.topics.map((t: Json) => t.name)).not.toContain('private');

  // alice produces but was granted no consume: she cannot read back either (403, she sees the topic).
  const aliceRead = await as('alice', 'GET', '/v1/topics/private/partitions/0/records?offset=0');
  expect(aliceRead.status).toBe(403);
  expect(aliceRead.body.code).toBe('FORBIDDEN');
  // Only alice's record was written.
  expect(await highWatermark('private')).toBe(before + 1);
});

test("carol cannot reset, commit, read or lease under alice's group, nor change its policy", async () => {
  const p = await as('alice', 'POST', '/v1/topics/shared/records', {
    records: [{ value: 'r0' }, { value: 'r1' }, { value: 'r2' }],
  });
  expect(p.status).toBe(200);
  const commit = await as('alice', 'POST', '/v1/groups/alice-app/offsets', {
    offsets: [{ topic: 'shared', partition: 0, offset: 2 }],
  });
  expect(commit.status).toBe(200);

  const reset = await as('carol', 'POST', '/v1/groups/alice-app/offsets:reset', { topic: 'shared', to: 'earliest' });
  expect(reset.status).toBe(403);
  expect(reset.body.code).toBe('FORBIDDEN');
  const carolCommit = await as('carol', 'POST', '/v1/groups/alice-app/offsets', {
    offsets: [{ topic: 'shared', partition: 0, offset: 0 }],
  });
  expect(carolCommit.status).toBe(403);
  expect((await as('carol', 'GET', '/v1/groups/alice-app/offsets?topic=shared')).status).toBe(403);
  const lease = await as('carol', 'POST', '/v1/groups/alice-app/fetch', { topics: ['shared'], max_records: 10 });
  expect(lease.status).toBe(403);
  expect(lease.body.code).toBe('FORBIDDEN');
  // A policy decides whether records are discarded: admins only, not even the group's owner.
  for (const who of ['carol', 'alice'] as const) {
    const pol = await as(who, 'PUT', '/v1/groups/alice-app/policy', {
      topic: 'shared',
      max_attempts: 1,
      dead_letter: false,
    });
    expect(pol.status).toBe(403);
    expect(pol.body.code).toBe('FORBIDDEN');
  }
  // Without a group in its report, carol's view of alice-app says nothing exists.
  expect((await as('carol', 'GET', '/v1/groups/alice-app')).status).toBe(404);

  // Nothing changed: alice's committed offset, and no policy override.
  const mine = await as('alice', 'GET', '/v1/groups/alice-app/offsets?topic=shared');
  expect(mine.status).toBe(200);
  expect(mine.body.partitions[0].offset).toBe(2);
  const pol = await as('admin', 'GET', '/v1/groups/alice-app/policy?topic=shared');
  expect(pol.body.override).toEqual({});
  expect(pol.body.partitions[0].leased).toBe(0);

  // carol uses her own groups freely.
  expect(
    (
      await as('carol', 'POST', '/v1/groups/carol-app/offsets', {
        offsets: [{ topic: 'shared', partition: 0, offset: 1 }],
      })
    ).status,
  ).toBe(200);
});

test('a lease token is refused for any principal but the one that fetched it', async () => {
  const f = await as('alice', 'POST', '/v1/groups/team-x/fetch', { topics: ['shared'], max_records: 1 });
  expect(f.status).toBe(200);
  expect(f.body.records).toHaveLength(1);
  const token = f.body.records[0].lease_token as string;

  const stolen = await as('carol', 'POST', '/v1/groups/team-x/acks', { acks: [{ token, action: 'accept' }] });
  expect(stolen.status).toBe(400);
  expect(stolen.body.code).toBe('INVALID_TOKEN');
  expect(stolen.body.results[0]).toMatchObject({
    status: 'invalid_token',
    detail: expect.stringContaining('principal'),
  });

  // Still alice's lease, and hers to settle.
  const info = await as('alice', 'GET', '/v1/groups/team-x/policy?topic=shared');
  expect(info.body.partitions[0].leased).toBe(1);
  const ok = await as('alice', 'POST', '/v1/groups/team-x/acks', { acks: [{ token, action: 'accept' }] });
  expect(ok.status).toBe(200);
  expect(ok.body.results[0].status).toBe('ok');
});

test("carol, a consumer but no admin, cannot purge the topic's dead letters", async () => {
  // local-admin makes one dead letter: max_attempts 1, alice rejects a record.
  const pol = await as('admin', 'PUT', '/v1/groups/alice-dl/policy', { topic: 'shared', max_attempts: 1 });
  expect(pol.status).toBe(200);
  const f = await as('alice', 'POST', '/v1/groups/alice-dl/fetch', { topics: ['shared'], max_records: 1 });
  expect(f.body.records).toHaveLength(1);
  const rej = await as('alice', 'POST', '/v1/groups/alice-dl/acks', {
    acks: [{ token: f.body.records[0].lease_token, action: 'reject', error: 'poison' }],
  });
  expect(rej.body.results[0].dead_lettered).toBe(true);

  const purge = await as('carol', 'POST', '/v1/topics/shared/deadletters:purge', { filter: {} });
  expect(purge.status).toBe(403);
  expect(purge.body.code).toBe('FORBIDDEN');
  const bobPurge = await as('bob', 'POST', '/v1/topics/shared/deadletters:purge', { filter: {} });
  expect(bobPurge.status).toBe(404);
  expect(bobPurge.body.code).toBe('TOPIC_NOT_FOUND');

  const dl = await as('admin', 'GET', '/v1/topics/shared/deadletters');
  expect(dl.status).toBe(200);
  expect(dl.body.deadletters).toHaveLength(1);
});
