/**
 * Bounds-checked byte reading and writing for frame payloads (handshakes, RPC headers, the
 * partition API codec). Every length read from the wire is checked against what remains before
 * anything is sliced or allocated; a violation throws CodecError, never a RangeError from Buffer.
 *
 * Integers are big-endian. `i53` is an IEEE-754 double that must hold a safe integer: offsets,
 * timestamps and sequence numbers are JS numbers everywhere in Daftka, so the wire keeps that
 * range exactly (a u64 would need a BigInt on every read).
 */

export type CodecErrorReason = 'short' | 'bad_length' | 'bad_value' | 'bad_utf8' | 'trailing_bytes' | 'bad_json';

export class CodecError extends Error {
  constructor(
    readonly reason: CodecErrorReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
    this.name = 'CodecError';
  }
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export class BufReader {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.byteLength - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.buf.byteLength - this.pos)
      throw new CodecError('short', `${what}: need ${n} bytes at offset ${this.pos}, have ${this.remaining}`);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** A safe integer carried as a double; `min` defaults to 0 (offsets and counts are never negative). */
  i53(what = 'i53', min = 0): number {
    this.need(8, what);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    if (!Number.isSafeInteger(v) || v < min)
      throw new CodecError('bad_value', `${what}: ${v} is not a safe integer ≥ ${min}`);
    return v;
  }

  bool(what = 'bool'): boolean {
    const v = this.u8(what);
    if (v > 1) throw new CodecError('bad_value', `${what}: ${v} is not a boolean`);
    return v === 1;
  }

  /** n bytes as a view into the frame (no copy). */
  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** u32 length + bytes. */
  bytes32(what = 'bytes'): Buffer {
    return this.bytes(this.u32(what), what);
  }

  /**
   * u32 length + bytes, as a plain Uint8Array view (no copy). Several times cheaper to make than
   * a Buffer view, which matters for the hundreds of keys and values in one produce or fetch.
   */
  view32(what = 'bytes'): Uint8Array {
    const n = this.u32(what);
    this.need(n, what);
    const v = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return v;
  }

  /** UTF-8 string with a u16 length prefix; invalid UTF-8 is refused, not replaced. */
  str16(what = 'string'): string {
    return decodeUtf8(this.bytes(this.u16(what), what), what);
  }

  /** UTF-8 string with a u32 length prefix. */
  str32(what = 'string'): string {
    return decodeUtf8(this.bytes(this.u32(what), what), what);
  }

  /** UTF-8 string with a u8 length prefix, restricted to printable ASCII (method names, request ids). */
  ascii8(what = 'ascii'): string {
    const b = this.bytes(this.u8(what), what);
    for (let i = 0; i < b.byteLength; i++)
      if (b[i] < 0x20 || b[i] > 0x7e)
        throw new CodecError('bad_value', `${what}: non-printable byte 0x${b[i].toString(16)}`);
    return b.toString('latin1');
  }

  /** The rest of the buffer (no copy). */
  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.byteLength;
    return v;
  }

  /** Assert the whole input was consumed: trailing bytes mean the two sides disagree on a layout. */
  end(what = 'message'): void {
    if (this.pos !== this.buf.byteLength)
      throw new CodecError('trailing_bytes', `${what}: ${this.remaining} bytes left after decoding`);
  }
}

function decodeUtf8(b: Buffer, what: string): string {
  // Fast path: pure ASCII (topics, groups, ids, header names) needs no validation pass.
  let ascii = true;
  for (let i = 0; i < b.byteLength; i++)
    if (b[i] > 0x7f) {
      ascii = false;
      break;
    }
  if (ascii) return b.toString('latin1');
  try {
    return utf8Strict.decode(b);
  } catch {
    throw new CodecError('bad_utf8', `${what}: invalid UTF-8`);
  }
}

/** A growable output buffer; `finish()` returns a view of what was written (no copy). */
export class BufWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initialBytes = 256) {
    this.buf = Buffer.allocUnsafe(Math.max(16, initialBytes));
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    checkUint(v, 0xff, 'u8');
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    checkUint(v, 0xffff, 'u16');
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    checkUint(v, 0xffffffff, 'u32');
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  i53(v: number, min = 0): this {
    if (!Number.isSafeInteger(v) || v < min) throw new CodecError('bad_value', `${v} is not a safe integer ≥ ${min}`);
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.byteLength);
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
    return this;
  }

  bytes32(b: Uint8Array): this {
    return this.u32(b.byteLength).bytes(b);
  }

  str16(s: string): this {
    return this.strN(s, 0xffff, 2);
  }

  str32(s: string): this {
    return this.strN(s, 0xffffffff, 4);
  }

  ascii8(s: string): this {
    if (s.length > 0xff) throw new CodecError('bad_length', `ascii string of ${s.length} chars exceeds 255`);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e)
        throw new CodecError('bad_value', `non-printable char 0x${c.toString(16)} in ${JSON.stringify(s)}`);
    }
    this.ensure(1 + s.length);
    this.buf[this.pos++] = s.length;
    this.pos += this.buf.write(s, this.pos, s.length, 'latin1');
    return this;
  }

  private strN(s: string, max: number, prefix: 2 | 4): this {
    const n = Buffer.byteLength(s, 'utf8');
    if (n > max) throw new CodecError('bad_length', `string of ${n} bytes exceeds ${max}`);
    this.ensure(prefix + n);
    if (prefix === 2) this.buf.writeUInt16BE(n, this.pos);
    else this.buf.writeUInt32BE(n, this.pos);
    this.pos += prefix;
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
    return this;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function checkUint(v: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new CodecError('bad_value', `${v} is not a ${what}`);
}
