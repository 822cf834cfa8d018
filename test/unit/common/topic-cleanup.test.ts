import { DaftkaError } from '../../../common/errors';
import { catalogEntry, desiredReplicas, validateTopic, type TopicSpec } from '../../../common/topic-spec';
import { parseTopics } from '../../../gateway/catalog';
import { placeRecord } from '../../../gateway/handlers/records';
import { loadConfig } from '../../../common/config';
import { replicaSchema } from '../../../common/replica-config';

/**
 * The Topic `cleanup` policy and its compaction settings on their way from the spec (CRD or
 * local mode) to the replicas (environment) and the gateway (catalog), docs/compaction.md.
 */

const addressOf = (p: number, o: number) => ({ host: `h${p}-${o}`, peerPort: 1, clientPort: 2, httpPort: 3 });
const plan = { natsUrl: '', dataDir: () => '/d', listenHost: '0.0.0.0' };

test('a compacted topic passes its policy and compaction settings to every replica; an unset policy adds nothing (no pod roll)', () => {
  const spec: TopicSpec = {
    partitions: 2,
    replicationFactor: 3,
    cleanup: 'compact',
    compaction: { deleteRetentionMs: 60_000, minLagMs: 5_000, minDirtyPercent: 20 },
  };
  const replicas = desiredReplicas('users', spec, addressOf, plan);
  expect(replicas).toHaveLength(6);
  for (const r of replicas)
    expect(r.env).toMatchObject({
      DAFTKA_CLEANUP_POLICY: 'compact',
      DAFTKA_DELETE_RETENTION_MS: '60000',
      DAFTKA_MIN_COMPACTION_LAG_MS: '5000',
      DAFTKA_COMPACTION_MIN_DIRTY_PERCENT: '20',
    });
  // The replica's own schema takes what the plan wrote.
  const cfg = loadConfig(replicaSchema, replicas[0].env);
  expect(cfg).toMatchObject({ cleanupPolicy: 'compact', deleteRetentionMs: 60_000, compactionMinDirtyPercent: 20 });

  const plain = desiredReplicas('orders', { partitions: 1, replicationFactor: 1 }, addressOf, plan);
  expect(Object.keys(plain[0].env).filter((k) => /CLEANUP|COMPACTION|DELETE_RETENTION/.test(k))).toEqual([]);
});

test('the catalog carries the policy to the gateway, which shows it and refuses keyless records for a compacted topic', () => {
  const spec: TopicSpec = { partitions: 1, replicationFactor: 1, cleanup: 'compact,delete' };
  const entry = catalogEntry('users', spec, desiredReplicas('users', spec, addressOf, plan));
  expect(entry.cleanup).toBe('compact,delete');
  const [t] = parseTopics({ topics: [entry] });
  expect(t.cleanup).toBe('compact,delete');
  expect(() => parseTopics({ topics: [{ ...entry, cleanup: 'shred' }] })).toThrow(/cleanup/);

  const place = (key: string | null) =>
    placeRecord(t, { key, value: 'v' } as never, '/records/0', 'record 0', Date.now(), () => 0);
  expect(place('k').partition).toBe(0);
  let err: unknown;
  try {
    place(null);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DaftkaError);
  expect(err).toMatchObject({ code: 'INVALID_REQUEST', extra: { reason: 'key_required', pointer: '/records/0/key' } });
  // A delete topic takes keyless records as before; so does a catalog entry without the field.
  const [plainTopic] = parseTopics({
    topics: [catalogEntry('orders', { partitions: 1, replicationFactor: 1 }, [])].map((e) => ({
      ...e,
      replicaEndpoints: [['127.0.0.1:1']],
    })),
  });
  expect(plainTopic.cleanup).toBeUndefined();
  expect(
    placeRecord(plainTopic, { key: null, value: 'v' } as never, '/records/0', 'record 0', Date.now(), () => 0)
      .partition,
  ).toBe(0);
});

test('a spec with an unknown policy or bad compaction settings is refused with the field named', () => {
  const base: TopicSpec = { partitions: 1, replicationFactor: 1 };
  expect(validateTopic('t', { ...base, cleanup: 'compacted' as never })).toMatch(/cleanup must be one of/);
  expect(validateTopic('t', { ...base, compaction: { minDirtyPercent: 101 } })).toMatch(/minDirtyPercent/);
  expect(validateTopic('t', { ...base, compaction: { deleteRetentionMs: -1 } })).toMatch(/deleteRetentionMs/);
  expect(validateTopic('t', { ...base, compaction: { retention: 1 } as never })).toMatch(/no field retention/);
  expect(validateTopic('t', { ...base, cleanup: 'compact', compaction: { minLagMs: 0 } })).toBeNull();
});
