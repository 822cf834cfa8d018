/**
 * Typed shim over @nxtedition/rocksdb (an abstract-level store without type declarations).
 * Only the calls the storage worker makes are declared. Import this from the worker only: the
 * binding's writes run synchronously on the calling thread.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const rocks = require('@nxtedition/rocksdb') as { RocksLevel: RocksLevelCtor };

export interface RangeOptions {
  gte?: Uint8Array;
  gt?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  reverse?: boolean;
  limit?: number;
}

export interface RocksIterator {
  /** Up to `size` rows; an empty array at the end. `value` is undefined when values: false. */
  nextv(size: number): Promise<Array<[Buffer, Buffer | undefined]>>;
  /** Position at the first key ≥ target within the iterator's own (fixed) view of the db. */
  seek(target: Uint8Array): void;
  close(): Promise<void>;
}

export interface RocksBatch {
  put(key: Uint8Array, value: Uint8Array): RocksBatch;
  del(key: Uint8Array): RocksBatch;
  readonly length: number;
  /** Synchronous inside: the RocksDB write (and fsync when sync: true) runs on this thread. */
  write(options?: { sync?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export interface RocksDb {
  open(options: {
    createIfMissing?: boolean;
    walCompression?: boolean;
    errorIfExists?: boolean;
    compaction?: 'level' | 'universal';
    memtableMemoryBudget?: number;
    cacheSize?: number;
    cacheIndexAndFilterBlocks?: boolean;
  }): Promise<void>;
  /** A RocksDB property (`rocksdb.cur-size-all-mem-tables`, …) as text; synchronous. */
  getProperty(name: string): string;
  close(): Promise<void>;
  batch(): RocksBatch;
  getMany(keys: Uint8Array[]): Promise<Array<Buffer | undefined>>;
  iterator(options: RangeOptions & { keys?: boolean; values?: boolean }): RocksIterator;
  /** Range delete (RocksDB DeleteRange), unsynced and not atomic with any batch. */
  clear(options: RangeOptions): Promise<void>;
}

type RocksLevelCtor = new (location: string, options: { keyEncoding: 'buffer'; valueEncoding: 'buffer' }) => RocksDb;

export function createRocksDb(location: string): RocksDb {
  return new rocks.RocksLevel(location, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
}

/** Iterate a range in chunks, calling `visit` per row; stop early when it returns false. */
export async function forEachRow(
  db: RocksDb,
  options: RangeOptions & { values?: boolean },
  visit: (key: Buffer, value: Buffer | undefined) => boolean | void,
  chunk = 1024,
): Promise<void> {
  const it = db.iterator({ keys: true, values: options.values ?? true, ...options });
  try {
    for (;;) {
      const rows = await it.nextv(chunk);
      if (rows.length === 0) return;
      for (const [k, v] of rows) if (visit(k, v) === false) return;
    }
  } finally {
    await it.close();
  }
}
