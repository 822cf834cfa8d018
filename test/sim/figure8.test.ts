import { EntryType, MessageType } from '../../replica/raft';
import type { RaftBugs } from '../../replica/raft/bugs';
import { Violation } from './oracle';
import { cutBoth, elect, member, scenario } from './scenario';

/**
 * Raft paper, Figure 8: why a leader may not commit an entry of an earlier term by counting its
 * replicas, even once that entry is on a majority.
 *
 *  (a) S1 leads term 2 and replicates entries k, k+1 to S2 only.
 *  (b) S1 crashes; S5 wins term 3 (votes S3, S4, S5) and appends its no-op at k; it reaches no one.
 *  (c) S5 crashes; S1 wins term 4 and replicates entry k (term 2) to S3: k is now on S1, S2, S3,
 *      a majority. Its own term-4 no-op reaches only S2.
 *  (d) S1 crashes; S5 wins term 5 (votes S3, S4, S5: its last term 3 beats their 2) and
 *      overwrites index k everywhere.
 * Had S1 committed k in (c), (d) would lose a committed entry.
 */
function figure8(bugs?: RaftBugs) {
  const sim = scenario(
    // One entry per App, so S3 can receive k without the rest; nobody times out unless forced.
    { nodes: 5, preVote: false, checkQuorum: false, electionTicks: 50, heartbeatTicks: 5, maxSizePerMsgBytes: 16 },
    { bugs },
  );
  // Catch the consequence, not the rule: let a leader commit an old-term entry if it does.
  sim.oracle.checkCommitRule = false;
  const [s1, s2, s3, s4, s5] = [1, 2, 3, 4, 5].map((i) => member(sim, i));

  // (a)
  elect(sim, s1);
  sim.runFor(100);
  cutBoth(sim, s1, [s3, s4, s5]);
  const [k] = sim.propose(s1, 2, 20, 20)!;
  sim.runFor(50);
  expect(s2.disk.durable.lastIndex()).toBe(k + 1);
  expect(s3.disk.durable.lastIndex()).toBe(k - 1);
  sim.crash(s1);
  sim.healAll();

  // (b)
  sim.filter = (m) => !(m.from === s5.id && m.type === MessageType.App);
  elect(sim, s5);
  const t3 = s5.raft!.term;
  sim.runFor(20);
  expect(s5.disk.durable.term(k)).toBe(t3);
  sim.crash(s5);

  // (c) S1 delivers entry k to S3 and S4, but nothing after it (Apps starting beyond their logs
  //     still arrive, so they reject them and S1 probes back to k).
  sim.filter = (m) =>
    !(
      m.from === s1.id &&
      m.type === MessageType.App &&
      m.to !== s2.id &&
      m.prevIndex <= k &&
      m.entries.some((e) => e.index > k)
    );
  sim.restart(s1);
  elect(sim, s1);
  expect(s1.raft!.term).toBeGreaterThan(t3);
  sim.runFor(100);
  expect(s3.disk.durable.term(k)).toBe(2);
  const s1Commit = s1.raft!.commit;
  sim.crash(s1);
  sim.filter = null;

  // (d)
  sim.restart(s5);
  elect(sim, s5);
  sim.runFor(300);
  return { sim, k, t3, s1Commit, s3, s4 };
}

test('Figure 8: a leader never commits an earlier-term entry by counting, so it can be overwritten safely', () => {
  const { sim, k, t3, s1Commit, s3, s4 } = figure8();
  // S1 in term 4 saw k on a majority but did not commit it (it was not of its term).
  expect(s1Commit).toBeLessThan(k);
  // S5's term-3 no-op replaced it, legitimately: it was never committed.
  expect(s3.disk.durable.term(k)).toBe(t3);
  expect(s4.disk.durable.term(k)).toBe(t3);
  const e = s3.disk.durable.entries(k, k + 1, 1)![0];
  expect(e.type).toBe(EntryType.NoOp);
  expect(sim.leader()?.id).toBe('n5.1');
});

test('Figure 8 with the commit rule broken: the oracle catches the lost committed entry', () => {
  let caught: unknown;
  try {
    figure8({ commitPreviousTermEntries: true });
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(Violation);
  expect(['leader completeness', 'state machine safety', 'truncation of committed entry']).toContain(
    (caught as Violation).invariant,
  );
});
