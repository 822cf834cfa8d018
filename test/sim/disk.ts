import { MemoryStorage, type ConfState, type Entry, type HardState, type Snapshot } from '../../replica/raft';
import type { Prng } from './prng';

/**
 * A simulated disk with a write-ahead log's failure model: writes land in the page cache
 * (`live`, what the running process reads) at once and reach the platter (`durable`) only at
 * fsync. A crash keeps a random *prefix* of the unsynced batches (a WAL never reorders) and
 * loses the rest; the process restarts from what survived.
 */
export interface Batch {
  snapshot?: Snapshot;
  entries: Entry[];
  hardState?: HardState;
  /** The driver's own snapshot of its state machine, then compaction of the log up to `compactTo`. */
  ownSnapshot?: { index: number; conf: ConfState; data: Uint8Array; compactTo: number };
}

/** Batches reach `durable` in the order they reached `live`, so they always apply cleanly. */
function applyBatch(st: MemoryStorage, b: Batch): void {
  if (b.snapshot !== undefined) st.applySnapshot(b.snapshot);
  st.append(b.entries);
  if (b.hardState !== undefined) st.setHardState(b.hardState);
  if (b.ownSnapshot !== undefined) {
    const o = b.ownSnapshot;
    if (o.index > st.snapshot()!.meta.index) {
      st.createSnapshot(o.index, o.conf, o.data);
      // The simulated driver restarts from its snapshot: the membership as of that index.
      st.setConf(o.conf);
    }
    st.compact(o.compactTo);
  }
}

export class SimDisk {
  durable: MemoryStorage;
  live: MemoryStorage;
  /** Hard state in `live` / `durable` (kept here to avoid copying it out of the storage). */
  liveHs: HardState;
  durableHs: HardState;
  private pending: Batch[] = [];

  constructor(initial: MemoryStorage) {
    this.durable = initial.clone();
    this.live = initial;
    this.liveHs = initial.initialState().hardState;
    this.durableHs = this.liveHs;
  }

  write(b: Batch): void {
    applyBatch(this.live, b);
    if (b.hardState !== undefined) this.liveHs = b.hardState;
    this.pending.push(b);
  }

  get unsynced(): number {
    return this.pending.length;
  }

  /** fsync: everything written so far is durable. */
  sync(): void {
    for (const b of this.pending) {
      applyBatch(this.durable, b);
      if (b.hardState !== undefined) this.durableHs = b.hardState;
    }
    this.pending = [];
  }

  /** Power loss: a random prefix of the unsynced batches survives. Returns how many did. */
  crash(rng: Prng): number {
    const keep = rng.int(this.pending.length + 1);
    for (let i = 0; i < keep; i++) {
      applyBatch(this.durable, this.pending[i]);
      if (this.pending[i].hardState !== undefined) this.durableHs = this.pending[i].hardState!;
    }
    this.pending = [];
    this.live = this.durable.clone();
    this.liveHs = this.durableHs;
    return keep;
  }
}
