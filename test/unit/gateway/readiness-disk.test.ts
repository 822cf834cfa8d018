import { PassThrough } from 'node:stream';
import { createLogger } from '../../../common/log';
import { StaticCatalog } from '../../../gateway/catalog';
import { StatusReportFeed } from '../../../gateway/readiness-feed';
import { DEFAULT_THRESHOLDS, evaluateReadiness, type ReadinessSignals } from '../../../gateway/readiness';
import { reportSig } from '../../../common/control-auth';
import { topic } from './fixtures';

/** The readiness report's free_disk check: from the replicas' NATS status reports to a status. */

function quiet() {
  const sink = new PassThrough();
  sink.resume();
  return createLogger('test', { stream: sink });
}

function report(replica: string, over: Record<string, unknown> = {}): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      topic: 't',
      partition: 0,
      replicaId: replica,
      role: 'follower',
      ready: true,
      logBytes: 10,
      ...over,
    }),
  );
}

function feed(): StatusReportFeed {
  return new StatusReportFeed({
    servers: [],
    catalog: new StaticCatalog([topic('t', { partitions: 1 })]),
    logger: quiet(),
    nowMs: () => 1000,
  });
}

function signals(reports: ReadinessSignals['reports']): ReadinessSignals {
  return {
    at: 1000,
    partitions: [],
    reports,
    nats: 'connected',
    traffic: { windowSeconds: 300, produce: 0, produceErrors: 0, produceSlow: 0, requests: 0, shed: 0, throttled: 0 },
    deadLetters: { active: 0, atLeast: false, growthPerHour: 0, growthWindowSeconds: 3600, errors: 0, disabled: false },
  };
}

const freeDisk = (f: StatusReportFeed) =>
  evaluateReadiness(signals(f.signals()), DEFAULT_THRESHOLDS).checks.find((c) => c.id === 'free_disk')!;

describe('readiness: free disk from the replicas’ status reports', () => {
  it('is ok with the least free share when every replica has room', () => {
    const f = feed();
    f.accept(report('r0', { freeBytes: 800, capacityBytes: 1000, diskFull: false }));
    f.accept(report('r1', { freeBytes: 500, capacityBytes: 1000, diskFull: false }));
    expect(freeDisk(f)).toMatchObject({ status: 'ok', value: 0.5, unit: 'ratio', threshold: { warning: 0.1 } });
    expect(freeDisk(f).reason).toContain('t/0/r1');
  });

  it('is a warning when a replica has less than the threshold free', () => {
    const f = feed();
    f.accept(report('r0', { freeBytes: 800, capacityBytes: 1000, diskFull: false }));
    f.accept(report('r1', { freeBytes: 50, capacityBytes: 1000, diskFull: false }));
    const c = freeDisk(f);
    expect(c).toMatchObject({ status: 'warning', value: 0.05 });
    expect(c.reason).toMatch(/below 10%/);
  });

  it('is not_ready when any replica reports disk full, naming it, and makes the report not_ready', () => {
    const f = feed();
    f.accept(report('r0', { freeBytes: 800, capacityBytes: 1000, diskFull: false }));
    f.accept(report('r2', { freeBytes: 300, capacityBytes: 1000, diskFull: true }));
    const c = freeDisk(f);
    expect(c.status).toBe('not_ready');
    expect(c.reason).toContain('STORAGE_FULL');
    expect(c.reason).toContain('t/0/r2');
    expect(evaluateReadiness(signals(f.signals()), DEFAULT_THRESHOLDS).status).toBe('not_ready');
  });

  it('is unknown when no report carries free disk (older replicas), and reports with bad fields are ignored', () => {
    const f = feed();
    f.accept(report('r0'));
    expect(freeDisk(f).status).toBe('unknown');
    f.accept(report('r1', { freeBytes: -1, capacityBytes: 1000 }));
    f.accept(report('r1', { diskFull: 'yes' }));
    expect(freeDisk(f).status).toBe('unknown');
    expect(f.signals()!.replicas).toBe(1);
  });

  it('the threshold is configurable', () => {
    const f = feed();
    f.accept(report('r0', { freeBytes: 300, capacityBytes: 1000, diskFull: false }));
    const c = evaluateReadiness(signals(f.signals()), { ...DEFAULT_THRESHOLDS, freeDiskWarnRatio: 0.5 }).checks.find(
      (x) => x.id === 'free_disk',
    )!;
    expect(c).toMatchObject({ status: 'warning', threshold: { warning: 0.5 } });
  });
});

describe('readiness: status reports of a topic whose key the gateway holds must be signed', () => {
  const key = Buffer.alloc(32, 7);
  const signed = (replica: string, over: Record<string, unknown> = {}, withKey = key) => {
    const doc = JSON.parse(Buffer.from(report(replica, over)).toString()) as Record<string, unknown>;
    return Buffer.from(JSON.stringify({ ...doc, sig: reportSig(withKey, doc) }));
  };
  const keyed = () =>
    new StatusReportFeed({
      servers: [],
      catalog: new StaticCatalog([topic('t', { partitions: 1 })]),
      logger: quiet(),
      nowMs: () => 1000,
      keyFor: (t) => (t === 't' ? key : undefined),
    });

  it('takes signed reports, drops badly signed ones, and unsigned ones once a signed one was seen', () => {
    const f = keyed();
    // Unsigned before any signed one: taken (replicas of a release before signing).
    f.accept(report('old', { freeBytes: 900, capacityBytes: 1000 }));
    expect(f.signals()?.replicas).toBe(1);
    // Signed with another key (a replica of another topic forging this one's health): dropped.
    f.accept(signed('forged', { diskFull: true, freeBytes: 0, capacityBytes: 1000 }, Buffer.alloc(32, 9)));
    expect(f.rejectedSignatures).toBe(1);
    expect(freeDisk(f).status).not.toBe('not_ready');
    f.accept(signed('r0', { freeBytes: 800, capacityBytes: 1000 }));
    expect(f.signals()?.replicas).toBe(2);
    // From now on an unsigned report of topic t is refused.
    f.accept(report('r1', { diskFull: true, freeBytes: 0, capacityBytes: 1000 }));
    expect(f.rejectedSignatures).toBe(2);
    expect(f.signals()?.replicas).toBe(2);
    expect(freeDisk(f).status).toBe('ok');
  });
});
