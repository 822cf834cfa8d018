import type { ConfState, Entry, HardState, RaftStorage, Snapshot } from '../raft';
import type { Recovered, ReplicaStorage } from '../storage/storage';

/** Entries loaded below the cache and kept until the core takes them (one request's worth). */
const LOADED_MAX_ENTRIES = 10_000;
/**
 * The Raft core's read side (RaftStorage) over the replica's RocksDB log. The core reads
 * synchronously; RocksDB lives in a worker thread. So this keeps the tail of the log in memory
 * (a byte-bounded cache) plus a compact term map of the whole log, and answers "not now" (null)
 * for entries it has to load: it loads them asynchronously and calls `onAvailable`, after which
 * the driver calls `RaftNode.logAvailable()` and the core asks again.
 *
 * The driver keeps it in step with what it persisted: `appended` after every durable append,
 * `compacted` after retention, `installed` after a snapshot install.
 */
export interface ReplicaLogOptions {
  cacheBytes: number;
  onAvailable: () => void;
  /** Build the snapshot for the current compaction point (state machine export, asynchronous). */
  makeSnapshot: () => Promise<Snapshot>;
  onError: (err: unknown) => void;
}

export class ReplicaLog implements RaftStorage {
  private hard: HardState;
  private conf: ConfState;
  private first: number;
  private last: number;
  /** [startIndex, term]; the first run covers firstIndex - 1 (the compaction point). */
  private runs: Array<[number, number]>;
  /** Contiguous cached entries [cacheStart, last]. */
  private cache: Entry[] = [];
  private cacheStart: number;
  private cacheBytes = 0;
  /** Entries loaded on demand below the cache, served once then dropped. */
  private loaded = new Map<number, Entry>();
  private loading = false;
  private snap: Snapshot | null = null;
  private snapping = false;

  constructor(
    private readonly storage: ReplicaStorage,
    rec: Recovered,
    private readonly opts: ReplicaLogOptions,
  ) {
    this.hard = rec.hardState ?? { term: 0, vote: null, commit: 0 };
    this.conf = rec.conf ?? { voters: [], learners: [] };
    this.first = rec.firstIndex;
    this.last = rec.lastIndex;
    this.runs = [[rec.firstIndex - 1, rec.prevTerm], ...rec.termRuns.map(([i, t]): [number, number] => [i, t])];
    this.normaliseRuns();
    this.cacheStart = this.last + 1;
  }

  // ---- RaftStorage (read side, synchronous) ----

  initialState(): { hardState: HardState; conf: ConfState } {
    return { hardState: { ...this.hard }, conf: { voters: [...this.conf.voters], learners: [...this.conf.learners] } };
  }
  firstIndex(): number {
    return this.first;
  }
  lastIndex(): number {
    return this.last;
  }
  term(index: number): number | undefined {
    if (index < this.first - 1 || index > this.last) return undefined;
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.runs[mid][0] <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.runs[lo][1];
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] | null {
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = i >= this.cacheStart ? this.cache[i - this.cacheStart] : this.loaded.get(i);
      if (e === undefined) {
        if (out.length > 0) return out;
        this.load(i, hi, maxBytes);
        return null;
      }
      if (out.length > 0 && bytes + e.data.length > maxBytes) break;
      bytes += e.data.length;
      out.push(e);
      if (i < this.cacheStart) this.loaded.delete(i);
    }
    return out;
  }

  /** The snapshot built last may no longer be sent (its export closed): build another next time. */
  forgetSnapshot(): void {
    this.snap = null;
  }

  snapshot(): Snapshot | null {
    if (this.snap !== null && this.snap.meta.index === this.first - 1) return this.snap;
    if (!this.snapping) {
      this.snapping = true;
      this.opts
        .makeSnapshot()
        .then((s) => {
          this.snap = s;
          this.snapping = false;
          this.opts.onAvailable();
        })
        .catch((err) => {
          this.snapping = false;
          this.opts.onError(err);
        });
    }
    return null;
  }

  /** Entries for readers outside the core (fetch): cache first, then storage. */
  async read(lo: number, hi: number, maxBytes: number): Promise<Entry[]> {
    if (lo >= this.cacheStart && lo <= this.last) {
      const out: Entry[] = [];
      let bytes = 0;
      for (let i = lo; i < Math.min(hi, this.last + 1); i++) {
        const e = this.cache[i - this.cacheStart];
        if (out.length > 0 && bytes + e.data.length > maxBytes) break;
        bytes += e.data.length;
        out.push(e);
      }
      return out;
    }
    return (await this.storage.readEntries(lo, Math.min(hi, this.last + 1), maxBytes)) as Entry[];
  }

  private load(lo: number, hi: number, maxBytes: number): void {
    if (this.loading) return;
    this.loading = true;
    // At most the side cache's bound: a longer read would evict its own first entries (the
    // oldest go first), `lo` among them, and the core would ask for it again, for ever.
    const end = Math.min(hi, this.cacheStart, this.last + 1, lo + LOADED_MAX_ENTRIES);
    this.storage
      .readEntries(lo, end, Math.max(maxBytes, 1))
      .then((es) => {
        for (const e of es) this.loaded.set(e.index, e as Entry);
        // Bound the side cache: it only bridges one core request.
        while (this.loaded.size > LOADED_MAX_ENTRIES) this.loaded.delete(this.loaded.keys().next().value as number);
        this.loading = false;
        this.opts.onAvailable();
      })
      .catch((err) => {
        this.loading = false;
        this.opts.onError(err);
      });
  }

  // ---- write side (the driver, after the matching durable write) ----

  appended(entries: readonly Entry[], hardState?: HardState): void {
    if (hardState) this.hard = hardState;
    if (entries.length === 0) return;
    const start = entries[0].index;
    // Raft truncation: entries at ≥ start are replaced.
    if (start <= this.last) {
      while (this.runs.length > 1 && this.runs[this.runs.length - 1][0] >= start) this.runs.pop();
      if (start >= this.cacheStart) {
        for (const e of this.cache.splice(start - this.cacheStart)) this.cacheBytes -= cachedSize(e);
      } else {
        this.cache = [];
        this.cacheBytes = 0;
        this.cacheStart = start;
      }
      for (const k of this.loaded.keys()) if (k >= start) this.loaded.delete(k);
    }
    if (this.cache.length === 0) this.cacheStart = start;
    for (const e of entries) {
      const lastRun = this.runs[this.runs.length - 1];
      if (lastRun[1] !== e.term) this.runs.push([e.index, e.term]);
      this.cache.push(e);
      this.cacheBytes += cachedSize(e);
    }
    this.last = entries[entries.length - 1].index;
    this.evict();
  }

  /**
   * Key compaction rewrote these (applied) entries in storage: cached copies take the new data,
   * so the leader's appends and fetch serve what the disk has. An entry cached with another term
   * is a different entry (a snapshot replaced the log meanwhile): left alone.
   */
  rewritten(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index >= this.cacheStart && e.index <= this.last) {
        const at = e.index - this.cacheStart;
        const old = this.cache[at];
        if (old === undefined || old.term !== e.term) continue;
        this.cacheBytes += cachedSize(e) - cachedSize(old);
        this.cache[at] = e;
      } else if (this.loaded.get(e.index)?.term === e.term) this.loaded.set(e.index, e);
    }
  }

  setConf(conf: ConfState): void {
    this.conf = { voters: [...conf.voters], learners: [...conf.learners] };
  }

  compacted(newFirst: number): void {
    if (newFirst <= this.first) return;
    const prevTerm = this.term(newFirst - 1);
    if (prevTerm === undefined)
      throw new Error(`compaction to ${newFirst} outside the log [${this.first}, ${this.last}]`);
    this.first = newFirst;
    while (this.runs.length > 1 && this.runs[1][0] <= newFirst - 1) this.runs.shift();
    this.runs[0] = [newFirst - 1, prevTerm];
    if (this.cacheStart < newFirst) {
      const drop = Math.min(newFirst - this.cacheStart, this.cache.length);
      for (const e of this.cache.splice(0, drop)) this.cacheBytes -= cachedSize(e);
      this.cacheStart = newFirst;
    }
    for (const k of this.loaded.keys()) if (k < newFirst) this.loaded.delete(k);
    this.snap = null;
  }

  installed(meta: { index: number; term: number; conf: ConfState }): void {
    this.first = meta.index + 1;
    this.last = meta.index;
    this.runs = [[meta.index, meta.term]];
    this.cache = [];
    this.cacheBytes = 0;
    this.cacheStart = meta.index + 1;
    this.loaded.clear();
    this.conf = meta.conf;
    this.snap = null;
  }

  get cachedBytes(): number {
    return this.cacheBytes;
  }

  /**
   * Over the bound: drop the oldest entries down to 7/8 of it in one splice. One `shift` per
   * appended entry was a memmove of the whole array each time (V8 cannot left-trim a large
   * array): with ~400,000 small entries cached, produce fell from ~12,000/s to under 1,000/s
   * (issue 20's profile: 95 % of the time in evict).
   */
  private evict(): void {
    if (this.cacheBytes <= this.opts.cacheBytes || this.cache.length <= 1) return;
    const target = this.opts.cacheBytes - (this.opts.cacheBytes >> 3);
    let n = 0;
    while (this.cacheBytes > target && n < this.cache.length - 1) this.cacheBytes -= cachedSize(this.cache[n++]);
    this.cache.splice(0, n);
    this.cacheStart += n;
  }

  private normaliseRuns(): void {
    const out: Array<[number, number]> = [];
    for (const r of this.runs) if (out.length === 0 || out[out.length - 1][1] !== r[1]) out.push(r);
    this.runs = out;
  }
}

/**
 * What a cached entry costs: its data plus the Entry object and the Uint8Array view (measured
 * ~165 B of heap each, whatever the data) and the rounding of the Buffer pool its data was cut
 * from. Counting data alone let a cache of one-record entries hold three times its bound.
 */
const ENTRY_OVERHEAD_BYTES = 192;
function cachedSize(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}
