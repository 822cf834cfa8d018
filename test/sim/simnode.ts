import type { ConfState, Entry, NodeId, RaftNode, RaftStorage, Ready, Snapshot } from '../../replica/raft';
import { chainStep, decodeChain } from './chain';
import type { SimDisk } from './disk';
import type { Prng } from './prng';

/**
 * What the operator in the simulation intends for a replica:
 * member → (removing → decommissioned) ; joining → member.
 */
export type Lifecycle = 'member' | 'joining' | 'removing' | 'decommissioned';

export interface Proposal {
  term: number;
  id: number;
}

/**
 * The part of the Oracle a node reports its log chains to (test/sim/oracle.ts implements it).
 * Declared here so that the oracle imports SimNode and SimNode does not import the oracle.
 */
export interface ChainRegistry {
  registerEntry(n: SimNode, index: number, term: number, chain: number): void;
  chainOf(index: number, term: number): number | undefined;
}

/**
 * One simulated replica: its disk, its running Raft process (null while down), its state
 * machine, and the hash chain over its live log that the oracle compares.
 */
export class SimNode {
  raft: RaftNode | null = null;
  /** Process generation: events scheduled for an earlier process are ignored. */
  epoch = 0;
  /** A Ready is being persisted (waiting for fsync). */
  busy = false;
  lifecycle: Lifecycle;
  /** Disk stalls until this time (ms). */
  stalledUntil = 0;
  /** The whole process is frozen (GC pause, SIGSTOP) until this time: events wait for it. */
  pausedUntil = 0;

  /** chains[i - chainBase] = chain value of the live log at index i. */
  chainBase = 0;
  chains: number[] = [0];

  /** The state machine: how far it applied, its chain value there, and the membership it derived. */
  smApplied = 0;
  smChain = 0;
  smConf: ConfState = { voters: [], learners: [] };

  /** Highest commit the oracle saw from the current process. */
  lastCommitSeen = 0;
  /** Config entries proposed through the current process and not yet in a Ready. */
  inMemoryConfigs: number[] = [];
  /** Client proposals through the current process, by index. */
  readonly proposals = new Map<number, Proposal>();

  constructor(
    readonly id: NodeId,
    readonly ordinal: number,
    readonly incarnation: number,
    readonly disk: SimDisk,
    readonly tickMs: number,
    readonly rng: Prng,
    lifecycle: Lifecycle,
  ) {
    this.lifecycle = lifecycle;
  }

  get up(): boolean {
    return this.raft !== null;
  }

  chainAt(index: number): number | undefined {
    const k = index - this.chainBase;
    return k >= 0 && k < this.chains.length ? this.chains[k] : undefined;
  }

  /** Mirror a Ready written to the live disk. */
  writeChains(rd: Ready, oracle: ChainRegistry): void {
    if (rd.snapshot !== undefined) this.resetChains(rd.snapshot);
    if (rd.entries.length === 0) return;
    let from = 0;
    let first = rd.entries[0].index;
    if (first <= this.chainBase) {
      from = this.chainBase + 1 - first;
      first = this.chainBase + 1;
    }
    this.chains.length = first - this.chainBase;
    let prev = this.chains[this.chains.length - 1];
    for (let i = from; i < rd.entries.length; i++) {
      const e = rd.entries[i];
      prev = chainStep(prev, e);
      this.chains.push(prev);
      oracle.registerEntry(this, e.index, e.term, prev);
    }
  }

  private resetChains(snap: Snapshot): void {
    this.chainBase = snap.meta.index;
    this.chains = [decodeChain(snap.data)];
  }

  compactChains(to: number): void {
    if (to <= this.chainBase) return;
    this.chains = this.chains.slice(to - this.chainBase);
    this.chainBase = to;
  }

  /** After a crash: recompute the chains and the state machine from what survived on disk. */
  rebuildFromDisk(oracle: ChainRegistry): void {
    const live = this.disk.live;
    const snap = live.snapshot()!;
    const base = live.firstIndex() - 1;
    let chain: number | undefined =
      base === snap.meta.index ? decodeChain(snap.data) : oracle.chainOf(base, live.term(base)!);
    if (chain === undefined) throw new Error(`no chain known for compaction point ${base} of ${this.id}`);
    this.chainBase = base;
    this.chains = [chain];
    const last = live.lastIndex();
    if (last > base) {
      for (const e of live.entries(base + 1, last + 1, Number.MAX_SAFE_INTEGER)!) {
        chain = chainStep(chain, e);
        this.chains.push(chain);
      }
    }
    this.smApplied = snap.meta.index;
    this.smChain = decodeChain(snap.data);
    this.smConf = snap.meta.conf;
    this.busy = false;
    this.inMemoryConfigs = [];
    this.proposals.clear();
  }
}

/**
 * The storage view handed to the Raft core: the node's live disk, except that entries() and
 * snapshot() sometimes answer "not available now" (like the replica's bounded cache over
 * RocksDB); `onUnavailable` schedules the logAvailable() call that follows.
 */
export class FlakyStorage implements RaftStorage {
  constructor(
    private readonly node: SimNode,
    private readonly unavailable: () => boolean,
    private readonly onUnavailable: () => void,
  ) {}

  private get st() {
    return this.node.disk.live;
  }
  initialState() {
    return this.st.initialState();
  }
  firstIndex(): number {
    return this.st.firstIndex();
  }
  lastIndex(): number {
    return this.st.lastIndex();
  }
  term(index: number): number | undefined {
    return this.st.term(index);
  }
  entries(lo: number, hi: number, maxBytes: number): Entry[] | null {
    if (this.unavailable()) {
      this.onUnavailable();
      return null;
    }
    return this.st.entries(lo, hi, maxBytes);
  }
  snapshot(): Snapshot | null {
    if (this.unavailable()) {
      this.onUnavailable();
      return null;
    }
    return this.st.snapshot();
  }
}
