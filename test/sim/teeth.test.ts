import type { RaftBugs } from '../../replica/raft/bugs';
import { runSwarm } from './swarm';

/**
 * Proof that the oracle has teeth: with one safety rule broken in the core (a test-only switch),
 * the swarm finds a violation within a bounded number of seeds, and names the right invariant.
 */
const MAX_SEEDS = 200;

const cases: [keyof RaftBugs, string[]][] = [
  ['ackBeforePersist', ['ack before persist', 'durable quorum']],
  ['commitPreviousTermEntries', ['commit by counting']],
  ['forgetVoteOnRestart', ['one vote per term', 'election safety']],
  // Dropping acknowledged entries shows up as a truncation below commit, a committed entry gone,
  // a commit without a durable quorum, or an ack (sent with the truncating write) for data that
  // write removed.
  [
    'truncateBelowCommit',
    ['truncation below commit', 'truncation of committed entry', 'durable quorum', 'ack before persist'],
  ],
];

test.each(cases)(
  'breaking %s is caught within the seed budget',
  (bug, invariants) => {
    const report = runSwarm(0, MAX_SEEDS, { budget: 'quick', bugs: { [bug]: true }, stopAtFirstFailure: true });
    expect(report.failures).toHaveLength(1);
    const failure = report.failures[0];
    expect(invariants).toContain(failure.invariant);
    // Report where it was found (deterministic), for docs/raft.md.
    console.log(`${bug}: caught at seed ${failure.seed} (${failure.invariant}): ${failure.error?.split('\n')[0]}`);
  },
  120_000,
);
