import { crc32 } from 'node:zlib';
import type { Socket } from 'node:net';

/**
 * Binary frames shared by the peer port and the client port (docs/wire-protocol.md).
 *
 *   offset size  field
 *   0      1     version        FRAME_VERSION (1)
 *   1      1     type           FrameType
 *   2      2     flags          u16 BE, no bits defined in version 1 (must be 0)
 *   4      4     payloadLength  u32 BE, ≤ the receiver's maxFrameBytes
 *   8      4     crc            u32 BE, CRC-32 (zlib) over bytes 0..7 then the payload
 *   12     n     payload
 *
 * The header is validated before the payload is waited for, so an oversize length is refused
 * without buffering a byte of it.
 */

export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 12;
/**
 * TCP keepalive on every peer and client-port connection: an idle connection to a host that
 * vanished (node lost, no RST) is noticed within about this long plus the kernel's probes,
 * instead of on the next write or call timeout.
 */
export const TCP_KEEPALIVE_MS = 10_000;
/** Default cap on one frame's payload. Every receiver refuses larger frames. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Bits of `flags` that version 1 defines (none). A frame with any other bit set is refused. */
export const KNOWN_FLAGS = 0;

export const FrameType = {
  /** Peer port: first frame on an outbound connection: sender id, target id, cluster id. */
  PEER_HELLO: 0x01,
  /** Peer port: the acceptor took the handshake. */
  PEER_HELLO_ACK: 0x02,
  /** Peer port: the acceptor refused the handshake (reason string), then closes. */
  PEER_HELLO_REJECT: 0x03,
  /** Peer port: one opaque Raft message. */
  PEER_MESSAGE: 0x04,
  /** Client port: a call (correlation id, timeout, method, request id, body). */
  RPC_REQUEST: 0x10,
  /** Client port: a successful answer (correlation id, body). */
  RPC_RESPONSE: 0x11,
  /** Client port: a failed answer (correlation id, DaftkaError as JSON). */
  RPC_ERROR: 0x12,
  /** Client port: the caller gave up on a call (correlation id); the server aborts it. */
  RPC_CANCEL: 0x13,
  /** Client port, first frame from the server: nonce, topic, whether a credential is required (rpc-auth.ts). */
  RPC_CHALLENGE: 0x14,
  /** Client port, first frame from the client: role, nonce, HMAC tag. */
  RPC_HELLO: 0x15,
  /** Client port: the server admitted the connection (role, its own proof of the key). */
  RPC_WELCOME: 0x16,
  /** Client port: the server refused the hello (reason), then closes. */
  RPC_REFUSED: 0x17,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const PEER_FRAME_TYPES: ReadonlySet<number> = new Set([
  FrameType.PEER_HELLO,
  FrameType.PEER_HELLO_ACK,
  FrameType.PEER_HELLO_REJECT,
  FrameType.PEER_MESSAGE,
]);
export const RPC_FRAME_TYPES: ReadonlySet<number> = new Set([
  FrameType.RPC_REQUEST,
  FrameType.RPC_RESPONSE,
  FrameType.RPC_ERROR,
  FrameType.RPC_CANCEL,
  FrameType.RPC_CHALLENGE,
  FrameType.RPC_HELLO,
  FrameType.RPC_WELCOME,
  FrameType.RPC_REFUSED,
]);

export type FrameErrorReason =
  | 'bad_version'
  | 'unknown_type'
  | 'bad_flags'
  | 'oversize'
  | 'crc_mismatch'
  | 'truncated'
  /** The frame decoded but is not allowed here (e.g. a second handshake, a reply type sent to a server). */
  | 'unexpected_type'
  /** The frame decoded but its payload does not (e.g. a handshake or RPC header that is cut short). */
  | 'bad_payload';

export const FRAME_ERROR_REASONS: readonly FrameErrorReason[] = [
  'bad_version',
  'unknown_type',
  'bad_flags',
  'oversize',
  'crc_mismatch',
  'truncated',
  'unexpected_type',
  'bad_payload',
];

/** Input that is not a valid frame. The connection it came from is closed and the reason counted. */
export class FrameError extends Error {
  constructor(
    readonly reason: FrameErrorReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
    this.name = 'FrameError';
  }
}

export interface Frame {
  type: FrameType;
  flags: number;
  /** A view into the received bytes; valid as long as the caller holds it (never reused by the decoder). */
  payload: Buffer;
}

function payloadLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  return n;
}

/**
 * The 12-byte header for a frame whose payload is the concatenation of `parts`. The payload is
 * not copied: callers write the header and then each part (see FrameWriter).
 */
export function encodeFrameHeader(type: FrameType, parts: readonly Uint8Array[], flags = 0): Buffer {
  const length = payloadLength(parts);
  if (length > 0xffffffff) throw new RangeError(`frame payload of ${length} bytes exceeds u32`);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header[0] = FRAME_VERSION;
  header[1] = type;
  header.writeUInt16BE(flags, 2);
  header.writeUInt32BE(length, 4);
  let crc = crc32(header.subarray(0, 8));
  for (const p of parts) crc = crc32(p, crc);
  header.writeUInt32BE(crc, 8);
  return header;
}

/** A whole frame in one buffer (one copy of the payload). For tests and small control frames. */
export function encodeFrame(type: FrameType, payload: Uint8Array = EMPTY, flags = 0): Buffer {
  const header = encodeFrameHeader(type, [payload], flags);
  return Buffer.concat([header, payload], FRAME_HEADER_BYTES + payload.byteLength);
}

const EMPTY = new Uint8Array(0);

function checkMaxFrameBytes(n: number): number {
  if (!(Number.isInteger(n) && n >= 0 && n <= 0xffffffff))
    throw new RangeError(`maxFrameBytes must be an integer in [0, 2^32-1], got ${n}`);
  return n;
}

export interface FrameDecoderOptions {
  /** Frame types accepted on this port; anything else is `unknown_type`. */
  allowedTypes: ReadonlySet<number>;
  /** Largest payload accepted; a header announcing more is `oversize` (checked before buffering). */
  maxFrameBytes?: number;
}

/**
 * Streaming decoder: `push` chunks split anywhere, then pull whole frames with `next()` until it
 * returns undefined. Invalid input throws FrameError from `next()`, after every whole frame before
 * it was handed out; the decoder then stays failed (the connection is to be closed). `end()` says
 * the stream is over: leftover bytes are a `truncated` frame.
 */
export class FrameDecoder {
  private readonly allowedTypes: ReadonlySet<number>;
  private maxBytes: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Header of the frame being assembled, once its 12 bytes have arrived and been validated. */
  private pending: { type: FrameType; flags: number; length: number; crc: number; head: Buffer } | null = null;
  private failed: FrameError | null = null;

  constructor(opts: FrameDecoderOptions) {
    this.allowedTypes = opts.allowedTypes;
    this.maxBytes = checkMaxFrameBytes(opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
  }

  get maxFrameBytes(): number {
    return this.maxBytes;
  }

  /**
   * Change the payload limit for frames whose header has not been read yet. The peer port
   * accepts only a small hello until the handshake completes, then raises the limit.
   */
  setMaxFrameBytes(n: number): void {
    this.maxBytes = checkMaxFrameBytes(n);
  }

  /** Bytes received but not yet handed out as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.chunks.push(b);
    this.buffered += b.byteLength;
  }

  /** The next whole frame, or undefined when more bytes are needed. Throws FrameError on invalid input. */
  next(): Frame | undefined {
    if (this.failed) throw this.failed;
    try {
      return this.step();
    } catch (e) {
      if (e instanceof FrameError) this.failed = e;
      throw e;
    }
  }

  /** Convenience: every whole frame now available (throws like `next`). */
  *frames(): Generator<Frame, void, void> {
    for (let f = this.next(); f !== undefined; f = this.next()) yield f;
  }

  /** The stream ended: a partial frame left over is `truncated`. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered > 0 || this.pending !== null) {
      this.failed = new FrameError(
        'truncated',
        `stream ended inside a frame (${this.buffered} bytes buffered${this.pending ? `, ${this.pending.length}-byte payload announced` : ''})`,
      );
      throw this.failed;
    }
  }

  private step(): Frame | undefined {
    if (this.pending === null) {
      if (this.buffered < FRAME_HEADER_BYTES) return undefined;
      const head = this.take(FRAME_HEADER_BYTES);
      this.pending = this.validateHeader(head);
    }
    const p = this.pending;
    if (this.buffered < p.length) return undefined;
    const payload = p.length === 0 ? Buffer.alloc(0) : this.take(p.length);
    const crc = crc32(payload, crc32(p.head.subarray(0, 8)));
    if (crc !== p.crc)
      throw new FrameError('crc_mismatch', `type 0x${p.type.toString(16)} length ${p.length}: crc ${crc} ≠ ${p.crc}`);
    this.pending = null;
    return { type: p.type, flags: p.flags, payload };
  }

  private validateHeader(head: Buffer) {
    const version = head[0];
    if (version !== FRAME_VERSION) throw new FrameError('bad_version', `version ${version}, expected ${FRAME_VERSION}`);
    const type = head[1];
    if (!this.allowedTypes.has(type)) throw new FrameError('unknown_type', `type 0x${type.toString(16)}`);
    const flags = head.readUInt16BE(2);
    if ((flags & ~KNOWN_FLAGS) !== 0) throw new FrameError('bad_flags', `flags 0x${flags.toString(16)}`);
    const length = head.readUInt32BE(4);
    if (length > this.maxBytes)
      throw new FrameError('oversize', `payload of ${length} bytes exceeds the ${this.maxBytes}-byte limit`);
    return { type: type as FrameType, flags, length, crc: head.readUInt32BE(8), head };
  }

  /**
   * Remove and return the next n buffered bytes (n ≤ buffered). A view when they lie in one chunk
   * (the common case for frames that arrive whole), a copy when they span chunks.
   */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    this.buffered -= n;
    if (first.byteLength === n) {
      this.chunks.shift();
      return first;
    }
    if (first.byteLength > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const want = n - filled;
      if (c.byteLength <= want) {
        c.copy(out, filled);
        filled += c.byteLength;
        this.chunks.shift();
      } else {
        c.copy(out, filled, 0, want);
        this.chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}

/** Frames up to this size (header included) are assembled into one buffer: a copy is cheaper than a writev entry. */
export const COALESCE_FRAME_BYTES = 4096;

/**
 * Writes frames to a socket. Large payloads are not copied: the header and each payload part
 * are separate writes. Small frames are assembled into one buffer (one write instead of
 * several). All frames written in one tick go out together (cork now, uncork on the next tick),
 * so pipelined calls and bursts of Raft messages share syscalls.
 */
export class FrameWriter {
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.socket.uncork();
  };

  constructor(private readonly socket: Socket) {}

  /** Queue one frame; returns false when the socket's buffer is above its high-water mark. */
  write(type: FrameType, parts: readonly Uint8Array[], flags = 0): boolean {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(this.uncork);
    }
    const header = encodeFrameHeader(type, parts, flags);
    const total = FRAME_HEADER_BYTES + header.readUInt32BE(4);
    if (total <= COALESCE_FRAME_BYTES) {
      const frame = Buffer.allocUnsafe(total);
      header.copy(frame, 0);
      let at = FRAME_HEADER_BYTES;
      for (const p of parts) {
        frame.set(p, at);
        at += p.byteLength;
      }
      this.socket.write(frame);
    } else {
      this.socket.write(header);
      for (const p of parts) if (p.byteLength > 0) this.socket.write(p);
    }
    return !this.socket.writableNeedDrain;
  }

  /** Total bytes a frame with these parts puts on the wire. */
  static wireBytes(parts: readonly Uint8Array[]): number {
    return FRAME_HEADER_BYTES + payloadLength(parts);
  }
}
