import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { BufReader, BufWriter, CodecError } from '../../protocol/bytes';

/**
 * The peer handshake (docs/wire-protocol.md §Handshake). The connecting side sends PEER_HELLO
 * naming itself, the replica it means to reach, and the Raft group; the acceptor answers
 * PEER_HELLO_ACK, or PEER_HELLO_REJECT with a reason and closes. Checking the target id catches
 * stale DNS (a pod name that now resolves to another replica); checking the cluster id keeps two
 * partitions' groups from ever exchanging votes.
 *
 * Versions: the hello carries the range of message-codec versions the connecting side can write;
 * the acceptor answers with the highest one it can read in that range (in the ACK), or rejects
 * with `incompatible_version`. The connecting side then writes that version on this connection.
 * A mixed-version group during a rolling upgrade thus talks the newest version both ends know,
 * instead of dropping each other's messages. A hello without the range (a peer from before it)
 * means version 1, and so does an empty ACK.
 *
 * Authentication: when the replicas of a group share a secret, the hello also carries
 * `i53 timeMs · 16-byte nonce · 32-byte HMAC-SHA256(secret, from, to, clusterId, versions, timeMs,
 * nonce)`. The acceptor checks the tag, that the time is within PEER_AUTH_SKEW_MS of its own, and
 * that it has not seen the nonce in that window (a recorded hello cannot be played again), before
 * it admits anyone — so a process that can reach the peer port but lacks the secret cannot take
 * a replica's identity, vote or append. It authenticates the connection, not each frame: traffic
 * integrity on a hostile network needs TLS, which the transport does not do (see wire-protocol.md).
 */
export interface VersionRange {
  min: number;
  max: number;
}

export interface Hello {
  from: string;
  to: string;
  /** `${topic}/${partition}`: the Raft group both ends belong to. */
  clusterId: string;
  /** Message-codec versions the sender can write; absent means {1, 1}. */
  versions?: VersionRange;
  /** Present when the sender holds the group's peer secret. */
  auth?: HelloAuth;
}

export interface HelloAuth {
  timeMs: number;
  nonce: Buffer;
  tag: Buffer;
}

const NONCE_BYTES = 16;
const TAG_BYTES = 32;
/** How far a hello's time may be from the acceptor's clock. */
export const PEER_AUTH_SKEW_MS = 120_000;

function helloTag(secret: Buffer, h: Hello, timeMs: number, nonce: Buffer): Buffer {
  const v = h.versions ?? { min: 1, max: 1 };
  return createHmac('sha256', secret)
    .update(`daftka-peer-hello-v1\0${h.from}\0${h.to}\0${h.clusterId}\0${v.min}\0${v.max}\0${timeMs}\0`)
    .update(nonce)
    .digest();
}

/** The hello with its authentication block. */
export function signHello(h: Hello, secret: Buffer, nowMs: number): Hello {
  const nonce = randomBytes(NONCE_BYTES);
  return { ...h, auth: { timeMs: nowMs, nonce, tag: helloTag(secret, h, nowMs, nonce) } };
}

/**
 * Nonces of accepted hellos, kept for twice the allowed skew (a replayed hello is refused as long
 * as its time would still pass). Bounded: the oldest go first.
 */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  constructor(private readonly max = 100_000) {}

  /** False when the nonce was seen; records it otherwise. */
  add(nonce: Buffer, nowMs: number): boolean {
    for (const [k, until] of this.seen) {
      if (until > nowMs && this.seen.size < this.max) break;
      this.seen.delete(k);
    }
    const k = nonce.toString('hex');
    if (this.seen.has(k)) return false;
    this.seen.set(k, nowMs + 2 * PEER_AUTH_SKEW_MS);
    return true;
  }
}

/**
 * Why a hello fails authentication against `secret`, or null when it passes. `notBeforeMs` (the
 * acceptor's start time) refuses hellos signed before this process existed: the nonce cache is
 * in memory, so without it a hello recorded just before a restart could be played again after it.
 */
export function checkHelloAuth(
  h: Hello,
  secret: Buffer,
  nowMs: number,
  nonces: NonceCache,
  notBeforeMs = 0,
): string | null {
  if (!h.auth) return 'no authentication in the hello (the peer has no peer secret)';
  if (h.auth.timeMs < notBeforeMs) return 'hello signed before this replica started (a replayed hello)';
  if (Math.abs(nowMs - h.auth.timeMs) > PEER_AUTH_SKEW_MS)
    return `hello time is ${Math.round((h.auth.timeMs - nowMs) / 1000)} s from this replica's clock`;
  const want = helloTag(secret, h, h.auth.timeMs, h.auth.nonce);
  if (!timingSafeEqual(want, h.auth.tag)) return 'hello tag does not match (a different peer secret)';
  if (!nonces.add(h.auth.nonce, nowMs)) return 'hello nonce seen before (a replayed hello)';
  return null;
}

/** The highest version in both ranges, or null when they do not meet. */
export function negotiateVersion(theirs: VersionRange, ours: VersionRange): number | null {
  const v = Math.min(theirs.max, ours.max);
  return v >= Math.max(theirs.min, ours.min) ? v : null;
}

/**
 * The acceptor's proof that it holds the group's secret, bound to the hello it answers (its
 * nonce): a process that is not a member cannot accept a replica's connection and feed it
 * votes or appends, and an ACK recorded on another connection does not verify.
 */
export function ackTag(secret: Buffer, h: Hello, version: number): Buffer {
  if (!h.auth) throw new RangeError('ackTag: the hello carries no authentication');
  return createHmac('sha256', secret)
    .update(`daftka-peer-ack-v1\0${h.from}\0${h.to}\0${h.clusterId}\0${version}\0`)
    .update(h.auth.nonce)
    .digest();
}

/** `u8 version · [32-byte tag]` (the tag when the group has a secret). */
export function encodeAck(version: number, tag?: Buffer): Buffer {
  const w = new BufWriter(1 + TAG_BYTES).u8(version);
  if (tag) w.bytes(tag);
  return w.finish();
}

/** The version the acceptor chose (1 for an empty ACK, from a peer before versions). */
export function decodeAck(payload: Buffer): number {
  if (payload.length === 0) return 1;
  const r = new BufReader(payload);
  const v = r.u8('ack.version');
  if (r.remaining === TAG_BYTES) r.bytes(TAG_BYTES, 'ack.tag');
  r.end('ack');
  return v;
}

/** Whether an ACK carries the acceptor's valid proof for the hello `sent`. */
export function checkAck(payload: Buffer, secret: Buffer, sent: Hello, version: number): boolean {
  if (payload.length !== 1 + TAG_BYTES) return false;
  return timingSafeEqual(payload.subarray(1), ackTag(secret, sent, version));
}

/** Ids and cluster ids are short printable ASCII; 255 bytes is generous. */
const MAX_ID_BYTES = 255;

export function encodeHello(h: Hello): Buffer {
  if (h.auth && (h.auth.nonce.length !== NONCE_BYTES || h.auth.tag.length !== TAG_BYTES))
    throw new RangeError('hello auth: nonce must be 16 bytes and tag 32');
  const w = new BufWriter(80 + h.from.length + h.to.length + h.clusterId.length)
    .ascii8(h.from)
    .ascii8(h.to)
    .ascii8(h.clusterId)
    .u8(h.versions?.min ?? 1)
    .u8(h.versions?.max ?? 1);
  if (h.auth) w.i53(h.auth.timeMs).bytes(h.auth.nonce).bytes(h.auth.tag);
  return w.finish();
}

/** Throws CodecError when the payload is not a well-formed hello. */
export function decodeHello(payload: Buffer): Hello {
  const r = new BufReader(payload);
  const from = r.ascii8('hello.from');
  const to = r.ascii8('hello.to');
  const clusterId = r.ascii8('hello.clusterId');
  const versions =
    r.remaining === 0 ? { min: 1, max: 1 } : { min: r.u8('hello.minVersion'), max: r.u8('hello.maxVersion') };
  const auth =
    r.remaining === 0
      ? undefined
      : {
          timeMs: r.i53('hello.timeMs'),
          nonce: Buffer.from(r.bytes(NONCE_BYTES, 'hello.nonce')),
          tag: Buffer.from(r.bytes(TAG_BYTES, 'hello.tag')),
        };
  r.end('hello');
  if (from.length === 0 || to.length === 0 || clusterId.length === 0)
    throw new CodecError('bad_value', 'hello: empty id');
  if (versions.min < 1 || versions.min > versions.max)
    throw new CodecError('bad_value', `hello: version range ${versions.min}..${versions.max}`);
  return { from, to, clusterId, versions, ...(auth ? { auth } : {}) };
}

export const REJECT_REASONS = [
  'wrong_cluster',
  'wrong_target',
  'unknown_peer',
  'self',
  'malformed',
  'incompatible_version',
  'unauthenticated',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export function encodeReject(reason: RejectReason): Buffer {
  return new BufWriter(32).ascii8(reason).finish();
}

/** The reason a peer gave, or 'malformed' when its reject frame does not decode (the connection closes either way). */
export function decodeReject(payload: Buffer): RejectReason {
  try {
    const r = new BufReader(payload);
    const reason = r.ascii8('reject.reason');
    r.end('reject');
    return (REJECT_REASONS as readonly string[]).includes(reason) ? (reason as RejectReason) : 'malformed';
  } catch {
    return 'malformed';
  }
}

export function checkId(id: string, what: string): void {
  if (!/^[\x21-\x7e]{1,255}$/.test(id) || id.length > MAX_ID_BYTES)
    throw new RangeError(`${what} must be 1-255 printable ASCII characters without spaces, got ${JSON.stringify(id)}`);
}
