import {
  decodeEntry,
  encodeEntry,
  ENTRY_HEADER_BYTES,
  logIndexOf,
  logKey,
  metaKey,
  META,
  stateKey,
} from '../../../../replica/storage/codec';

describe('storage codec', () => {
  it('orders log keys by index (big-endian), across 32-bit boundaries', () => {
    const idx = [0, 1, 255, 256, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER];
    const keys = idx.map(logKey);
    const sorted = [...keys].sort(Buffer.compare);
    expect(sorted.map(logIndexOf)).toEqual(idx);
  });

  it('keeps meta < log < state so each keyspace is one contiguous range', () => {
    const m = metaKey(META.incarnation);
    const l = logKey(Number.MAX_SAFE_INTEGER);
    const s = stateKey(new Uint8Array([0]));
    expect(Buffer.compare(m, logKey(0))).toBeLessThan(0);
    expect(Buffer.compare(l, s)).toBeLessThan(0);
  });

  it('round-trips an entry with its term, type and cumulative size', () => {
    const data = Buffer.from('payload');
    const v = encodeEntry({ index: 7, term: 2 ** 33 + 5, type: 3, data }, 1234);
    const d = decodeEntry(logKey(7), v);
    expect(d).not.toBeNull();
    expect(d).toMatchObject({
      index: 7,
      term: 2 ** 33 + 5,
      type: 3,
      cumBytes: 1234,
      storedBytes: ENTRY_HEADER_BYTES + 7,
    });
    expect(Buffer.from(d!.data).toString()).toBe('payload');
  });

  it('rejects a flipped bit anywhere in the value, a short value, and a value under the wrong key', () => {
    const v = encodeEntry({ index: 9, term: 1, type: 0, data: Buffer.from('abcdef') }, 30);
    for (let i = 0; i < v.length; i++) {
      const bad = Buffer.from(v);
      bad[i] ^= 0x10;
      expect(decodeEntry(logKey(9), bad)).toBeNull();
    }
    expect(decodeEntry(logKey(9), v.subarray(0, ENTRY_HEADER_BYTES - 1))).toBeNull();
    expect(decodeEntry(logKey(10), v)).toBeNull();
  });
});
