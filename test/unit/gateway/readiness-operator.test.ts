import { PassThrough } from 'node:stream';
import { createLogger } from '../../../common/log';
import type { OperatorHealth } from '../../../common/control-subjects';
import { StaticCatalog } from '../../../gateway/catalog';
import { StatusReportFeed } from '../../../gateway/readiness-feed';
import { DEFAULT_THRESHOLDS, evaluateReadiness, type ReadinessSignals } from '../../../gateway/readiness';
import { topic } from './fixtures';

/** The readiness report's operator_reconcile check: from the operator's health reports to a status. */

function quiet() {
  const sink = new PassThrough();
  sink.resume();
  return createLogger('test', { stream: sink });
}

const clock = { now: 10_000_000 };
function feed(): StatusReportFeed {
  return new StatusReportFeed({
    servers: [],
    catalog: new StaticCatalog([topic('t', { partitions: 1 })]),
    logger: quiet(),
    nowMs: () => clock.now,
  });
}

function health(over: Partial<OperatorHealth> = {}): Uint8Array {
  const h: OperatorHealth = {
    v: 1,
    instance: 'op-a',
    leader: true,
    synced: true,
    reconcileErrors: 0,
    lastError: null,
    ts: clock.now,
    ...over,
  };
  return Buffer.from(JSON.stringify(h));
}

function check(f: StatusReportFeed) {
  const s: ReadinessSignals = {
    at: clock.now,
    partitions: [],
    reports: null,
    operator: f.operator(),
    nats: 'connected',
    traffic: { windowSeconds: 300, produce: 0, produceErrors: 0, produceSlow: 0, requests: 0, shed: 0, throttled: 0 },
    deadLetters: { active: 0, atLeast: false, growthPerHour: 0, growthWindowSeconds: 3600, errors: 0, disabled: false },
  };
  return evaluateReadiness(s, DEFAULT_THRESHOLDS).checks.find((c) => c.id === 'operator_reconcile')!;
}

describe('readiness: the operator’s reconcile health', () => {
  beforeEach(() => (clock.now = 10_000_000));

  it('is unknown until an operator is heard (local mode, NATS off)', () => {
    expect(check(feed())).toMatchObject({ status: 'unknown', value: null });
  });

  it('is ok while the leading instance reconciles without error; a standby does not hide it', () => {
    const f = feed();
    f.acceptOperator(health({ instance: 'op-b', leader: false, synced: false }));
    f.acceptOperator(
      health({ reconcileErrors: 2, lastError: { atMs: clock.now - 600_000, kind: 'topic', message: 'old' } }),
    );
    expect(check(f)).toMatchObject({ status: 'ok', value: 2 });
    expect(check(f).reason).toContain('op-a');
  });

  it('warns on a recent reconcile error, with its message, and when the leader goes silent', () => {
    const f = feed();
    f.acceptOperator(
      health({
        reconcileErrors: 3,
        lastError: { atMs: clock.now - 20_000, kind: 'topic', message: 'quota exceeded for pvc' },
      }),
    );
    expect(check(f)).toMatchObject({ status: 'warning', value: 3 });
    expect(check(f).reason).toMatch(/reconcile error 20 s ago \(topic\): quota exceeded for pvc/);
    clock.now += 31_000;
    expect(check(f).reason).toMatch(/no operator report for 31 s/);
    expect(check(f).status).toBe('warning');
  });

  it('warns when no instance leads or the leader is still syncing; never not_ready', () => {
    const f = feed();
    f.acceptOperator(health({ leader: false }));
    expect(check(f)).toMatchObject({ status: 'warning', reason: 'no operator instance holds the Lease' });
    f.acceptOperator(health({ instance: 'op-c', synced: false }));
    expect(check(f)).toMatchObject({ status: 'warning', reason: 'the leading operator is syncing its caches' });
  });

  it('ignores malformed reports and keeps a bounded number of instances', () => {
    const f = feed();
    f.acceptOperator(Buffer.from('{"v":1,"instance":"x"}'));
    f.acceptOperator(Buffer.from('not json'));
    expect(f.operator()).toBeNull();
    for (let i = 0; i < 40; i++) {
      clock.now += 1;
      f.acceptOperator(health({ instance: `op-${i}`, leader: false }));
    }
    f.acceptOperator(health({ instance: 'op-leader' }));
    expect(f.operator()).toMatchObject({ instance: 'op-leader', leader: true });
  });
});
