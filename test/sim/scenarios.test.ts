import { MessageType, NotLeaderError, ProposalsPausedError } from '../../replica/raft';
import { cutBoth, elect, member, scenario, waitFor, write } from './scenario';
import { runSeed } from './simulation';

const ONE = new Uint8Array([1]);

describe('pre-vote', () => {
  test('a node cut off from the leader but not from the others cannot disrupt the group', () => {
    const sim = scenario({ preVote: true, checkQuorum: true });
    const [n1, n2, n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    write(sim, n1, 3);
    const term = n1.raft!.term;
    sim.cut(n1.id, n3.id);
    sim.cut(n3.id, n1.id);
    sim.runFor(3000); // thirty election timeouts
    // n3 keeps asking for pre-votes, n2 keeps refusing (it hears the leader): no term moves.
    expect(n1.raft!.role).toBe('leader');
    expect([n1, n2, n3].map((n) => n.raft!.term)).toEqual([term, term, term]);
    expect(['precandidate', 'follower']).toContain(n3.raft!.role);
    write(sim, n1, 3);
  });

  test('without pre-vote and check-quorum the same partial partition deposes a healthy leader', () => {
    const sim = scenario({ preVote: false, checkQuorum: false });
    const [n1, n2, n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    write(sim, n1, 3);
    const term = n1.raft!.term;
    sim.cut(n1.id, n3.id);
    sim.cut(n3.id, n1.id);
    sim.runFor(3000);
    expect(n2.raft!.term).toBeGreaterThan(term);
    expect(n2.raft!.leader).not.toBe(n1.id);
  });
});

describe('check-quorum', () => {
  test('a leader cut off from the majority steps down within an election timeout, and stops taking writes', () => {
    const sim = scenario();
    const [n1, n2, n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    write(sim, n1, 2);
    const term = n1.raft!.term;
    cutBoth(sim, n1, [n2, n3]);
    const timeoutMs = 2 * sim.profile.electionTicks * sim.profile.tickMs;
    // No higher term can reach it: it notices the lost quorum by itself.
    waitFor(sim, 'the isolated leader to step down', () => n1.raft!.role !== 'leader', timeoutMs);
    expect(n1.raft!.term).toBe(term);
    expect(() => n1.raft!.propose(ONE)).toThrow(NotLeaderError);
    waitFor(sim, 'a new leader in the majority', () => sim.leader() !== null && sim.leader() !== n1);
    write(sim, sim.leader()!, 2);
  });
});

describe('leadership transfer', () => {
  test('to a lagging follower: proposals pause, the target catches up, then takes over', () => {
    const sim = scenario({ maxSizePerMsgBytes: 64, maxInflightMsgs: 2 });
    const [n1, , n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    write(sim, n1, 5);
    cutBoth(sim, n3, [n1, member(sim, 2)]);
    for (let i = 0; i < 10; i++) write(sim, n1, 20);
    sim.healAll();
    const commit = n1.raft!.commit;
    expect(n3.smApplied).toBeLessThan(commit - 100);
    expect(sim.transfer(n1, n3.id)).toBe(true);
    expect(() => n1.raft!.propose(ONE)).toThrow(ProposalsPausedError);
    waitFor(sim, 'n3 to lead', () => n3.raft!.role === 'leader');
    // Leader completeness (checked by the oracle too): n3 holds everything that was committed.
    expect(n3.raft!.lastIndex).toBeGreaterThanOrEqual(commit);
    expect(n1.raft!.role).toBe('follower');
    write(sim, n3, 3);
  });

  test('to a follower that cannot catch up: aborted after an election timeout, proposals resume', () => {
    const sim = scenario();
    const [n1, , n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    write(sim, n1, 3);
    sim.crash(n3);
    write(sim, n1, 3);
    expect(sim.transfer(n1, n3.id)).toBe(true);
    expect(() => n1.raft!.propose(ONE)).toThrow(ProposalsPausedError);
    sim.runFor(1.5 * sim.profile.electionTicks * sim.profile.tickMs);
    expect(n1.raft!.role).toBe('leader');
    expect(n1.raft!.status().leadTransferee).toBeNull();
    write(sim, n1, 3);
  });
});

describe('membership', () => {
  test('removing the leader: it pauses proposals, steps down once the removal commits, the rest carry on', () => {
    const sim = scenario();
    const [n1, n2, n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    write(sim, n1, 3);
    expect(sim.changeMembership(n1, 'remove', n1.id)).toBe(true);
    expect(() => n1.raft!.propose(ONE)).toThrow(ProposalsPausedError);
    waitFor(sim, 'n1 to step down', () => n1.raft!.role !== 'leader');
    expect(n1.raft!.conf.voters).toEqual([n2.id, n3.id]);
    waitFor(sim, 'a leader among n2, n3', () => [n2, n3].includes(sim.leader()!));
    const l = sim.leader()!;
    write(sim, l, 3);
    sim.runFor(2000);
    // Not a voter any more: it never campaigns.
    expect(n1.raft!.role).toBe('follower');
    expect(sim.leader()).toBe(l);
  });

  test('a one-at-a-time rule: a second change is refused while the first is unapplied', () => {
    const sim = scenario();
    const n1 = member(sim, 1);
    elect(sim, n1);
    write(sim, n1, 1);
    const n4 = sim.spawn();
    const n5 = sim.spawn();
    expect(sim.changeMembership(n1, 'addLearner', n4.id)).toBe(true);
    expect(sim.changeMembership(n1, 'addLearner', n5.id)).toBe(false);
    waitFor(sim, 'n4 to be a learner', () => n1.raft!.conf.learners.includes(n4.id));
    expect(sim.changeMembership(n1, 'addLearner', n5.id)).toBe(true);
  });

  test('a learner catches up (by snapshot), does not count towards commit, and can be promoted', () => {
    const sim = scenario({ compactEvery: 20 });
    const [n1, n2, n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    for (let i = 0; i < 5; i++) write(sim, n1, 20);
    const n4 = sim.spawn();
    expect(sim.changeMembership(n1, 'addLearner', n4.id)).toBe(true);
    waitFor(sim, 'n4 to catch up', () => n4.smApplied >= n1.raft!.commit && n1.raft!.conf.learners.includes(n4.id));
    expect(n4.disk.durable.firstIndex()).toBeGreaterThan(2); // it started from a snapshot
    expect(n4.raft!.role).toBe('follower');

    // Leader + learner are not a quorum of {n1, n2, n3}.
    sim.crash(n2);
    sim.crash(n3);
    const [idx] = sim.propose(n1, 1)!;
    sim.runFor(50);
    expect(n4.disk.durable.lastIndex()).toBeGreaterThanOrEqual(idx);
    expect(n1.raft!.commit).toBeLessThan(idx);
    sim.restart(n2);
    sim.restart(n3);
    waitFor(sim, 'a leader again', () => sim.leader() !== null && sim.leader()!.raft!.conf.voters.length === 3);

    const l = sim.leader()!;
    waitFor(sim, 'the promotion to be accepted', () => sim.changeMembership(l, 'promote', n4.id));
    waitFor(sim, 'n4 to be a voter', () => l.raft!.conf.voters.includes(n4.id));
    write(sim, l, 3);
    waitFor(sim, 'n4 to apply everything', () => n4.smApplied === l.raft!.commit);
  });
});

describe('snapshots', () => {
  test('a follower far behind a compacted leader is sent a snapshot and catches up', () => {
    const sim = scenario({ compactEvery: 10, compactKeep: 0 });
    const [n1, , n3] = [1, 2, 3].map((i) => member(sim, i));
    elect(sim, n1);
    write(sim, n1, 5);
    sim.crash(n3);
    for (let i = 0; i < 10; i++) write(sim, n1, 10);
    const behind = n3.disk.durable.lastIndex();
    // The entries n3 needs next are gone from the leader's log.
    expect(n1.disk.live.firstIndex()).toBeGreaterThan(behind + 1);
    let snaps = 0;
    sim.filter = (m) => {
      if (m.type === MessageType.Snap && m.to === n3.id) snaps++;
      return true;
    };
    sim.restart(n3);
    waitFor(sim, 'n3 to catch up', () => n3.smApplied >= n1.raft!.commit);
    expect(snaps).toBeGreaterThan(0);
    expect(n3.disk.durable.firstIndex() - 1).toBeGreaterThan(behind);
    write(sim, n1, 3);
  });
});

describe('simulator', () => {
  test('a seed replays exactly', () => {
    const a = runSeed({ seed: 4242, trace: true, budget: 'quick' });
    const b = runSeed({ seed: 4242, trace: true, budget: 'quick' });
    expect(a.ok).toBe(true);
    expect(b.trace).toEqual(a.trace);
    expect(a.events).toBeGreaterThan(100);
  });
});
