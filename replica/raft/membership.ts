import type { ConfChangeRefusalReason } from './errors';
import type { ConfState, NodeId } from './types';

/**
 * Membership: who votes, who only replicates, and what a quorum is.
 *
 * Changes are single-server (add a learner, promote a learner, remove a member), carried by
 * Config entries and taken into effect when the entry is *applied* (etcd-io/raft's model). They
 * are safe because (1) any majority of C and any majority of C±1 server intersect, (2) a leader
 * proposes a change only when no other change is proposed-but-unapplied (one at a time), and
 * (3) only after it committed an entry of its own term (Ongaro's fix to the single-server
 * algorithm: otherwise two leaders of different terms could each add a different server and
 * form disjoint majorities).
 */

export type ConfChangeType = 'addLearner' | 'promote' | 'remove';

export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
}

/** Why `cc` cannot be applied to `conf`, or null if it can. Pure: the leader checks it before proposing. */
export function validateConfChange(
  conf: ConfState,
  cc: ConfChange,
): { reason: ConfChangeRefusalReason; detail: string } | null {
  const isVoter = conf.voters.includes(cc.node);
  const isLearner = conf.learners.includes(cc.node);
  switch (cc.type) {
    case 'addLearner':
      return isVoter || isLearner ? { reason: 'invalid', detail: `${cc.node} is already a member` } : null;
    case 'promote':
      return isLearner ? null : { reason: 'invalid', detail: `${cc.node} is not a learner` };
    case 'remove':
      if (!isVoter && !isLearner) return { reason: 'invalid', detail: `${cc.node} is not a member` };
      if (isVoter && conf.voters.length === 1) return { reason: 'lastVoter', detail: `${cc.node} is the only voter` };
      return null;
  }
}

/**
 * The configuration after `cc`. Deterministic and total (every replica applies the same
 * committed entry to the same configuration and must reach the same result): a change that does
 * not apply leaves the configuration as it is. Lists are kept sorted.
 */
export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((n) => n !== cc.node);
  const learners = conf.learners.filter((n) => n !== cc.node);
  const wasVoter = voters.length !== conf.voters.length;
  const wasLearner = learners.length !== conf.learners.length;
  switch (cc.type) {
    case 'addLearner':
      if (wasVoter || wasLearner) return conf;
      learners.push(cc.node);
      break;
    case 'promote':
      if (!wasLearner) return conf;
      voters.push(cc.node);
      break;
    case 'remove':
      // Never leave a group without voters (validateConfChange refuses to propose it).
      if (wasVoter && voters.length === 0) return conf;
      break;
  }
  return { voters: voters.sort(), learners: learners.sort() };
}

export function confEquals(a: ConfState, b: ConfState): boolean {
  const same = (x: NodeId[], y: NodeId[]) => {
    if (x.length !== y.length) return false;
    const xs = [...x].sort();
    const ys = [...y].sort();
    return xs.every((v, i) => v === ys[i]);
  };
  return same(a.voters, b.voters) && same(a.learners, b.learners);
}

/** The configuration in effect on one node, with quorum arithmetic. Immutable. */
export class Membership {
  readonly voters: ReadonlySet<NodeId>;
  readonly learners: ReadonlySet<NodeId>;
  /** Votes or acknowledgements needed: a strict majority of voters. */
  readonly quorum: number;
  private readonly voterList: NodeId[];
  private readonly matchScratch: number[];

  constructor(readonly conf: ConfState) {
    this.voterList = [...conf.voters];
    this.voters = new Set(conf.voters);
    this.learners = new Set(conf.learners);
    this.quorum = Math.floor(this.voters.size / 2) + 1;
    this.matchScratch = new Array<number>(this.voterList.length).fill(0);
  }

  isVoter(id: NodeId): boolean {
    return this.voters.has(id);
  }

  isMember(id: NodeId): boolean {
    return this.voters.has(id) || this.learners.has(id);
  }

  /** Every member, voters first. */
  members(): NodeId[] {
    return [...this.voterList, ...this.conf.learners];
  }

  /**
   * The largest index that a quorum of voters has durably matched. `matchOf` must report, for
   * the leader itself, only what it has persisted (the leader counts itself after its fsync).
   */
  committedIndex(matchOf: (id: NodeId) => number): number {
    const n = this.voterList.length;
    if (n === 0) return 0;
    const m = this.matchScratch;
    // Insertion sort, descending: groups have a handful of voters, and this runs on every ack.
    for (let i = 0; i < n; i++) {
      const v = matchOf(this.voterList[i]);
      let j = i;
      while (j > 0 && m[j - 1] < v) {
        m[j] = m[j - 1];
        j--;
      }
      m[j] = v;
    }
    // Sorted descending, the quorum-th value is held by at least `quorum` voters.
    return m[this.quorum - 1];
  }

  /** Election outcome from the responses so far (learners' and strangers' votes do not count). */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterList) {
      const v = votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    if (granted >= this.quorum) return 'won';
    // Even if every missing voter granted, no majority: lost.
    if (rejected > this.voterList.length - this.quorum) return 'lost';
    return 'pending';
  }

  /** Does a quorum of voters satisfy `pred`? (check-quorum) */
  hasQuorum(pred: (id: NodeId) => boolean): boolean {
    let n = 0;
    for (const id of this.voterList) if (pred(id)) n++;
    return n >= this.quorum;
  }
}
