import { BufReader, BufWriter, CodecError } from './bytes';

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
}

/** The highest version in both ranges, or null when they do not meet. */
export function negotiateVersion(theirs: VersionRange, ours: VersionRange): number | null {
  const v = Math.min(theirs.max, ours.max);
  return v >= Math.max(theirs.min, ours.min) ? v : null;
}

export function encodeAck(version: number): Buffer {
  return new BufWriter(1).u8(version).finish();
}

/** The version the acceptor chose (1 for an empty ACK, from a peer before versions). */
export function decodeAck(payload: Buffer): number {
  if (payload.length === 0) return 1;
  const r = new BufReader(payload);
  const v = r.u8('ack.version');
  r.end('ack');
  return v;
}

/** Ids and cluster ids are short printable ASCII; 255 bytes is generous. */
const MAX_ID_BYTES = 255;

export function encodeHello(h: Hello): Buffer {
  return new BufWriter(16 + h.from.length + h.to.length + h.clusterId.length)
    .ascii8(h.from)
    .ascii8(h.to)
    .ascii8(h.clusterId)
    .u8(h.versions?.min ?? 1)
    .u8(h.versions?.max ?? 1)
    .finish();
}

/** Throws CodecError when the payload is not a well-formed hello. */
export function decodeHello(payload: Buffer): Hello {
  const r = new BufReader(payload);
  const from = r.ascii8('hello.from');
  const to = r.ascii8('hello.to');
  const clusterId = r.ascii8('hello.clusterId');
  const versions =
    r.remaining === 0 ? { min: 1, max: 1 } : { min: r.u8('hello.minVersion'), max: r.u8('hello.maxVersion') };
  r.end('hello');
  if (from.length === 0 || to.length === 0 || clusterId.length === 0)
    throw new CodecError('bad_value', 'hello: empty id');
  if (versions.min < 1 || versions.min > versions.max)
    throw new CodecError('bad_value', `hello: version range ${versions.min}..${versions.max}`);
  return { from, to, clusterId, versions };
}

export const REJECT_REASONS = [
  'wrong_cluster',
  'wrong_target',
  'unknown_peer',
  'self',
  'malformed',
  'incompatible_version',
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
