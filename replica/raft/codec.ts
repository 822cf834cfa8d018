import { MalformedMessageError } from './errors';
import type { ConfChange, ConfChangeType } from './membership';
import { EntryType, MessageType, type ConfState, type Entry, type Message, type NodeId, type Snapshot } from './types';

/**
 * Compact binary encodings of Raft messages and configuration changes.
 *
 * A peer frame is untrusted input: decodeMessage validates everything (version, type, lengths,
 * integer ranges, utf-8, entry ordering) and throws MalformedMessageError — never anything else —
 * so a transport can close the connection and count it instead of crashing.
 *
 * Message layout (all integers unsigned LEB128 varints ≤ 2^53-1 unless noted):
 *   u8 version (=1) · u8 type · id from · id to · term · body
 *   id: u8 byte length (1..255) · utf-8 bytes
 *   PreVote/Vote      lastIndex · lastTerm · u8 transfer(0|1)
 *   PreVoteResp/VoteResp  u8 reject(0|1)
 *   App               prevIndex · prevTerm · commit · epoch · count · count × (term · u8 type · len · bytes)
 *                     (entry indexes are implied: prevIndex+1, prevIndex+2, …)
 *   AppResp           index · u8 reject · hintIndex · hintTerm · epoch
 *   Heartbeat         commit
 *   HeartbeatResp     (empty)
 *   Snap              index · term · conf · len · bytes      conf: nVoters · ids · nLearners · ids
 *   TimeoutNow        (empty)
 *
 * Decoded entry and snapshot data are views into the input buffer (no copy): do not reuse it.
 */

export const MESSAGE_CODEC_VERSION = 1;

// Local aliases: under transpilers that export bindings through getters (tsx, swc), every
// `MT.X` would be a function call on this hot path.
const MT = MessageType;
const ET = EntryType;
const CONF_CHANGE_VERSION = 1;
const MAX_ID_BYTES = 255;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 of node ids, cached: a process talks to a handful of peers. */
const idBytesCache = new Map<NodeId, Uint8Array>();
function idBytes(id: NodeId): Uint8Array {
  let b = idBytesCache.get(id);
  if (b === undefined) {
    b = utf8Encoder.encode(id);
    if (b.length === 0 || b.length > MAX_ID_BYTES) throw new RangeError(`node id must be 1..255 bytes: ${id}`);
    if (idBytesCache.size > 4096) idBytesCache.clear();
    idBytesCache.set(id, b);
  }
  return b;
}

function varintSize(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a non-negative safe integer: ${v}`);
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function idSize(id: NodeId): number {
  return 1 + idBytes(id).length;
}

function confSize(c: ConfState): number {
  let n = varintSize(c.voters.length) + varintSize(c.learners.length);
  for (const v of c.voters) n += idSize(v);
  for (const l of c.learners) n += idSize(l);
  return n;
}

/** Writes into a buffer of exactly the encoded size (computed up front: no growth, no copy). */
class Writer {
  readonly buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  u8(v: number): void {
    this.buf[this.pos++] = v;
  }
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a non-negative safe integer: ${v}`);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  bytes(b: Uint8Array): void {
    if (b.length < 32) {
      for (let i = 0; i < b.length; i++) this.buf[this.pos + i] = b[i];
    } else {
      this.buf.set(b, this.pos);
    }
    this.pos += b.length;
  }
  id(id: NodeId): void {
    const b = idBytes(id);
    this.u8(b.length);
    this.bytes(b);
  }
  lenBytes(b: Uint8Array): void {
    this.varint(b.length);
    this.bytes(b);
  }
  conf(c: ConfState): void {
    this.varint(c.voters.length);
    for (const v of c.voters) this.id(v);
    this.varint(c.learners.length);
    for (const l of c.learners) this.id(l);
  }
  finish(): Uint8Array {
    if (this.pos !== this.buf.length) throw new RangeError(`encoded ${this.pos} bytes, sized ${this.buf.length}`);
    return this.buf;
  }
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  fail(what: string): never {
    throw new MalformedMessageError(`${what} at byte ${this.pos}`);
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  u8(): number {
    if (this.pos >= this.buf.length) this.fail('truncated');
    return this.buf[this.pos++];
  }
  bool(): boolean {
    const b = this.u8();
    if (b > 1) this.fail('bad boolean');
    return b === 1;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(v)) this.fail('integer out of range');
        if (i > 0 && b === 0) this.fail('non-canonical varint');
        return v;
      }
      mul *= 128;
    }
    return this.fail('varint too long');
  }
  bytes(n: number): Uint8Array {
    if (n > this.remaining) this.fail('truncated');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  id(): NodeId {
    const n = this.u8();
    if (n === 0) this.fail('empty node id');
    if (n > this.remaining) this.fail('truncated');
    // Node ids are ASCII in practice: build the string directly (no view, no TextDecoder).
    const buf = this.buf;
    const start = this.pos;
    let id = '';
    for (let i = start; i < start + n; i++) {
      const c = buf[i];
      if (c >= 0x80) {
        try {
          id = utf8Decoder.decode(buf.subarray(start, start + n));
          break;
        } catch {
          return this.fail('node id is not utf-8');
        }
      }
      id += String.fromCharCode(c);
    }
    this.pos += n;
    return id;
  }
  lenBytes(): Uint8Array {
    return this.bytes(this.varint());
  }
  conf(): ConfState {
    const ids = (): NodeId[] => {
      const n = this.varint();
      // Every id takes at least 2 bytes: refuse counts the buffer cannot hold before allocating.
      if (n * 2 > this.remaining) this.fail('member count exceeds frame');
      const out: NodeId[] = [];
      for (let i = 0; i < n; i++) out.push(this.id());
      return out;
    };
    const voters = ids();
    const learners = ids();
    return { voters, learners };
  }
  end(): void {
    if (this.pos !== this.buf.length) this.fail('trailing bytes');
  }
}

export function encodeMessage(m: Message): Uint8Array {
  let size = 2 + idSize(m.from) + idSize(m.to) + varintSize(m.term);
  switch (m.type) {
    case MT.PreVote:
    case MT.Vote:
      size += varintSize(m.lastIndex) + varintSize(m.lastTerm) + 1;
      break;
    case MT.PreVoteResp:
    case MT.VoteResp:
      size += 1;
      break;
    case MT.App:
      size += varintSize(m.prevIndex) + varintSize(m.prevTerm) + varintSize(m.commit) + varintSize(m.epoch);
      size += varintSize(m.entries.length);
      for (const e of m.entries) size += varintSize(e.term) + 1 + varintSize(e.data.length) + e.data.length;
      break;
    case MT.AppResp:
      size += varintSize(m.index) + 1 + varintSize(m.hintIndex) + varintSize(m.hintTerm) + varintSize(m.epoch);
      break;
    case MT.Heartbeat:
      size += varintSize(m.commit);
      break;
    case MT.Snap: {
      const meta = m.snapshot.meta;
      size += varintSize(meta.index) + varintSize(meta.term) + confSize(meta.conf);
      size += varintSize(m.snapshot.data.length) + m.snapshot.data.length;
      break;
    }
    case MT.HeartbeatResp:
    case MT.TimeoutNow:
      break;
  }
  const w = new Writer(size);
  w.u8(MESSAGE_CODEC_VERSION);
  w.u8(m.type);
  w.id(m.from);
  w.id(m.to);
  w.varint(m.term);
  switch (m.type) {
    case MT.PreVote:
    case MT.Vote:
      w.varint(m.lastIndex);
      w.varint(m.lastTerm);
      w.u8(m.transfer ? 1 : 0);
      break;
    case MT.PreVoteResp:
    case MT.VoteResp:
      w.u8(m.reject ? 1 : 0);
      break;
    case MT.App:
      w.varint(m.prevIndex);
      w.varint(m.prevTerm);
      w.varint(m.commit);
      w.varint(m.epoch);
      w.varint(m.entries.length);
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i];
        if (e.index !== m.prevIndex + 1 + i) throw new RangeError('App entries must be contiguous after prevIndex');
        w.varint(e.term);
        w.u8(e.type);
        w.lenBytes(e.data);
      }
      break;
    case MT.AppResp:
      w.varint(m.index);
      w.u8(m.reject ? 1 : 0);
      w.varint(m.hintIndex);
      w.varint(m.hintTerm);
      w.varint(m.epoch);
      break;
    case MT.Heartbeat:
      w.varint(m.commit);
      break;
    case MT.Snap:
      w.varint(m.snapshot.meta.index);
      w.varint(m.snapshot.meta.term);
      w.conf(m.snapshot.meta.conf);
      w.lenBytes(m.snapshot.data);
      break;
    case MT.HeartbeatResp:
    case MT.TimeoutNow:
      break;
  }
  return w.finish();
}

/** Decode and validate a peer frame's payload. Throws MalformedMessageError only. */
export function decodeMessage(buf: Uint8Array): Message {
  const r = new Reader(buf);
  const version = r.u8();
  if (version !== MESSAGE_CODEC_VERSION) r.fail(`unsupported version ${version}`);
  const type = r.u8();
  const from = r.id();
  const to = r.id();
  const term = r.varint();
  let m: Message;
  switch (type) {
    case MT.PreVote:
    case MT.Vote: {
      const lastIndex = r.varint();
      const lastTerm = r.varint();
      const transfer = r.bool();
      // A candidate's log never holds an entry from a term later than the one it campaigns in.
      if (lastTerm > term) r.fail('lastTerm beyond term');
      m = { type, from, to, term, lastIndex, lastTerm, transfer };
      break;
    }
    case MT.PreVoteResp:
    case MT.VoteResp:
      m = { type, from, to, term, reject: r.bool() };
      break;
    case MT.App: {
      const prevIndex = r.varint();
      const prevTerm = r.varint();
      const commit = r.varint();
      const epoch = r.varint();
      const count = r.varint();
      // Every entry takes at least 3 bytes: refuse counts the frame cannot hold before allocating.
      if (count * 3 > r.remaining) r.fail('entry count exceeds frame');
      if (prevTerm > term) r.fail('prevTerm beyond term');
      if (!Number.isSafeInteger(prevIndex + count)) r.fail('index out of range');
      const entries: Entry[] = new Array<Entry>(count);
      let lastTerm = prevTerm;
      for (let i = 0; i < count; i++) {
        const eterm = r.varint();
        const etype = r.u8();
        if (etype !== ET.Normal && etype !== ET.NoOp && etype !== ET.Config) r.fail(`bad entry type ${etype}`);
        // Terms in a log never decrease, and no entry is newer than the leader's term.
        if (eterm < lastTerm || eterm > term) r.fail('entry terms out of order');
        lastTerm = eterm;
        entries[i] = { index: prevIndex + 1 + i, term: eterm, type: etype, data: r.lenBytes() };
      }
      m = { type, from, to, term, prevIndex, prevTerm, commit, entries, epoch };
      break;
    }
    case MT.AppResp: {
      const index = r.varint();
      const reject = r.bool();
      const hintIndex = r.varint();
      const hintTerm = r.varint();
      const epoch = r.varint();
      m = { type, from, to, term, index, reject, hintIndex, hintTerm, epoch };
      break;
    }
    case MT.Heartbeat:
      m = { type, from, to, term, commit: r.varint() };
      break;
    case MT.HeartbeatResp:
    case MT.TimeoutNow:
      m = { type, from, to, term };
      break;
    case MT.Snap: {
      const index = r.varint();
      const sterm = r.varint();
      const conf = r.conf();
      const data = r.lenBytes();
      if (sterm > term) r.fail('snapshot term beyond term');
      if (conf.voters.length === 0) r.fail('snapshot without voters');
      const snapshot: Snapshot = { meta: { index, term: sterm, conf }, data };
      m = { type, from, to, term, snapshot };
      break;
    }
    default:
      return r.fail(`unknown message type ${type}`);
  }
  r.end();
  return m;
}

const CONF_CHANGE_CODES: Record<ConfChangeType, number> = { addLearner: 1, promote: 2, remove: 3 };
const CONF_CHANGE_TYPES: Record<number, ConfChangeType> = { 1: 'addLearner', 2: 'promote', 3: 'remove' };

/** Data of a Config entry: u8 version · u8 kind (1 addLearner, 2 promote, 3 remove) · id. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const w = new Writer(2 + idSize(cc.node));
  w.u8(CONF_CHANGE_VERSION);
  w.u8(CONF_CHANGE_CODES[cc.type]);
  w.id(cc.node);
  return w.finish();
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const r = new Reader(data);
  if (r.u8() !== CONF_CHANGE_VERSION) r.fail('unsupported conf change version');
  const type = CONF_CHANGE_TYPES[r.u8()];
  if (type === undefined) r.fail('unknown conf change type');
  const node = r.id();
  r.end();
  return { type, node };
}
