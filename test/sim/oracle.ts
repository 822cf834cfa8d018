import { EntryType, MessageType, type Entry, type Message, type NodeId, type Ready } from '../../replica/raft';
import { BOOT_CHAIN } from './chain';
import type { SimNode } from './simnode';

/** A safety property failed. The message names the invariant and what broke it. */
export class Violation extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'Violation';
  }
}

const TERM_RADIX = 1e6;
const key = (index: number, term: number) => index * TERM_RADIX + term;

/**
 * The judge, outside the nodes. It sees what a node hands to its driver (Ready), what reaches
 * its disk (live and durable), what it sends and applies, and the client acknowledgements, and
 * checks after every event:
 *  - election safety: one leader per term; one vote per (node, term), across restarts;
 *  - log matching: equal (index, term) ⇒ equal prefix (hash chains);
 *  - leader completeness: a new leader holds every entry committed in earlier terms;
 *  - state machine safety: the committed sequence only grows, never changes; every applied
 *    sequence is a prefix of it; nothing at or below a node's commit is truncated;
 *  - durability: a leader's commit, hence every acknowledgement, rests on a quorum of durable
 *    copies; no vote or append ack leaves before the data behind it is fsynced; a persisted
 *    commit never points past the persisted log; snapshots never go behind commit;
 *  - membership: one configuration change at a time, proposed only after a commit in the
 *    leader's term.
 */
export class Oracle {
  private readonly leaders = new Map<number, NodeId>();
  private readonly votes = new Map<NodeId, Map<number, NodeId>>();
  /** (index, term) → chain value: the first log that held that entry defines it. */
  private readonly entryChains = new Map<number, number>();
  /** index → chain value of the committed entry there. Write-once. */
  private readonly committed = new Map<number, number>();
  committedMax = 0;
  /** term → highest index some node knew committed while in that term. */
  private readonly commitSeenAtTerm = new Map<number, number>();
  private readonly leaderTermsChecked = new Set<string>();
  acks = 0;
  checks = 0;
  /**
   * Check the commit-by-counting rule directly. Scenario tests turn it off to show that its
   * consequence (a committed entry overwritten, Figure 8) is caught as well.
   */
  checkCommitRule = true;

  constructor() {
    this.entryChains.set(key(0, 0), 0);
    this.entryChains.set(key(1, 1), BOOT_CHAIN);
    this.committed.set(1, BOOT_CHAIN);
    this.committedMax = 1;
  }

  chainOf(index: number, term: number): number | undefined {
    return this.entryChains.get(key(index, term));
  }

  /** A log entry (index, term) with chain value `chain` appeared in some node's log. */
  registerEntry(n: SimNode, index: number, term: number, chain: number): void {
    const k = key(index, term);
    const known = this.entryChains.get(k);
    if (known === undefined) this.entryChains.set(k, chain);
    else if (known !== chain) {
      throw new Violation('log matching', `${n.id} holds a different log up to entry (${index}, ${term})`);
    }
  }

  private recordCommitted(n: SimNode, index: number, chain: number): void {
    const known = this.committed.get(index);
    if (known === undefined) {
      this.committed.set(index, chain);
      if (index > this.committedMax) this.committedMax = index;
    } else if (known !== chain) {
      throw new Violation('state machine safety', `${n.id} commits a different entry at ${index} than was committed`);
    }
  }

  /** After every event that touched `n`. */
  onEvent(n: SimNode): void {
    const r = n.raft;
    if (r === null) return;
    this.checks++;
    if (r.role === 'leader') {
      const other = this.leaders.get(r.term);
      if (other === undefined) this.leaders.set(r.term, n.id);
      else if (other !== n.id) throw new Violation('election safety', `${other} and ${n.id} both lead term ${r.term}`);
    }
    const commit = r.commit;
    if (commit < n.lastCommitSeen) {
      throw new Violation('commit monotonic', `${n.id} commit went back ${n.lastCommitSeen} → ${commit}`);
    }
    if (commit > n.lastCommitSeen) {
      if (r.role === 'leader') {
        this.checkQuorumDurable(n, n.lastCommitSeen + 1, commit);
        // Raft §5.4.2: a leader's commit index only ever lands on an entry of its own term
        // (it counts replicas of those; earlier entries are committed indirectly).
        if (this.checkCommitRule && n.disk.live.term(commit) !== r.term) {
          throw new Violation(
            'commit by counting',
            `${n.id} (term ${r.term}) advanced commit to ${commit}, an entry of term ${n.disk.live.term(commit)}`,
          );
        }
      }
      n.lastCommitSeen = commit;
    }
  }

  /** A leader advanced commit over [lo, hi]: each entry must be durable on a quorum of its voters. */
  private checkQuorumDurable(n: SimNode, lo: number, hi: number): void {
    const conf = n.raft!.conf;
    const quorum = Math.floor(conf.voters.length / 2) + 1;
    const live = n.disk.live;
    for (let i = Math.max(lo, live.firstIndex()); i <= hi; i++) {
      const term = live.term(i);
      if (term === undefined) {
        throw new Violation('leader commit', `${n.id} committed ${i} which is not on its own disk`);
      }
      let copies = 0;
      for (const v of conf.voters) {
        const d = this.node(v)?.disk.durable;
        if (d === undefined) continue;
        const snapIndex = d.firstIndex() - 1;
        if (d.term(i) === term || (i <= snapIndex && this.committed.has(i))) copies++;
      }
      if (copies < quorum) {
        throw new Violation(
          'durable quorum',
          `${n.id} (term ${n.raft!.term}) committed ${i} with ${copies} durable copies, quorum ${quorum} of [${conf.voters.join(',')}]`,
        );
      }
    }
  }

  nodeLookup: (id: NodeId) => SimNode | undefined = () => undefined;
  private node(id: NodeId): SimNode | undefined {
    return this.nodeLookup(id);
  }

  /** `rd` is about to be written to `n`'s disk. */
  beforeWrite(n: SimNode, rd: Ready): void {
    const live = n.disk.live;
    const hs = n.disk.liveHs;
    if (rd.snapshot !== undefined && rd.snapshot.meta.index <= hs.commit) {
      throw new Violation(
        'snapshot behind commit',
        `${n.id} installs snapshot ${rd.snapshot.meta.index} at or below commit ${hs.commit}`,
      );
    }
    if (rd.hardState !== undefined) {
      const h = rd.hardState;
      if (h.term < hs.term) throw new Violation('term monotonic', `${n.id} persists term ${h.term} < ${hs.term}`);
      if (h.term === hs.term && hs.vote !== null && h.vote !== hs.vote) {
        throw new Violation('one vote per term', `${n.id} changes its vote in term ${h.term}: ${hs.vote} → ${h.vote}`);
      }
    }
    if (rd.entries.length > 0 && rd.snapshot === undefined) {
      // Find where this write starts to differ from the log on disk.
      const first = rd.entries[0].index;
      const last = rd.entries[rd.entries.length - 1].index;
      const liveLast = live.lastIndex();
      let k = first;
      while (k <= Math.min(last, liveLast) && live.term(k) === rd.entries[k - first].term) k++;
      if (k <= liveLast) {
        // Entries k..liveLast are replaced or dropped.
        if (k <= hs.commit) {
          throw new Violation('truncation below commit', `${n.id} truncates its log at ${k}, commit is ${hs.commit}`);
        }
        const mine = n.chainAt(k);
        if (mine !== undefined && this.committed.get(k) === mine) {
          throw new Violation('truncation of committed entry', `${n.id} truncates committed entry ${k}`);
        }
      }
    }
  }

  /** `rd` was written to `n`'s live disk (and n's chains updated). */
  afterWrite(n: SimNode, rd: Ready, prevCommit: number): void {
    const live = n.disk.live;
    const hs = n.disk.liveHs;
    if (hs.commit > live.lastIndex()) {
      throw new Violation(
        'commit beyond log',
        `${n.id} persisted commit ${hs.commit} > last index ${live.lastIndex()}`,
      );
    }
    if (rd.hardState !== undefined && hs.commit > prevCommit) {
      for (let i = Math.max(prevCommit + 1, n.chainBase); i <= hs.commit; i++) {
        this.recordCommitted(n, i, n.chainAt(i)!);
      }
      const seen = this.commitSeenAtTerm.get(hs.term) ?? 0;
      if (hs.commit > seen) this.commitSeenAtTerm.set(hs.term, hs.commit);
    }
    const r = n.raft!;
    if (r.role === 'leader') {
      const k = `${n.id}:${r.term}`;
      if (!this.leaderTermsChecked.has(k)) {
        this.leaderTermsChecked.add(k);
        this.checkLeaderCompleteness(n, r.term);
      }
    }
  }

  /** A leader of `term` must hold every entry committed in earlier terms. */
  private checkLeaderCompleteness(n: SimNode, term: number): void {
    let m = 0;
    for (const [t, idx] of this.commitSeenAtTerm) if (t < term && idx > m) m = idx;
    if (m === 0) return;
    const live = n.disk.live;
    if (m > live.lastIndex()) {
      throw new Violation(
        'leader completeness',
        `${n.id} leads term ${term} with last index ${live.lastIndex()} < committed ${m}`,
      );
    }
    const i = Math.max(m, n.chainBase);
    const c = this.committed.get(i);
    if (c !== undefined && n.chainAt(i) !== c) {
      throw new Violation('leader completeness', `${n.id} leads term ${term} without committed entry ${i}`);
    }
  }

  /** `n`'s durable copy changed (fsync or crash). */
  onDurable(n: SimNode): void {
    const hs = n.disk.durableHs;
    if (hs.vote === null) return;
    let byTerm = this.votes.get(n.id);
    if (byTerm === undefined) this.votes.set(n.id, (byTerm = new Map()));
    const prev = byTerm.get(hs.term);
    if (prev === undefined) byTerm.set(hs.term, hs.vote);
    else if (prev !== hs.vote) {
      throw new Violation('one vote per term', `${n.id} voted for ${prev} and ${hs.vote} in term ${hs.term}`);
    }
  }

  /** `n` restarted from its durable state. */
  onRestart(n: SimNode): void {
    const d = n.disk.durable;
    const hs = n.disk.durableHs;
    if (hs.commit > d.lastIndex()) {
      throw new Violation(
        'commit beyond log',
        `${n.id} restarts with commit ${hs.commit} > last index ${d.lastIndex()}`,
      );
    }
    this.onDurable(n);
  }

  /** `n` is sending `m` (its Ready was persisted as the driver saw fit). */
  onSend(n: SimNode, m: Message): void {
    const d = n.disk.durable;
    switch (m.type) {
      case MessageType.Vote: {
        const hs = n.disk.durableHs;
        // A durable later term also keeps the promise: the node can never act in m.term again.
        if (hs.term < m.term || (hs.term === m.term && hs.vote !== n.id)) {
          throw new Violation(
            'vote before persist',
            `${n.id} campaigns in term ${m.term} before persisting its own vote`,
          );
        }
        return;
      }
      case MessageType.VoteResp: {
        if (m.reject) return;
        const hs = n.disk.durableHs;
        if (hs.term < m.term || (hs.term === m.term && hs.vote !== m.to)) {
          throw new Violation(
            'vote before persist',
            `${n.id} grants ${m.to} term ${m.term} but disk has term ${hs.term} vote ${hs.vote}`,
          );
        }
        return;
      }
      case MessageType.AppResp: {
        if (m.reject || m.index === 0) return;
        // Covered by the durable snapshot (committed state, from this leader's term).
        if (m.index <= d.firstIndex() - 1) return;
        const liveTerm = n.disk.live.term(m.index);
        const durableTerm = d.term(m.index);
        if (durableTerm === undefined || durableTerm !== liveTerm) {
          throw new Violation(
            'ack before persist',
            `${n.id} acks ${m.index} to ${m.to} but its disk has ${durableTerm === undefined ? 'nothing' : `term ${durableTerm}`} there`,
          );
        }
        return;
      }
      default:
        return;
    }
  }

  /** `n`'s state machine applied `e`, reaching chain value `chain`. */
  onApply(n: SimNode, e: Entry, chain: number): void {
    this.recordCommitted(n, e.index, chain);
  }

  /** `n`'s state machine installed a snapshot at `index` with chain `chain`. */
  onInstall(n: SimNode, index: number, chain: number): void {
    this.recordCommitted(n, index, chain);
  }

  /** A client was told its proposal is written at `e.index`. */
  onAck(n: SimNode, e: Entry): void {
    this.acks++;
    const c = this.committed.get(e.index);
    if (c === undefined || c !== n.smChain) {
      throw new Violation('acked entry', `${n.id} acks ${e.index} which is not the committed entry there`);
    }
  }

  /** `n` (leader) just proposed a Config entry at `index`. */
  onConfProposal(n: SimNode, index: number, inMemoryConfigs: number[]): void {
    const r = n.raft!;
    const live = n.disk.live;
    const commitTerm = live.term(r.commit);
    if (commitTerm !== r.term) {
      throw new Violation(
        'config change rule',
        `${n.id} proposed a config change at ${index} before committing in its term ${r.term}`,
      );
    }
    for (let i = r.applied + 1; i <= live.lastIndex(); i++) {
      if (i === index) continue;
      const ents = live.entries(i, i + 1, 1);
      if (ents !== null && ents[0].type === EntryType.Config) {
        throw new Violation('config change rule', `${n.id} proposed config ${index} while ${i} is unapplied`);
      }
    }
    for (const i of inMemoryConfigs) {
      if (i > r.applied && i !== index) {
        throw new Violation('config change rule', `${n.id} proposed config ${index} while ${i} is unapplied`);
      }
    }
  }

  /** Final: a committed entry is never lost from the group (each acked one still readable). */
  committedChain(index: number): number | undefined {
    return this.committed.get(index);
  }
}
