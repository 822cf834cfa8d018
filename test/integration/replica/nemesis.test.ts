import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DaftkaError } from '../../../common/errors';
import { ProxyMesh } from '../../helpers/fault-proxy';
import { checkHistory, HistoryRecorder, type History } from '../../helpers/history';
import { Nemesis, plan } from '../../helpers/nemesis';
import { ReplicaCluster } from '../../helpers/replica-cluster';
import { Clients, Workload, WORKLOAD_GROUP } from '../../helpers/workload';
import { Prng } from '../../sim/prng';
import { TEST_ENV, text } from './helpers';

/**
 * DESIGN §12 tier 3: three real replica processes whose peer links (Raft traffic, and the
 * replicas' status calls to each other) all run through fault-injecting TCP proxies, one per
 * directed link. A workload (test/helpers/workload.ts) — producers retrying with idempotency keys,
 * one-shot producers, a group-offset committer and reader, a poller per replica — runs while a
 * seeded nemesis (test/helpers/nemesis.ts) isolates the leader, cuts links one way, delays and
 * stalls links, SIGSTOPs processes and kill -9s them.
 * Then everything is healed, the group forms and catches up, and a checker over the recorded
 * history (test/helpers/history.ts) must find nothing: no lost acknowledged write, no offset with
 * two values, no duplicate, no failed write visible, monotonic high watermarks and group offsets.
 *
 * Replay a run: DAFTKA_NEMESIS_SEED=<seed printed by the run>. The seed fixes the schedule (which
 * faults, in which order, how long, leader or follower, which link); timing under load does not
 * replay exactly.
 */

jest.setTimeout(120_000);

// ---- the checker has teeth (no processes) ----

describe('history checker (hand-made histories)', () => {
  const err = (code: 'NOT_LEADER' | 'COMMIT_UNKNOWN') => new DaftkaError(code, 'test');

  /** a: [a/0 a/1] acked at 0; b: [b/0] acked at 2; three replicas' final logs agree; g1 committed 3. */
  function base(): { r: HistoryRecorder; h: History } {
    const r = new HistoryRecorder();
    const a = r.produce('a', ['a/0', 'a/1']);
    r.attempt(a, '0@10').failed(err('NOT_LEADER'));
    r.attempt(a, '1@11').ok({ baseOffset: 0, count: 2, duplicate: false });
    const b = r.produce('b', ['b/0']);
    r.attempt(b, '1@11').failed(err('COMMIT_UNKNOWN'));
    r.attempt(b, '1@11').ok({ baseOffset: 2, count: 1, duplicate: true });
    r.fetch({
      process: '2@12',
      invoke: r.tick(),
      offset: 0,
      records: [
        [0, 'a/0'],
        [1, 'a/1'],
      ],
      nextOffset: 2,
      highWatermark: 2,
      logStartOffset: 0,
    });
    r.commit('g1', 3, '1@11')(null);
    r.groupRead({ group: 'g1', process: '1@11', invoke: r.tick(), offset: 3, final: false });
    for (const p of ['0@10', '1@11', '2@12'])
      r.finalLog({
        process: p,
        logStartOffset: 0,
        highWatermark: 3,
        records: [
          [0, 'a/0'],
          [1, 'a/1'],
          [2, 'b/0'],
        ],
      });
    r.groupRead({ group: 'g1', process: '1@11', invoke: r.tick(), offset: 3, final: true });
    return { r, h: r.history };
  }
  const violations = (h: History) => checkHistory(h).violations;

  test('a consistent history passes', () => {
    const { h } = base();
    const report = checkHistory(h);
    expect(report.violations).toEqual([]);
    expect(report.stats).toMatchObject({ writes: 2, acked: 2, failed: 0, unknown: 0, finalHighWatermark: 3 });
  });

  test('an acknowledged write missing from one final log is lost', () => {
    const { h } = base();
    h.finalLogs[1] = {
      process: '1@11',
      logStartOffset: 0,
      highWatermark: 2,
      records: h.finalLogs[1].records.slice(0, 2),
    };
    expect(violations(h)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^lost acknowledged write: b acknowledged at 2 .* final log of 1@11 is missing/),
        expect.stringMatching(/^final logs differ/),
      ]),
    );
  });

  test('an acknowledged offset holding another value is flagged at the offset and as lost', () => {
    const { r, h } = base();
    r.produce('c', ['c/0']);
    h.finalLogs[2].records[2] = [2, 'c/0'];
    const v = violations(h);
    expect(v).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^two values at one offset: offset 2 holds b\/0 .* and c\/0 \(final log of 2@12\)/),
        expect.stringMatching(/^lost acknowledged write: b .* final log of 2@12 holds c\/0/),
      ]),
    );
  });

  test('a value at two offsets is a duplicate', () => {
    const { h } = base();
    for (const l of h.finalLogs) {
      l.records.push([3, 'b/0']);
      l.highWatermark = 4;
    }
    expect(violations(h)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^duplicate: b\/0 is at offset 2 .* and at offset 3/)]),
    );
  });

  test('a write whose every attempt definitely failed must not be visible; an unknown one may be', () => {
    const { r, h } = base();
    const c = r.produce('c', ['c/0']);
    r.attempt(c, '0@10').failed(err('NOT_LEADER'));
    const d = r.produce('d', ['d/0']);
    r.attempt(d, '0@10').failed(err('COMMIT_UNKNOWN'));
    r.fetch({
      process: '0@10',
      invoke: r.tick(),
      offset: 3,
      records: [[3, 'd/0']],
      nextOffset: 4,
      highWatermark: 4,
      logStartOffset: 0,
    });
    expect(violations(h)).toEqual([]);
    r.fetch({
      process: '0@10',
      invoke: r.tick(),
      offset: 4,
      records: [[4, 'c/0']],
      nextOffset: 5,
      highWatermark: 5,
      logStartOffset: 0,
    });
    expect(violations(h)).toEqual([
      expect.stringMatching(/^failed write visible: c\/0 at offset 4 .* every attempt of c failed: NOT_LEADER@0@10/),
    ]);
  });

  test('a batch split apart or half present is flagged', () => {
    const { h } = base();
    h.finalLogs[0].records = [
      [0, 'a/0'],
      [1, 'b/0'],
      [2, 'a/1'],
    ];
    expect(violations(h)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^batch not contiguous: a starts at 0 .* a\/1 at 2/)]),
    );
    const { h: h2 } = base();
    for (const l of h2.finalLogs) {
      l.records = l.records.filter(([, v]) => v !== 'a/1');
      l.records = l.records.map(([, v], i) => [i, v]);
    }
    expect(violations(h2)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^partial batch: a: 1 of 2 records/)]),
    );
  });

  test('a high watermark going back within one process is flagged, across a restart or overlapping calls it is not', () => {
    const poll = (r: HistoryRecorder, process: string, hw: number, invoke = r.tick()) =>
      r.fetch({ process, invoke, offset: 0, records: [], nextOffset: 0, highWatermark: hw, logStartOffset: 0 });
    const { r, h } = base();
    poll(r, '2@12', 1);
    expect(violations(h)).toEqual([
      expect.stringMatching(
        /^high watermark went back: 2@12: fetch@0 answered 2 \(t\d+\), a later fetch@0 .* answered 1/,
      ),
    ]);
    const { r: r2, h: h2 } = base();
    poll(r2, '2@99', 0); // a new incarnation of ordinal 2
    const early = r2.tick(); // sent before the fetch below completed: the two overlap
    poll(r2, '2@99', 3);
    poll(r2, '2@99', 2, early);
    expect(violations(h2)).toEqual([]);
    const { r: r3, h: h3 } = base();
    r3.status({
      process: '2@12',
      invoke: r3.tick(),
      highWatermark: 1,
      logStartOffset: 0,
      term: 1,
      role: 'follower',
      replicaId: '2.x',
    });
    expect(violations(h3)).toEqual([
      expect.stringMatching(/^high watermark went back: 2@12: fetch@0 .* status .* answered 1/),
    ]);
  });

  test('group offsets: going back on one process, a phantom value, a lost acknowledged commit', () => {
    const { r, h } = base();
    r.groupRead({ group: 'g1', process: '1@11', invoke: r.tick(), offset: null, final: false });
    expect(violations(h)).toEqual([
      expect.stringMatching(/^group offset went back: group g1 on 1@11: 3 .*, then null/),
    ]);

    const { r: r2, h: h2 } = base();
    r2.groupRead({ group: 'g1', process: '0@10', invoke: r2.tick(), offset: 2, final: false });
    expect(violations(h2)).toEqual([expect.stringMatching(/^group offset phantom: group g1: 0@10 answered 2/)]);

    const { r: r3, h: h3 } = base();
    const settle = r3.commit('g1', 5, '1@11');
    const refused = r3.commit('g1', 6, '1@11');
    settle(null);
    refused(err('NOT_LEADER'));
    r3.groupRead({ group: 'g1', process: '2@12', invoke: r3.tick(), offset: 6, final: false });
    expect(violations(h3)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^group offset of a failed commit: group g1: 2@12 answered 6 .* NOT_LEADER/),
        expect.stringMatching(/^acknowledged group commit lost: group g1: final read from 1@11 answered 3, below .* 5/),
      ]),
    );
  });

  test('a stale group-offset read on another replica is reported apart, not as a violation', () => {
    const { r, h } = base();
    r.groupRead({ group: 'g1', process: '0@10', invoke: r.tick(), offset: null, final: false });
    const report = checkHistory(h);
    expect(report.violations).toEqual([]);
    expect(report.staleGroupReads).toEqual([expect.stringMatching(/^group g1: 0@10 answered null .* commit of 3/)]);
  });
});

// ---- real processes under a nemesis ----

const NEMESIS_BUDGET_MS = 30_000;
const RETRIABLE = new Set(['NOT_LEADER', 'COMMIT_UNKNOWN', 'NO_QUORUM', 'OVERLOADED', 'UNAVAILABLE', 'TIMEOUT']);

describe('nemesis: link cuts, stalls, pauses and kill -9 under load', () => {
  let cluster: ReplicaCluster | undefined;
  let mesh: ProxyMesh | undefined;
  let clients: Clients | undefined;
  let workload: Workload | undefined;
  let nemesis: Nemesis | undefined;
  let failed = true;

  afterAll(async () => {
    nemesis?.abort();
    nemesis?.healEverything();
    await workload?.abort();
    clients?.close();
    await cluster?.stop({ keepLogs: failed || process.env.DAFTKA_KEEP_LOGS === '1' });
    await mesh?.close();
    if (failed && cluster) console.log(`nemesis: replica logs kept in ${cluster.logDir}`);
  });

  test('every acknowledged write survives, nothing is written twice, watermarks and group offsets never go back', async () => {
    const seed = process.env.DAFTKA_NEMESIS_SEED ? Number(process.env.DAFTKA_NEMESIS_SEED) : randomInt(2 ** 31);
    console.log(`nemesis: seed ${seed} (replay with DAFTKA_NEMESIS_SEED=${seed})`);
    const { faults, pick } = plan(new Prng(seed));
    const t0 = Date.now();

    // Each replica dials the others through its own proxies: its DAFTKA_REPLICAS names the
    // proxies for every ordinal but its own (identity is checked in the handshake, not by address).
    const replicasFor: string[] = [];
    cluster = await ReplicaCluster.start({
      size: 3,
      env: TEST_ENV,
      startOrdinals: [],
      envFor: (o) => ({ DAFTKA_REPLICAS: replicasFor[o] }),
    });
    const c = cluster;
    mesh = await ProxyMesh.start(
      c.slots.map((s) => [s.peerPort, s.clientPort]),
      // A stalled link gives up (resets its connection) after 32 KiB held in one direction.
      { avoidPorts: c.slots.map((s) => s.httpPort), maxBufferedBytes: 32 << 10 },
    );
    const m = mesh;
    for (const a of c.slots)
      replicasFor[a.ordinal] = c.slots
        .map((b) =>
          a === b
            ? `127.0.0.1:${b.peerPort}:${b.clientPort}`
            : `127.0.0.1:${m.port(a.ordinal, b.ordinal, 0)}:${m.port(a.ordinal, b.ordinal, 1)}`,
        )
        .join(',');
    for (const s of c.slots) await c.restart(s.ordinal);
    await c.waitFormed(60_000);
    const formedMs = Date.now() - t0;

    const rec = new HistoryRecorder();
    clients = new Clients(c);
    workload = new Workload(c, m, clients, rec);
    const w = workload;
    w.start();
    await c.waitFor(() => rec.history.produces.some((op) => op.ack !== null), 20_000, 'the first acknowledged write');

    nemesis = new Nemesis(c, m, pick);
    const n = nemesis;
    const tFaults = Date.now();
    await n.run(faults, NEMESIS_BUDGET_MS, 7);
    const faultsMs = Date.now() - tFaults;

    // Heal, let every write in flight finish, then read the durable state of every replica.
    n.healEverything();
    for (const s of c.slots) if (!s.running) await c.restart(s.ordinal);
    await w.stop(15_000);
    const formed = await c.waitFormed(30_000);
    const leader = (await c.waitForLeader()).ordinal;
    const hw = (await c.status(leader))!.highWatermark;
    for (const s of c.slots)
      await c.waitFor(
        async () => ((await c.status(s.ordinal))?.highWatermark ?? -1) >= hw,
        20_000,
        `replica ${s.ordinal} to reach ${hw}`,
      );
    for (const s of c.slots) {
      const records: Array<[number, string]> = [];
      let offset = 0;
      let last = { highWatermark: 0, logStartOffset: 0 };
      let who: string | null = null;
      for (;;) {
        const r = await clients.call(s.ordinal, (cl) =>
          cl.fetch({
            topic: c.topic,
            partition: c.partition,
            offset,
            maxRecords: 5000,
            maxBytes: 8 << 20,
            waitMs: 0,
            requestId: 'final',
          }),
        );
        who = r.process;
        last = r.value;
        records.push(...r.value.records.map((x): [number, string] => [x.offset, text(x.value)!]));
        if (r.value.records.length === 0 || r.value.nextOffset >= r.value.highWatermark) break;
        offset = r.value.nextOffset;
      }
      rec.finalLog({
        process: who ?? `${s.ordinal}@?`,
        logStartOffset: last.logStartOffset,
        highWatermark: last.highWatermark,
        records,
      });
    }
    const invoke = rec.tick();
    const g = await clients.call(leader, (cl) =>
      cl.getOffset({ group: WORKLOAD_GROUP, topic: c.topic, partition: c.partition, requestId: 'final-get' }),
    );
    rec.groupRead({
      group: WORKLOAD_GROUP,
      process: g.process ?? `${leader}@?`,
      invoke,
      offset: g.value.offset,
      final: true,
    });

    const report = checkHistory(rec.history);
    const proxies = m.stats();
    const summary = {
      seed,
      formedMs,
      faultsMs,
      totalMs: Date.now() - t0,
      faults: n.done.map((d) => `${(d.atMs / 1000).toFixed(1)}s ${d.fault} on ${d.target} (${d.tookMs} ms)`),
      leadersSeen: [...w.leadersSeen],
      finalTerm: formed.term,
      ...report.stats,
      produceErrors: Object.fromEntries(w.errors),
      proxies,
      staleGroupReads: report.staleGroupReads.length,
      staleGroupReadExamples: report.staleGroupReads.slice(0, 3),
    };
    console.log(`nemesis summary ${JSON.stringify(summary, null, 2)}`);
    if (report.violations.length > 0) {
      const file = join(c.logDir, `history-${seed}.json`);
      writeFileSync(file, JSON.stringify(rec.history));
      console.log(`nemesis: ${report.violations.length} violations (seed ${seed}); history in ${file}`);
    }

    expect(report.violations).toEqual([]);
    // The run did something: writes flowed, leadership moved, links were cut, processes died.
    expect(report.stats.acked).toBeGreaterThanOrEqual(300);
    expect(report.stats.commitsAcked).toBeGreaterThanOrEqual(10);
    expect(new Set([...w.leadersSeen].map((l) => l.split('/')[1])).size).toBeGreaterThanOrEqual(2);
    expect(proxies.cut + proxies.refused).toBeGreaterThan(0);
    expect(n.done.filter((d) => d.fault.includes('kill9')).length).toBeGreaterThanOrEqual(2);
    // Only retriable answers: anything else is a bug the checker might not see.
    expect([...w.errors.keys()].filter((code) => !RETRIABLE.has(code))).toEqual([]);
    failed = false;
  });
});
