/** Shared set-up for the storage tests: temp dirs, a silent logger, entry builders. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger, type Logger } from '../../common/log';
import { ReplicaStorage, type StorageOptions, type StoredEntry } from '../../replica/storage/storage';

export function tempDir(tag: string): string {
  return mkdtempSync(path.join(tmpdir(), `daftka-storage-${tag}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A logger that drops everything (tests assert on behaviour, not on log lines). */
export function quietLogger(): Logger {
  const sink = new PassThrough();
  sink.resume();
  return createLogger('storage-test', { stream: sink });
}

export function openStorage(dir: string, opts: Partial<StorageOptions> = {}): Promise<ReplicaStorage> {
  return ReplicaStorage.open({ dir, fsync: 'always', fsyncIntervalMs: 50, logger: quietLogger(), ...opts });
}

/** Deterministic payload for an entry, so a reader can check it without remembering it. */
export function payload(index: number, term: number, size = 32): Uint8Array {
  const b = Buffer.alloc(size);
  b.write(`i=${index};t=${term};`, 'latin1');
  for (let i = 16; i < size; i++) b[i] = (index * 31 + term * 7 + i) & 0xff;
  return b;
}

export function entries(from: number, to: number, term: number, size = 32): StoredEntry[] {
  const out: StoredEntry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: i % 3, data: payload(i, term, size) });
  return out;
}

export const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');
export const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
