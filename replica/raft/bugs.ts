import type { RaftConfig } from './types';

/**
 * Test-only fault switches: each breaks exactly one safety rule, so the simulator can prove
 * its oracle notices (test/sim/teeth.test.ts). Production code never sets them; they are
 * reachable only through `withBugs`, under a symbol key, and cost one property read when off.
 */
export interface RaftBugs {
  /** Entries no longer make a Ready "must sync": the driver acks appends it has not fsynced. */
  ackBeforePersist?: boolean;
  /** The leader commits by counting replicas of entries from earlier terms (Raft Figure 8). */
  commitPreviousTermEntries?: boolean;
  /** The vote is not reloaded on restart: a node can vote twice in one term. */
  forgetVoteOnRestart?: boolean;
  /** A follower truncates at every App's prevIndex+1, even stale ones, even below commit. */
  truncateBelowCommit?: boolean;
}

export const RAFT_BUGS = Symbol('daftka.raft.bugs');

export const NO_BUGS: Readonly<RaftBugs> = Object.freeze({});

/** A copy of `config` with the given rules broken. Tests only. */
export function withBugs<T extends RaftConfig>(config: T, bugs: RaftBugs): T {
  return { ...config, [RAFT_BUGS]: bugs };
}

export function bugsOf(config: RaftConfig): Readonly<RaftBugs> {
  return (config as RaftConfig & { [RAFT_BUGS]?: RaftBugs })[RAFT_BUGS] ?? NO_BUGS;
}
