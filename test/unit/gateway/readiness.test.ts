import { DaftkaError } from '../../../common/errors';
import {
  CHECK_IDS,
  DEFAULT_THRESHOLDS,
  evaluateReadiness,
  SnapshotHistory,
  type ReadinessSignals,
} from '../../../gateway/readiness';
import { topic } from './fixtures';
import { startGateway, type Harness } from './harness';

/** The launch-readiness report: the pure evaluation, and the routes (auth, history, metric). */

function healthy(over: Partial<ReadinessSignals> = {}): ReadinessSignals {
  return {
    at: 1000,
    partitions: [0, 1].map((p) => ({
      topic: 't',
      partition: p,
      replicas: 3,
      status: { leaderId: 'r0', term: 3, voters: 3, learners: 0, logBytes: 100 },
    })),
    reports: { replicas: 6, notReady: [], maxLagEntries: 5, maxLagAt: 't/0', maxLogBytes: 200 },
    nats: 'connected',
    traffic: {
      windowSeconds: 300,
      produce: 1000,
      produceErrors: 0,
      produceSlow: 2,
      requests: 2000,
      shed: 0,
      throttled: 0,
    },
    deadLetters: { active: 3, atLeast: false, growthPerHour: 1, growthWindowSeconds: 3600, errors: 0, disabled: false },
    ...over,
  };
}

const check = (r: ReturnType<typeof evaluateReadiness>, id: string) => r.checks.find((c) => c.id === id)!;

describe('evaluateReadiness', () => {
  it('is ready when every measured check is ok, lists every check once, and unknown checks do not count', () => {
    const r = evaluateReadiness(healthy(), DEFAULT_THRESHOLDS);
    expect(r.status).toBe('ready');
    expect(r.checks.map((c) => c.id)).toEqual([...CHECK_IDS]);
    expect(check(r, 'free_disk').status).toBe('unknown');
    expect(check(r, 'operator_reconcile').status).toBe('unknown');
    expect(r.summary).toEqual({ ok: 10, warning: 0, not_ready: 0, unknown: 3 });
    expect(check(r, 'storage_pressure').value).toBe(200);
  });

  it('a leaderless partition makes it not_ready, naming the partition and the error', () => {
    const s = healthy();
    s.partitions[1] = { topic: 't', partition: 1, replicas: 3, error: 'UNAVAILABLE' };
    const r = evaluateReadiness(s, DEFAULT_THRESHOLDS);
    expect(r.status).toBe('not_ready');
    expect(check(r, 'leaderless_partitions')).toMatchObject({
      status: 'not_ready',
      value: 1,
      threshold: { not_ready: 0 },
    });
    expect(check(r, 'leaderless_partitions').reason).toContain('t/1 (UNAVAILABLE)');
  });

  it('under-replication and a disconnected NATS are warnings', () => {
    const s = healthy({ nats: 'disconnected' });
    s.partitions[0].status!.voters = 2;
    const r = evaluateReadiness(s, DEFAULT_THRESHOLDS);
    expect(r.status).toBe('warning');
    expect(check(r, 'under_replicated_partitions')).toMatchObject({ status: 'warning', value: 1 });
    expect(check(r, 'nats').status).toBe('warning');
  });

  it('follower lag is graded against both thresholds, and unknown without status reports', () => {
    const lag = (n: number) =>
      check(
        evaluateReadiness(
          healthy({ reports: { replicas: 3, notReady: [], maxLagEntries: n, maxLagAt: 't/1', maxLogBytes: 0 } }),
          DEFAULT_THRESHOLDS,
        ),
        'replica_lag',
      ).status;
    expect([lag(10), lag(20_000), lag(200_000)]).toEqual(['ok', 'warning', 'not_ready']);
    expect(check(evaluateReadiness(healthy({ reports: null }), DEFAULT_THRESHOLDS), 'replica_lag').status).toBe(
      'unknown',
    );
  });

  it('traffic ratios are judged against the SLO budgets, and not below the minimum request count', () => {
    const t = (produce: number, produceErrors: number) =>
      check(
        evaluateReadiness(healthy({ traffic: { ...healthy().traffic, produce, produceErrors } }), DEFAULT_THRESHOLDS),
        'produce_error_rate',
      );
    expect(t(1000, 0).status).toBe('ok');
    expect(t(1000, 5).status).toBe('warning');
    expect(t(1000, 50).status).toBe('not_ready');
    expect(t(10, 5)).toMatchObject({ status: 'ok', value: 0.5 });
    expect(t(0, 0)).toMatchObject({ status: 'ok', value: null });
  });

  it('dead letters: a large load or fast growth is a warning; growth is unknown without history', () => {
    const dl = healthy().deadLetters;
    const r = evaluateReadiness(
      healthy({ deadLetters: { ...dl, active: 5000, atLeast: true, growthPerHour: 500 } }),
      DEFAULT_THRESHOLDS,
    );
    expect(check(r, 'dead_letter_load')).toMatchObject({ status: 'warning', value: 5000 });
    expect(check(r, 'dead_letter_load').reason).toContain('at least 5000');
    expect(check(r, 'dead_letter_growth')).toMatchObject({ status: 'warning', value: 500 });
    const early = evaluateReadiness(healthy({ deadLetters: { ...dl, growthPerHour: null } }), DEFAULT_THRESHOLDS);
    expect(check(early, 'dead_letter_growth').status).toBe('unknown');
  });
});

test('SnapshotHistory keeps the newest entries up to its capacity', () => {
  const h = new SnapshotHistory<number>(3);
  for (let i = 0; i < 5; i++) h.push(i);
  expect(h.last()).toEqual([2, 3, 4]);
  expect(h.last(2)).toEqual([3, 4]);
  expect(() => new SnapshotHistory(0)).toThrow(RangeError);
});

describe('GET /v1/readiness', () => {
  let gw: Harness;
  beforeAll(async () => {
    gw = await startGateway({
      topics: [topic('t', { partitions: 2, access: { producers: [], consumers: ['bob'], admins: ['ops'] } })],
      tokens: { 'ops-token-0123456789abcdef': 'ops', 'bob-token-0123456789abcdef': 'bob' },
      nats: true,
    });
  });
  afterAll(() => gw.close());

  it('answers the report to an admin of every topic, and exports the status as a metric', async () => {
    gw.fake.fail = (op, _t, p) => (op === 'status' && p === 1 ? new DaftkaError('UNAVAILABLE', 'down') : undefined);
    const r = await gw.req('GET', '/v1/readiness', { token: 'ops-token-0123456789abcdef' });
    expect(r.status).toBe(200);
    expect(r.json.status).toBe('not_ready');
    expect(r.json.checks.find((c: { id: string }) => c.id === 'leaderless_partitions')).toMatchObject({
      value: 1,
      status: 'not_ready',
    });
    const metrics = await gw.registry.metrics();
    expect(metrics).toContain('daftka_gateway_readiness_status{component="gateway"} 2');
    expect(metrics).toContain(
      'daftka_gateway_readiness_check_status{kind="leaderless_partitions",component="gateway"} 2',
    );
    gw.fake.fail = () => undefined;
  });

  it('refuses a principal that does not administer every topic (403) and one without a token (401)', async () => {
    expect((await gw.req('GET', '/v1/readiness', { token: 'bob-token-0123456789abcdef' })).json.code).toBe('FORBIDDEN');
    expect((await gw.req('GET', '/v1/readiness/history')).status).toBe(401);
  });

  it('the history answers the bounded list of snapshots, and validates its limit', async () => {
    const r = await gw.req('GET', '/v1/readiness/history?limit=5', { token: 'ops-token-0123456789abcdef' });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ interval_ms: 30_000, capacity: 240 });
    expect(Array.isArray(r.json.snapshots)).toBe(true);
    const bad = await gw.req('GET', '/v1/readiness/history?limit=0', { token: 'ops-token-0123456789abcdef' });
    expect(bad.status).toBe(400);
  });
});
