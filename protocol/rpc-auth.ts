import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BufReader, BufWriter, CodecError } from './bytes';

/**
 * Admission on the client port (docs/security.md, docs/wire-protocol.md §Client-port admission):
 * a challenge–response handshake with HMAC-SHA256, mutual, before any request is decoded.
 *
 *   server → RPC_CHALLENGE  u8 version(1) · u8 flags (bit 0: a credential is required)
 *                           · 32-byte server nonce · str topic (the topic this replica serves)
 *   client → RPC_HELLO      u8 version(1) · u8 role (0 none, 1 topic, 2 admin) · 32-byte client nonce
 *                           · bytes tag  (empty for role none)
 *   server → RPC_WELCOME    u8 role granted · bytes proof   (then requests flow)
 *         or RPC_REFUSED    str reason, and the server closes
 *
 *   tag   = HMAC(key, "daftka-rpc-hello-v1\0"   ‖ role ‖ "\0" ‖ topic ‖ "\0" ‖ server nonce ‖ client nonce)
 *   proof = HMAC(key, "daftka-rpc-welcome-v1\0" ‖ role ‖ "\0" ‖ topic ‖ "\0" ‖ server nonce ‖ client nonce)
 *
 * Both nonces are fresh per connection, so a recorded hello is worthless on any other connection
 * (no clock, no nonce cache). The proof tells the client that the server holds the same key: an
 * endpoint that is not a replica of the topic cannot complete the handshake, so no request —
 * a produce's records included — is ever sent to it.
 *
 * Keys: role `topic` proves the topic's client key, derived from the topic's peer secret
 * (`clientKeyOf`), so a holder of the client key (the gateway) cannot pose as a peer; role
 * `admin` proves the installation's admin key (DAFTKA_ADMIN_SECRET, the operator's credential)
 * and is needed for the methods of access `admin` (membership and leadership).
 */

export type RpcRole = 'topic' | 'admin';
const ROLE_CODE = { none: 0, topic: 1, admin: 2 } as const;
type RoleName = keyof typeof ROLE_CODE;

export const RPC_AUTH_VERSION = 1;
const NONCE_BYTES = 32;
const TAG_BYTES = 32;
/** The largest handshake frame either side accepts before admission. */
export const MAX_HANDSHAKE_FRAME_BYTES = 512;

/** The key a client proves for `topic`: HMAC(peer secret, "daftka-client-key-v1\0" ‖ topic). */
export function clientKeyOf(peerSecret: string, topic: string): Buffer {
  return createHmac('sha256', Buffer.from(peerSecret, 'utf8')).update(`daftka-client-key-v1\0${topic}`).digest();
}

/** The admin key from the admin secret (the operator's credential). */
export function adminKeyOf(adminSecret: string): Buffer {
  return createHmac('sha256', Buffer.from(adminSecret, 'utf8')).update('daftka-admin-key-v1').digest();
}

/** What a server admits with; absent keys leave that role open (development without secrets). */
export interface RpcServerAuth {
  /** The topic this server's replica serves (named in the challenge). */
  topic: string;
  /** The topic's client key; null: role topic needs no proof. */
  topicKey: Buffer | null;
  /** The admin key; null: admin methods need no proof (only when the topic key is null too). */
  adminKey: Buffer | null;
}

/** What a client proves with. */
export interface RpcClientAuth {
  /** The client key of a topic, when this client holds it. */
  keyFor?: (topic: string) => Buffer | undefined;
  /** The admin key: every connection proves it (role admin). */
  adminKey?: Buffer;
}

export interface Challenge {
  required: boolean;
  nonce: Buffer;
  topic: string;
}

export interface Hello {
  role: RoleName;
  nonce: Buffer;
  tag: Buffer;
}

function mac(key: Buffer, what: 'hello' | 'welcome', role: RoleName, topic: string, sn: Buffer, cn: Buffer): Buffer {
  return createHmac('sha256', key).update(`daftka-rpc-${what}-v1\0${role}\0${topic}\0`).update(sn).update(cn).digest();
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function makeChallenge(auth: RpcServerAuth | undefined): Challenge {
  return { required: (auth?.topicKey ?? null) !== null, nonce: randomBytes(NONCE_BYTES), topic: auth?.topic ?? '' };
}

export function encodeChallenge(c: Challenge): Buffer {
  return new BufWriter(64)
    .u8(RPC_AUTH_VERSION)
    .u8(c.required ? 1 : 0)
    .bytes(c.nonce)
    .str16(c.topic)
    .finish();
}

export function decodeChallenge(b: Buffer): Challenge {
  const r = new BufReader(b);
  if (r.u8() !== RPC_AUTH_VERSION) throw new CodecError('bad_value', 'unknown client-port handshake version');
  const flags = r.u8();
  const nonce = Buffer.from(r.bytes(NONCE_BYTES));
  const topic = r.str16();
  r.end();
  return { required: (flags & 1) === 1, nonce, topic };
}

export function encodeHello(h: Hello): Buffer {
  return new BufWriter(80).u8(RPC_AUTH_VERSION).u8(ROLE_CODE[h.role]).bytes(h.nonce).bytes32(h.tag).finish();
}

export function decodeHello(b: Buffer): Hello {
  const r = new BufReader(b);
  if (r.u8() !== RPC_AUTH_VERSION) throw new CodecError('bad_value', 'unknown client-port handshake version');
  const code = r.u8();
  const role = (Object.keys(ROLE_CODE) as RoleName[]).find((k) => ROLE_CODE[k] === code);
  if (role === undefined) throw new CodecError('bad_value', `unknown role ${code}`);
  const nonce = Buffer.from(r.bytes(NONCE_BYTES));
  const tag = Buffer.from(r.bytes32());
  r.end();
  if (tag.length !== 0 && tag.length !== TAG_BYTES) throw new CodecError('bad_value', 'bad tag length');
  return { role, nonce, tag };
}

/** The client's hello for a challenge, or a reason it cannot make one. */
export function answerChallenge(c: Challenge, auth: RpcClientAuth | undefined): Hello | string {
  const nonce = randomBytes(NONCE_BYTES);
  if (auth?.adminKey)
    return { role: 'admin', nonce, tag: mac(auth.adminKey, 'hello', 'admin', c.topic, c.nonce, nonce) };
  const key = c.topic !== '' ? auth?.keyFor?.(c.topic) : undefined;
  if (key) return { role: 'topic', nonce, tag: mac(key, 'hello', 'topic', c.topic, c.nonce, nonce) };
  if (c.required) return `the server asks for a credential of topic ${c.topic}, and this client holds none`;
  return { role: 'none', nonce, tag: Buffer.alloc(0) };
}

export type Admission = { role: RpcRole; proof: Buffer } | { refused: string };

/** The server's decision on a hello. Constant-time tag comparison; the reason never echoes input. */
export function admit(auth: RpcServerAuth | undefined, c: Challenge, h: Hello): Admission {
  const topicKey = auth?.topicKey ?? null;
  const adminKey = auth?.adminKey ?? null;
  if (h.role === 'admin') {
    if (adminKey === null) {
      if (topicKey === null) return { role: 'admin', proof: Buffer.alloc(0) };
      return { refused: 'this server has no admin credential configured' };
    }
    if (!equal(h.tag, mac(adminKey, 'hello', 'admin', c.topic, c.nonce, h.nonce)))
      return { refused: 'bad admin credential' };
    return { role: 'admin', proof: mac(adminKey, 'welcome', 'admin', c.topic, c.nonce, h.nonce) };
  }
  if (h.role === 'topic') {
    if (topicKey === null) return { role: adminKey === null ? 'admin' : 'topic', proof: Buffer.alloc(0) };
    if (!equal(h.tag, mac(topicKey, 'hello', 'topic', c.topic, c.nonce, h.nonce)))
      return { refused: `bad credential for topic ${c.topic}` };
    return { role: 'topic', proof: mac(topicKey, 'welcome', 'topic', c.topic, c.nonce, h.nonce) };
  }
  if (topicKey !== null) return { refused: `a credential of topic ${c.topic} is required` };
  // No secrets at all (development): everything is open, as before admission existed.
  return { role: adminKey === null ? 'admin' : 'topic', proof: Buffer.alloc(0) };
}

export function encodeWelcome(role: RpcRole, proof: Buffer): Buffer {
  return new BufWriter(40).u8(ROLE_CODE[role]).bytes32(proof).finish();
}

export function decodeWelcome(b: Buffer): { role: RpcRole; proof: Buffer } {
  const r = new BufReader(b);
  const code = r.u8();
  const proof = Buffer.from(r.bytes32());
  r.end();
  if (code !== ROLE_CODE.topic && code !== ROLE_CODE.admin) throw new CodecError('bad_value', 'bad role');
  return { role: code === ROLE_CODE.admin ? 'admin' : 'topic', proof };
}

/**
 * Whether the server proved the key the client used (mutual authentication). A client that
 * proved nothing (role none: no secrets anywhere) accepts an empty proof.
 */
export function checkWelcome(
  c: Challenge,
  h: Hello,
  auth: RpcClientAuth | undefined,
  w: { role: RpcRole; proof: Buffer },
): boolean {
  if (h.role === 'none') return true;
  const key = h.role === 'admin' ? auth?.adminKey : auth?.keyFor?.(c.topic);
  if (!key) return false;
  return equal(w.proof, mac(key, 'welcome', h.role, c.topic, c.nonce, h.nonce));
}

export function encodeRefused(reason: string): Buffer {
  return new BufWriter(reason.length * 3 + 8).str16(reason.slice(0, 200)).finish();
}

export function decodeRefused(b: Buffer): string {
  const r = new BufReader(b);
  const s = r.str16();
  r.end();
  return s;
}

/**
 * Client keys from a folder: one file per topic, named by the topic, holding the key in hex (a
 * mounted Secret, or local mode's data dir). Read when a connection is made, so a rotated key is
 * used by the next connection without a restart; a missing or malformed file is "no key".
 */
export function dirKeyring(dir: string): (topic: string) => Buffer | undefined {
  return (topic) => {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(topic)) return undefined;
    try {
      const hex = readFileSync(join(dir, topic), 'utf8').trim();
      return /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : undefined;
    } catch {
      return undefined;
    }
  };
}

/**
 * The signature of a leader announcement or discovery entry: HMAC with the topic's client key
 * over what a router acts on. A NATS publisher without the key cannot make a gateway believe a
 * leader (gateway/leader-feed.ts drops unsigned or badly signed ones when it holds the key).
 */
export function leaderSig(
  key: Buffer,
  a: { topic: string; partition: number; term: number; leaderId: string; endpoint: string },
): string {
  return createHmac('sha256', key)
    .update(`daftka-leader-v1\0${a.topic}\0${a.partition}\0${a.term}\0${a.leaderId}\0${a.endpoint}`)
    .digest('base64url');
}

/** Constant-time check of a leader signature. */
export function checkLeaderSig(
  key: Buffer,
  a: { topic: string; partition: number; term: number; leaderId: string; endpoint: string },
  sig: unknown,
): boolean {
  if (typeof sig !== 'string' || sig.length !== 43) return false;
  return equal(Buffer.from(sig, 'base64url'), Buffer.from(leaderSig(key, a), 'base64url'));
}
