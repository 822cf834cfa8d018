/**
 * The storage engine's public value types. They are plain data (structured-clone safe) because
 * every one of them crosses the main-thread ⇄ worker boundary.
 */
import type { Logger } from '../../common/log';

/** One Raft log entry; structurally identical to the Raft core's `Entry`. */
export interface StoredEntry {
  index: number;
  term: number;
  type: number;
  data: Uint8Array;
}

/** Raft hard state. Persisted before any message that depends on it is sent. */
export interface StoredHardState {
  term: number;
  vote: string | null;
  commit: number;
}

export interface StoredConf {
  voters: string[];
  learners: string[];
}

/** The position a snapshot stands for: the state machine after applying entry `index` (of `term`). */
export interface StoredSnapshotMeta {
  index: number;
  term: number;
  conf: StoredConf;
}

/**
 * One change to the opaque state-machine keyspace. Keys are relative to the state prefix.
 * `delRange` removes every key k with gte ≤ k < lt; a zero-length `lt` means "to the end of the
 * state keyspace".
 */
export type StateOp =
  | { op: 'put'; key: Uint8Array; value: Uint8Array }
  | { op: 'del'; key: Uint8Array }
  | { op: 'delRange'; gte: Uint8Array; lt: Uint8Array };

export interface StorageOptions {
  /** Data directory of this replica (the RocksDB files live in `<dir>/rocksdb`). */
  dir: string;
  /**
   * 'always': every batch holding entries, hard state or conf is written with `sync: true` and
   * acknowledged only after the fsync. 'interval': written unsynced (survives a process crash,
   * not a power failure), with one synced write every `fsyncIntervalMs`.
   */
  fsync: 'always' | 'interval';
  /** Period of the synced write in 'interval' mode. Ignored in 'always' mode. */
  fsyncIntervalMs: number;
  /** Upper bound on the payload bytes merged into one group commit. Default 8 MiB. */
  maxBatchBytes?: number;
  /**
   * Upper bound on payload bytes of writes accepted but not yet written (queued + in flight).
   * An `append` that would exceed it is rejected with DaftkaError OVERLOADED (retryable).
   * Default 64 MiB.
   */
  maxPendingBytes?: number;
  /** How many good entries below the torn tail are CRC-checked at open. Default 4096. */
  verifyTailEntries?: number;
  /** RocksDB block cache (data, index and filter blocks), bytes. Default 8 MiB. */
  blockCacheBytes?: number;
  /** RocksDB memtable budget, bytes. Default 16 MiB. */
  memtableBytes?: number;
  /** Called on the main thread after every group commit (for metrics). */
  onFlush?: (s: FlushStats) => void;
  /** Where storage events go (open, tail repair, worker crash). Default: a 'storage' logger. */
  logger?: Logger;
  /**
   * Disk full (ENOSPC): the write that failed is held and sent again once a small probe write
   * succeeds; probes back off from 100 ms doubling to this cap (jittered). Default 5000.
   */
  diskFullProbeMaxMs?: number;
  /** Called when the disk-full state starts (the error) and ends (null). */
  onDiskFull?: (state: DiskFullState | null) => void;
}

/** Why writes are held: the first ENOSPC of this episode, when, and how many probes failed since. */
export interface DiskFullState {
  sinceMs: number;
  error: string;
  failedProbes: number;
}

export interface FlushStats {
  /** Log entries in the batch. */
  entries: number;
  /** Payload bytes in the batch (entry data + state keys/values). */
  bytes: number;
  /** Caller promises settled by this batch. */
  waiters: number;
  /** Duration of the synced RocksDB write (WAL append + fsync); 0 for an unsynced batch. */
  fsyncSeconds: number;
  /** Worker time for the whole batch: encode, CRC, build and write. */
  writeSeconds: number;
  /** Whether the batch was written with `sync: true`. */
  synced: boolean;
}

export interface Recovered {
  /** Random id made when the directory was first initialised; never reused. */
  incarnation: string;
  freshlyInitialised: boolean;
  hardState: StoredHardState | null;
  conf: StoredConf | null;
  /** Index of the first retained entry; lastIndex = firstIndex - 1 when the log is empty. */
  firstIndex: number;
  lastIndex: number;
  /** Term of lastIndex (the snapshot / compaction term when the log is empty). */
  lastTerm: number;
  appliedIndex: number;
  snapshot: StoredSnapshotMeta | null;
  /** Compact term map of the whole retained log: [startIndex, term] for every run of equal terms. */
  termRuns: Array<[startIndex: number, term: number]>;
  /** Term of entry firstIndex - 1 (the compaction / snapshot point); 0 for a new log. */
  prevTerm: number;
  /** Entries cut from a torn tail at start-up. */
  tailRepaired: number;
  /** Bytes of the retained log as stored (24-byte entry header + data per entry). */
  logBytes: number;
}
