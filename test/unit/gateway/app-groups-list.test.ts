import { LeaseTokens } from '../../../gateway/lease-token';
import { FakeLeased } from './fake-leased';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

/** GET /v1/groups: only groups the caller may use, on topics it may consume; never another tenant's. */
describe('GET /v1/groups', () => {
  let gw: Harness;
  beforeAll(async () => {
    const fake = new FakeLeased();
    gw = await startGateway({
      tokens: { 'tok-alice': 'alice', 'tok-bob': 'bob', 'tok-ops': 'ops' },
      topics: [
        topic('orders', {
          partitions: 2,
          access: {
            producers: [],
            consumers: ['alice', 'bob'],
            admins: ['ops'],
            groups: [
              { principals: ['alice'], prefix: 'alice-' },
              { principals: ['bob'], prefix: 'bob-' },
            ],
          },
        }),
        topic('secret', {
          partitions: 1,
          access: { producers: [], consumers: ['bob'], admins: ['ops'], groups: [{ principals: ['bob'], name: '*' }] },
        }),
      ],
      leased: { client: fake, tokens: new LeaseTokens('test-secret-test-secret-test-secret-0123') },
    });
    // Policies are an admin's to set (ops); the groups then exist on the partitions.
    const policy = (group: string, t: string) =>
      gw.req('PUT', `/v1/groups/${group}/policy`, { body: { topic: t, max_attempts: 3 }, token: 'tok-ops' });
    for (const g of ['alice-etl', 'alice-app', 'bob-app']) expect((await policy(g, 'orders')).status).toBe(200);
    expect((await policy('bob-hidden', 'secret')).status).toBe(200);
  });
  afterAll(() => gw.close());

  test('a caller sees its own groups, sorted, and nothing of another tenant', async () => {
    const a = await gw.req('GET', '/v1/groups', { token: 'tok-alice' });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({
      groups: [
        { group: 'alice-app', topic: 'orders' },
        { group: 'alice-etl', topic: 'orders' },
      ],
      truncated: false,
    });
    const b = await gw.req('GET', '/v1/groups', { token: 'tok-bob' });
    expect(b.json.groups).toEqual([
      { group: 'bob-app', topic: 'orders' },
      { group: 'bob-hidden', topic: 'secret' },
    ]);
  });

  test('prefix and topic narrow the list; a topic the caller may not consume is 404', async () => {
    const p = await gw.req('GET', '/v1/groups?prefix=alice-e', { token: 'tok-alice' });
    expect(p.json.groups).toEqual([{ group: 'alice-etl', topic: 'orders' }]);
    const t = await gw.req('GET', '/v1/groups?topic=orders', { token: 'tok-bob' });
    expect(t.json.groups).toEqual([{ group: 'bob-app', topic: 'orders' }]);
    const hidden = await gw.req('GET', '/v1/groups?topic=secret', { token: 'tok-alice' });
    expect(hidden.status).toBe(404);
    expect((await gw.req('GET', '/v1/groups')).status).toBe(401);
    // An admin of the topic may use every group on it.
    const ops = await gw.req('GET', '/v1/groups?topic=orders', { token: 'tok-ops' });
    expect(ops.json.groups.map((x: { group: string }) => x.group)).toEqual(['alice-app', 'alice-etl', 'bob-app']);
  });
});
