import { EntryType, type ConfState, type Entry, type HardState, type RaftStorage, type Snapshot } from './types';

const EMPTY = new Uint8Array(0);

/**
 * Bootstrap: every initial member of a new group starts from this same snapshot at index 1,
 * term 1, holding the initial voters. A replica joining later starts empty (MemoryStorage's
 * default) and receives a snapshot from the leader first, so no replica ever holds log entries
 * without knowing the configuration they build on.
 */
/** The log index of every group's founding snapshot: a log never compacted starts right after it. */
export const BOOTSTRAP_INDEX = 1;

export function bootstrapSnapshot(voters: string[], data: Uint8Array = EMPTY): Snapshot {
  if (voters.length === 0) throw new RangeError('a group needs at least one voter');
  return { meta: { index: BOOTSTRAP_INDEX, term: 1, conf: { voters: [...voters].sort(), learners: [] } }, data };
}

/**
 * An in-memory RaftStorage with its write side, for tests, the simulator and the benchmark
 * (the replica implements RaftStorage over RocksDB). Not durable by itself: the simulator
 * models durability around it.
 *
 * Layout: `ents[0]` is a placeholder at the compaction point (index = firstIndex()-1) carrying
 * the term there; real entries follow.
 */
export class MemoryStorage implements RaftStorage {
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private conf: ConfState = { voters: [], learners: [] };
  private snap: Snapshot = { meta: { index: 0, term: 0, conf: { voters: [], learners: [] } }, data: EMPTY };
  private ents: Entry[] = [{ index: 0, term: 0, type: EntryType.NoOp, data: EMPTY }];

  /** A founding member of a new group (see bootstrapSnapshot). */
  static bootstrap(voters: string[], data?: Uint8Array): MemoryStorage {
    const s = new MemoryStorage();
    const snap = bootstrapSnapshot(voters, data);
    s.applySnapshot(snap);
    s.setHardState({ term: snap.meta.term, vote: null, commit: snap.meta.index });
    return s;
  }

  initialState(): { hardState: HardState; conf: ConfState } {
    return {
      hardState: { ...this.hardState },
      conf: { voters: [...this.conf.voters], learners: [...this.conf.learners] },
    };
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  term(index: number): number | undefined {
    const off = this.ents[0].index;
    if (index < off || index - off >= this.ents.length) return undefined;
    return this.ents[index - off].term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] | null {
    const off = this.ents[0].index;
    if (lo <= off || hi > this.lastIndex() + 1 || lo >= hi) {
      throw new RangeError(`entries [${lo}, ${hi}) outside (${off}, ${this.lastIndex()}]`);
    }
    const out: Entry[] = [this.ents[lo - off]];
    let bytes = out[0].data.length;
    for (let i = lo + 1; i < hi; i++) {
      const e = this.ents[i - off];
      bytes += e.data.length;
      if (bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot | null {
    return this.snap;
  }

  // ---- write side (the driver) ----

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  /** The membership as of the driver's applied index (returned by initialState()). */
  setConf(conf: ConfState): void {
    this.conf = { voters: [...conf.voters], learners: [...conf.learners] };
  }

  /** Persist Ready.entries: they replace every entry at index ≥ entries[0].index. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const off = this.ents[0].index;
    let first = entries[0].index;
    if (first > this.lastIndex() + 1) {
      throw new RangeError(`append leaves a gap: ${first} after ${this.lastIndex()}`);
    }
    let from = 0;
    if (first <= off) {
      // Already compacted (covered by the snapshot): skip those.
      from = off + 1 - first;
      if (from >= entries.length) return;
      first = off + 1;
    }
    this.ents.length = first - off;
    for (let i = from; i < entries.length; i++) this.ents.push(entries[i]);
  }

  /** Install a snapshot: the whole log is replaced by it. */
  applySnapshot(snap: Snapshot): void {
    if (snap.meta.index < this.snap.meta.index) {
      throw new RangeError(`snapshot ${snap.meta.index} older than ${this.snap.meta.index}`);
    }
    this.snap = snap;
    this.ents = [{ index: snap.meta.index, term: snap.meta.term, type: EntryType.NoOp, data: EMPTY }];
    this.setConf(snap.meta.conf);
  }

  /** Record the state machine at `index` (≤ applied) as the snapshot to send to lagging followers. */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    const term = this.term(index);
    if (index < this.snap.meta.index || term === undefined) {
      throw new RangeError(`cannot snapshot at ${index} (snapshot ${this.snap.meta.index}, last ${this.lastIndex()})`);
    }
    this.snap = { meta: { index, term, conf: { voters: [...conf.voters], learners: [...conf.learners] } }, data };
    return this.snap;
  }

  /**
   * Discard entries up to and including `index`. A snapshot must already cover it, so a
   * follower that needs a discarded entry can always be sent a snapshot instead.
   */
  compact(index: number): void {
    const off = this.ents[0].index;
    if (index <= off) return;
    if (index > this.snap.meta.index) {
      throw new RangeError(`compact(${index}) beyond snapshot ${this.snap.meta.index}`);
    }
    const e = this.ents[index - off];
    this.ents = [{ index, term: e.term, type: EntryType.NoOp, data: EMPTY }, ...this.ents.slice(index - off + 1)];
  }

  /** A deep copy of the log structure (entries themselves are immutable and shared). */
  clone(): MemoryStorage {
    const c = new MemoryStorage();
    c.hardState = { ...this.hardState };
    c.conf = { voters: [...this.conf.voters], learners: [...this.conf.learners] };
    c.snap = this.snap;
    c.ents = this.ents.slice();
    return c;
  }
}
