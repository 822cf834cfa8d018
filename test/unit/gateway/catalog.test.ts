import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CatalogError,
  DEFAULT_MAX_RECORD_BYTES,
  parseTopics,
  replicationFactorOf,
  StaticCatalog,
} from '../../../gateway/catalog';

describe('StaticCatalog', () => {
  test('reads a topics file, fills defaults and lists topics in name order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'daftka-cat-'));
    const f = join(dir, 'topics.json');
    writeFileSync(
      f,
      JSON.stringify({
        topics: [
          { name: 'zeta', partitions: 1, replicaEndpoints: [['127.0.0.1:7001']] },
          {
            name: 'alpha',
            partitions: 2,
            maxRecordBytes: 100,
            quotas: { recordsPerSecond: 5 },
            access: { producers: ['a'] },
            replicaEndpoints: [['h1:1', 'h2:1'], ['[::1]:2']],
          },
        ],
      }),
    );
    const c = StaticCatalog.fromFile(f);
    expect(c.ready()).toBe(true);
    expect(c.list().map((t) => t.name)).toEqual(['alpha', 'zeta']);
    expect(c.get('zeta')).toMatchObject({ maxRecordBytes: DEFAULT_MAX_RECORD_BYTES, quotas: {} });
    expect(c.get('alpha')!.access).toEqual({ producers: ['a'], consumers: [], admins: [], groups: [] });
    expect(c.get('nope')).toBeUndefined();
  });

  test('replicationFactor: the voters a partition should have, when the endpoints list a spare slot too', () => {
    const [withSpare, plain] = parseTopics({
      topics: [
        { name: 'a', partitions: 1, replicationFactor: 3, replicaEndpoints: [['h0:1', 'h1:1', 'h2:1', 'h3:1']] },
        { name: 'b', partitions: 1, replicaEndpoints: [['h0:1', 'h1:1', 'h2:1']] },
      ],
    });
    expect(replicationFactorOf(withSpare, 0)).toBe(3);
    expect(withSpare.replicaEndpoints[0]).toHaveLength(4);
    // Absent: each partition's endpoint count (local mode, older operators).
    expect(replicationFactorOf(plain, 0)).toBe(3);
  });

  test.each([
    [{ topics: [{ name: 'Bad_Name', partitions: 1, replicaEndpoints: [['h:1']] }] }, /\/topics\/0\/name/],
    [{ topics: [{ name: 't', partitions: 2, replicaEndpoints: [['h:1']] }] }, /one per partition/],
    [{ topics: [{ name: 't', partitions: 1, replicaEndpoints: [['nohost']] }] }, /replicaEndpoints\/0\/0/],
    [{ topics: [{ name: 't', partitions: 1, replicaEndpoints: [['h:1']], extra: 1 }] }, /\/topics\/0\/extra/],
    [
      {
        topics: [
          { name: 't', partitions: 1, replicaEndpoints: [['h:1']] },
          { name: 't', partitions: 1, replicaEndpoints: [['h:1']] },
        ],
      },
      /listed twice/,
    ],
  ])('refuses an invalid topics document, naming the field (%#)', (doc, msg) => {
    expect(() => parseTopics(doc)).toThrow(CatalogError);
    expect(() => parseTopics(doc)).toThrow(msg);
  });
});
