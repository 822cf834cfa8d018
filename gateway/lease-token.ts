import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Lease tokens: what a leased fetch hands out with each record and what an ack brings back.
 *
 *   token   := base64url(payload) "." base64url(HMAC-SHA256(secret, "daftka-lease-v1" ‖ payload))
 *   payload := u8 version(2) · u16 len · principal · u16 len · group · u16 len · topic
 *              · u32 partition · f64 offset · u32 attempt · f64 leaseUntilMs
 *
 * The MAC binds the token to (principal, group, topic, partition, offset, attempt, expiry): a
 * client cannot ack a record it was not handed, nor turn an old delivery into the current one,
 * and a token that leaks to another principal is refused for them. Every gateway
 * pod must hold the same secret (DAFTKA_GATEWAY_LEASE_SECRET, from a Kubernetes Secret; local
 * mode generates one and passes it to every gateway it starts), so a token from one pod verifies
 * on any other. Verification says only "this gateway fleet issued it": whether the lease is still
 * the record's current one is decided by the partition's replicated state (the attempt number),
 * which is what refuses stale acks.
 */

export interface LeaseClaims {
  /** The principal that fetched (the gateway refuses an ack by anyone else). */
  principal: string;
  group: string;
  topic: string;
  partition: number;
  offset: number;
  attempt: number;
  leaseUntilMs: number;
}

export type TokenProblem = 'garbled' | 'forged';

const DOMAIN = Buffer.from('daftka-lease-v1');
/** Version 2 added the principal; a version-1 token (no principal) is refused as garbled. */
const VERSION = 2;
/** Secrets shorter than this are refused at start (32 characters ≈ 190 bits when random). */
export const MIN_SECRET_CHARS = 32;
/** Longest token accepted before any decoding work. */
export const MAX_TOKEN_CHARS = 2048;
const TOKEN_RE = /^[A-Za-z0-9_-]{8,2000}\.[A-Za-z0-9_-]{43}$/;

export class LeaseTokens {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (secret.length < MIN_SECRET_CHARS)
      throw new RangeError(`the lease secret must be at least ${MIN_SECRET_CHARS} characters`);
    this.key = Buffer.from(secret, 'utf8');
  }

  private mac(payload: Buffer): Buffer {
    return createHmac('sha256', this.key).update(DOMAIN).update(payload).digest();
  }

  sign(c: LeaseClaims): string {
    const who = Buffer.from(c.principal, 'utf8');
    const g = Buffer.from(c.group, 'utf8');
    const t = Buffer.from(c.topic, 'utf8');
    const p = Buffer.alloc(1 + 2 + who.length + 2 + g.length + 2 + t.length + 4 + 8 + 4 + 8);
    let at = p.writeUInt8(VERSION, 0);
    at = p.writeUInt16BE(who.length, at);
    at += who.copy(p, at);
    at = p.writeUInt16BE(g.length, at);
    at += g.copy(p, at);
    at = p.writeUInt16BE(t.length, at);
    at += t.copy(p, at);
    at = p.writeUInt32BE(c.partition, at);
    at = p.writeDoubleBE(c.offset, at);
    at = p.writeUInt32BE(c.attempt, at);
    p.writeDoubleBE(c.leaseUntilMs, at);
    return `${p.toString('base64url')}.${this.mac(p).toString('base64url')}`;
  }

  /** The claims of a token this fleet issued, or why not: `garbled` (not a token) or `forged` (bad MAC). */
  verify(token: string): LeaseClaims | TokenProblem {
    if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS || !TOKEN_RE.test(token)) return 'garbled';
    const [p64, m64] = token.split('.');
    const payload = Buffer.from(p64, 'base64url');
    const mac = Buffer.from(m64, 'base64url');
    // Only the canonical encoding: no two strings are the same token.
    if (payload.toString('base64url') !== p64 || mac.toString('base64url') !== m64) return 'garbled';
    if (mac.length !== 32 || !timingSafeEqual(mac, this.mac(payload))) return 'forged';
    // The MAC is ours, so the layout is too; still, decode defensively.
    try {
      let at = 0;
      if (payload.readUInt8(at++) !== VERSION) return 'garbled';
      const wl = payload.readUInt16BE(at);
      at += 2;
      const principal = payload.subarray(at, at + wl).toString('utf8');
      at += wl;
      const gl = payload.readUInt16BE(at);
      at += 2;
      const group = payload.subarray(at, at + gl).toString('utf8');
      at += gl;
      const tl = payload.readUInt16BE(at);
      at += 2;
      const topic = payload.subarray(at, at + tl).toString('utf8');
      at += tl;
      const partition = payload.readUInt32BE(at);
      const offset = payload.readDoubleBE(at + 4);
      const attempt = payload.readUInt32BE(at + 12);
      const leaseUntilMs = payload.readDoubleBE(at + 16);
      if (at + 24 !== payload.length || !Number.isSafeInteger(offset) || !Number.isSafeInteger(leaseUntilMs))
        return 'garbled';
      return { principal, group, topic, partition, offset, attempt, leaseUntilMs };
    } catch {
      return 'garbled';
    }
  }
}
