import { ConfigError, configDocs } from '../../../common/config';
import type { LeaderAnnouncement, StatusReport } from '../../../common/control-subjects';
import { loadOperatorConfig, loadReplicaSettings, operatorSchema } from '../../../operator/config';
import { ReportTable, parseLeaderAnnouncement, parseStatusReport } from '../../../operator/report-table';
import { WorkQueue } from '../../../operator/workqueue';
import { HEALTH, NOW, report } from './fixtures';

describe('work queue', () => {
  it('hands a key to one worker at a time; a key added while processing comes back once afterwards', async () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 100 });
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.depth).toBe(2);
    const first = await q.get();
    expect(first).toBe('a');
    q.add('a'); // while processing: marked dirty, not queued
    q.add('a');
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('b');
    q.done('a');
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    q.done('b');
    expect(q.depth).toBe(0);
    q.shutdown();
    expect(await q.get()).toBeNull();
  });

  it('backs failed keys off exponentially per key, up to the cap, until forgotten', () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000 });
    expect([1, 2, 3, 4, 5].map(() => q.addRateLimited('k'))).toEqual([100, 200, 400, 800, 1000]);
    expect(q.addRateLimited('other')).toBe(100);
    q.forget('k');
    expect(q.addRateLimited('k')).toBe(100);
    q.shutdown();
  });
});

describe('replica reports at the NATS boundary', () => {
  const good: StatusReport = report('t', 0, '0.abc', { role: 'leader', lag: { '1.def': 3 } }).report;

  it('accepts a well-formed status report and leader announcement', () => {
    expect(parseStatusReport(JSON.parse(JSON.stringify(good)))).toEqual(good);
    const a: LeaderAnnouncement = {
      v: 1,
      topic: 't',
      partition: 0,
      term: 3,
      leaderId: '0.abc',
      endpoint: 'h:9092',
      highWatermark: 7,
      ts: 1,
    };
    expect(parseLeaderAnnouncement(a)).toEqual(a);
  });

  it.each([
    [{ ...good, v: 2 }, 'unsupported status report version 2'],
    [{ ...good, partition: -1 }, 'status report needs topic, partition, replicaId and role'],
    [{ ...good, term: 'x' }, 'status report field term must be a non-negative integer'],
    [{ ...good, voters: 'all' }, 'status report voters and learners must be lists of ids'],
    [{ ...good, ready: 1 }, 'status report field ready must be a boolean'],
    [{ ...good, lag: { a: -1 } }, 'status report lag values must be integers'],
    [null, 'status report must be a JSON object'],
  ])('refuses %j with a precise message', (raw, msg) => {
    expect(parseStatusReport(raw)).toBe(msg);
  });

  it('signals a partition only when something that matters changes (not watermarks), and when reports go stale', () => {
    const changes: string[] = [];
    let now = NOW;
    const table = new ReportTable({ settings: HEALTH, onChange: (t, p) => changes.push(`${t}/${p}`), now: () => now });
    const leader = (hw: number, ready = true) =>
      report('t', 0, '0.a', { role: 'leader', highWatermark: hw, ready, voters: ['0.a'], lag: {} }).report;
    table.ingestStatus(leader(1));
    expect(changes).toEqual(['t/0']);
    table.ingestStatus(leader(2));
    table.ingestStatus(leader(3));
    expect(changes).toEqual(['t/0']);
    table.ingestStatus(leader(4, false));
    expect(changes).toEqual(['t/0', 't/0']);
    now += HEALTH.staleMs + 1;
    table.sweep(now);
    expect(changes).toEqual(['t/0', 't/0', 't/0']);
    expect(table.reports('t', 0)).toHaveLength(1);
    table.forget('t');
    expect(table.reports('t', 0)).toEqual([]);
  });
});

describe('operator config', () => {
  const base = { DAFTKA_NATS_URL: 'nats://n:4222' };

  it('has defaults for everything and documents every key', () => {
    const cfg = loadOperatorConfig(base, []);
    expect(cfg).toMatchObject({
      namespace: 'daftka',
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      maxConcurrentMoves: 1,
    });
    const doc = configDocs(operatorSchema);
    for (const f of Object.values(operatorSchema)) expect(doc).toContain(f.env);
  });

  it('names the key of a bad value', () => {
    expect(() => loadOperatorConfig({ ...base, DAFTKA_OPERATOR_MAX_CONCURRENT_MOVES: '-1' }, [])).toThrow(
      /invalid config maxConcurrentMoves \(DAFTKA_OPERATOR_MAX_CONCURRENT_MOVES\)/,
    );
    expect(() => loadOperatorConfig({ ...base, DAFTKA_OPERATOR_RENEW_DEADLINE_SECONDS: '20' }, [])).toThrow(
      /renewDeadlineSeconds .* must be below leaseDurationSeconds/,
    );
  });

  it('reads the replica settings file (the chart renders it), validating it', () => {
    const cfg = loadOperatorConfig({ ...base, DAFTKA_OPERATOR_REPLICA_SETTINGS_FILE: '/s.json' }, []);
    const file = {
      image: 'reg/daftka:1',
      imagePullPolicy: 'Always',
      imagePullSecrets: [{ name: 'r' }],
      command: [],
      clusterDomain: 'example.local',
      resources: { requests: { cpu: '1' } },
      storage: { size: '20Gi', storageClassName: '' },
      antiAffinity: 'preferred',
      terminationGracePeriodSeconds: 60,
      runAsUser: 1000,
      extraEnv: { DAFTKA_FSYNC: 'always', DAFTKA_X: 3 },
    };
    const s = loadReplicaSettings(cfg, () => JSON.stringify(file));
    expect(s).toMatchObject({
      image: 'reg/daftka:1',
      antiAffinity: 'preferred',
      natsUrl: 'nats://n:4222',
      extraEnv: { DAFTKA_FSYNC: 'always', DAFTKA_X: '3' },
    });
    const bad = () => loadReplicaSettings(cfg, () => JSON.stringify({ ...file, antiAffinity: 'sometimes' }));
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/\/s.json\): \/antiAffinity must be equal to one of the allowed values/);
    expect(() => loadReplicaSettings(cfg, () => '{')).toThrow(/cannot read \/s.json as JSON/);
  });

  it('puts the replicas NATS URL in a Secret reference when configured', () => {
    const cfg = loadOperatorConfig({ ...base, DAFTKA_OPERATOR_REPLICA_NATS_SECRET: 'nats-clients/replica-url' }, []);
    expect(loadReplicaSettings(cfg).natsUrlSecret).toEqual({ name: 'nats-clients', key: 'replica-url' });
  });

  it('names the replicas TLS Secret (and the server name they check) when configured; none by default', () => {
    expect(loadReplicaSettings(loadOperatorConfig(base, [])).tls).toBeUndefined();
    const cfg = loadOperatorConfig(
      {
        ...base,
        DAFTKA_OPERATOR_REPLICA_TLS_SECRET: 'daftka-replica-tls',
        DAFTKA_OPERATOR_REPLICA_TLS_SERVER_NAME: 'replica.daftka.internal',
      },
      [],
    );
    expect(loadReplicaSettings(cfg).tls).toEqual({
      secretName: 'daftka-replica-tls',
      serverName: 'replica.daftka.internal',
    });
    expect(() => loadOperatorConfig({ ...base, DAFTKA_OPERATOR_REPLICA_TLS_SECRET: 'Not/A Secret' }, [])).toThrow(
      /replicaTlsSecret/,
    );
  });
});
