import { BufReader, BufWriter, CodecError } from './bytes';

/**
 * The peer handshake (docs/wire-protocol.md §Handshake). The connecting side sends PEER_HELLO
 * naming itself, the replica it means to reach, and the Raft group; the acceptor answers
 * PEER_HELLO_ACK, or PEER_HELLO_REJECT with a reason and closes. Checking the target id catches
 * stale DNS (a pod name that now resolves to another replica); checking the cluster id keeps two
 * partitions' groups from ever exchanging votes.
 */
export interface Hello {
  from: string;
  to: string;
  /** `${topic}/${partition}`: the Raft group both ends belong to. */
  clusterId: string;
}

/** Ids and cluster ids are short printable ASCII; 255 bytes is generous. */
const MAX_ID_BYTES = 255;

export function encodeHello(h: Hello): Buffer {
  return new BufWriter(16 + h.from.length + h.to.length + h.clusterId.length)
    .ascii8(h.from)
    .ascii8(h.to)
    .ascii8(h.clusterId)
    .finish();
}

/** Throws CodecError when the payload is not a well-formed hello. */
export function decodeHello(payload: Buffer): Hello {
  const r = new BufReader(payload);
  const from = r.ascii8('hello.from');
  const to = r.ascii8('hello.to');
  const clusterId = r.ascii8('hello.clusterId');
  r.end('hello');
  if (from.length === 0 || to.length === 0 || clusterId.length === 0)
    throw new CodecError('bad_value', 'hello: empty id');
  return { from, to, clusterId };
}

export const REJECT_REASONS = ['wrong_cluster', 'wrong_target', 'unknown_peer', 'self', 'malformed'] as const;
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
