import fc from 'fast-check';
import type {
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  PartitionStatus,
  ProduceRequest,
  RecordIn,
  RecordOut,
} from '../../../common/partition-api';
import * as codec from '../../../protocol/codecs/partition';
import { CodecError } from '../../../protocol/bytes';

/** Byte arrays compared by content: decoders hand back Buffer views, encoders take any Uint8Array. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}

const bytes = fc.uint8Array({ maxLength: 64 });
const text = fc.string({ unit: 'binary', maxLength: 24 });
const name = fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 24 });
const u32 = fc.nat({ max: 0xffffffff });
const offset = fc.maxSafeNat();
const requestId = fc.stringMatching(/^[A-Za-z0-9._:-]{0,40}$/);

const plainRecord: fc.Arbitrary<RecordIn> = fc.record({
  key: fc.option(bytes, { nil: null }),
  value: fc.oneof(bytes, fc.constant(new Uint8Array(0))),
  headers: fc.array(fc.tuple(text, bytes), { maxLength: 4 }),
  timestampMs: fc.maxSafeInteger(),
});
/** Plain records, tombstones (empty value) and delivery times, each field only when present. */
const recordIn: fc.Arbitrary<RecordIn> = fc
  .tuple(plainRecord, fc.boolean(), fc.option(offset, { nil: undefined }), fc.option(offset, { nil: undefined }))
  .map(([r, tombstone, deliverAtMs, expiresAtMs]) => {
    const out: RecordIn = tombstone ? { ...r, value: new Uint8Array(0), tombstone: true } : { ...r };
    if (deliverAtMs !== undefined) out.deliverAtMs = deliverAtMs;
    if (expiresAtMs !== undefined) out.expiresAtMs = expiresAtMs;
    return out;
  });
const recordOut: fc.Arbitrary<RecordOut> = fc.tuple(recordIn, offset).map(([r, o]) => ({ ...r, offset: o }));

const produceRequest: fc.Arbitrary<ProduceRequest> = fc.record(
  {
    topic: name,
    partition: u32,
    records: fc.array(recordIn, { maxLength: 12 }),
    idempotencyKey: text,
    producer: fc.record({ producerId: text, epoch: u32, seq: offset }),
    requestId,
    timeoutMs: u32,
  },
  { requiredKeys: ['topic', 'partition', 'records', 'requestId', 'timeoutMs'] },
);

function expectCodecError(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof CodecError) return;
    throw e;
  }
  throw new Error('expected CodecError');
}

/** Every strict prefix of a valid encoding is refused with CodecError (never a RangeError or a partial value). */
function everyTruncationFails(buf: Buffer, decode: (b: Buffer) => unknown): void {
  for (let n = 0; n < buf.length; n++) expectCodecError(() => decode(buf.subarray(0, n)));
}

describe('partition API codec round-trips', () => {
  it('produce request, incl. binary keys/values/headers, empty values and null keys', () => {
    fc.assert(
      fc.property(produceRequest, (req) => {
        const got = codec.decodeProduceRequest(codec.encodeProduceRequest(req), req.requestId);
        expect(norm(got)).toEqual(norm(req));
      }),
      { numRuns: 300 },
    );
  });

  it('produce result', () => {
    fc.assert(
      fc.property(offset, u32, fc.boolean(), (baseOffset, count, duplicate) => {
        const r = { baseOffset, count, duplicate };
        expect(codec.decodeProduceResult(codec.encodeProduceResult(r))).toEqual(r);
      }),
    );
  });

  it('fetch request and result', () => {
    fc.assert(
      fc.property(
        fc.record({ topic: name, partition: u32, offset, maxRecords: u32, maxBytes: u32, waitMs: u32, requestId }),
        fc.record({
          records: fc.array(recordOut, { maxLength: 12 }),
          nextOffset: offset,
          highWatermark: offset,
          logStartOffset: offset,
        }),
        (req, res: FetchResult) => {
          expect(codec.decodeFetchRequest(codec.encodeFetchRequest(req), req.requestId)).toEqual(req);
          expect(norm(codec.decodeFetchResult(codec.encodeFetchResult(res)))).toEqual(norm(res));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('group offset commit, query and answer (null offset, optional metadata, negative lag)', () => {
    fc.assert(
      fc.property(
        fc.record(
          { group: name, topic: name, partition: u32, offset, metadata: text, requestId },
          { requiredKeys: ['group', 'topic', 'partition', 'offset', 'requestId'] },
        ),
        fc.record(
          {
            group: name,
            topic: name,
            partition: u32,
            offset: fc.option(offset, { nil: null }),
            metadata: text,
            highWatermark: offset,
            logStartOffset: offset,
            lag: fc.maxSafeInteger(),
          },
          { requiredKeys: ['group', 'topic', 'partition', 'offset', 'highWatermark', 'logStartOffset', 'lag'] },
        ),
        (commit: GroupOffsetCommit, answer: GroupOffset) => {
          expect(codec.decodeGroupOffsetCommit(codec.encodeGroupOffsetCommit(commit), commit.requestId)).toEqual(
            commit,
          );
          const q = {
            group: commit.group,
            topic: commit.topic,
            partition: commit.partition,
            requestId: commit.requestId,
          };
          expect(codec.decodeGroupOffsetQuery(codec.encodeGroupOffsetQuery(q), q.requestId)).toEqual(q);
          expect(codec.decodeGroupOffset(codec.encodeGroupOffset(answer))).toEqual(answer);
        },
      ),
    );
  });

  it('status (JSON) and admin requests', () => {
    const status: PartitionStatus = {
      topic: 'orders',
      partition: 2,
      replicaId: 'orders-2-0.7f3a',
      role: 'follower',
      term: 7,
      leaderId: 'orders-2-1.aa01',
      leaderEndpoint: null,
      highWatermark: 100,
      logStartOffset: 0,
      commitIndex: 120,
      appliedIndex: 119,
      lastIndex: 121,
      logBytes: 4096,
      voters: ['a', 'b', 'c'],
      learners: [],
    };
    expect(codec.decodeStatus(codec.encodeStatus(status))).toEqual(status);
    expect(codec.decodePartitionRef(codec.encodePartitionRef('orders', 2))).toEqual({ topic: 'orders', partition: 2 });
    const t = { topic: 'orders', partition: 2, to: 'b', requestId: 'r1' };
    expect(codec.decodeTransferLeadership(codec.encodeTransferLeadership(t), 'r1')).toEqual(t);
    const l = { topic: 'orders', partition: 2, id: 'd', endpoint: 'orders-2-3.orders:9092', requestId: 'r2' };
    expect(codec.decodeAddLearner(codec.encodeAddLearner(l), 'r2')).toEqual(l);
    const m = { topic: 'orders', partition: 2, id: 'a', requestId: 'r3' };
    expect(codec.decodeMemberRequest(codec.encodeMemberRequest(m), 'r3')).toEqual(m);
  });
});

describe('partition API decoders refuse malformed input with CodecError', () => {
  it('every truncation of a produce request, fetch result and group offset', () => {
    fc.assert(
      fc.property(produceRequest, (req) => {
        everyTruncationFails(codec.encodeProduceRequest(req), (b) => codec.decodeProduceRequest(b, ''));
      }),
      { numRuns: 25 },
    );
    const res = {
      records: [{ key: null, value: Buffer.from('v'), headers: [['h', Buffer.from('x')]], timestampMs: 1, offset: 5 }],
      nextOffset: 6,
      highWatermark: 6,
      logStartOffset: 0,
    } satisfies FetchResult;
    everyTruncationFails(codec.encodeFetchResult(res), codec.decodeFetchResult);
    const g = { group: 'g', topic: 't', partition: 0, offset: null, highWatermark: 1, logStartOffset: 0, lag: 1 };
    everyTruncationFails(codec.encodeGroupOffset(g), codec.decodeGroupOffset);
  });

  it('trailing bytes', () => {
    const b = codec.encodeProduceResult({ baseOffset: 1, count: 1, duplicate: false });
    expectCodecError(() => codec.decodeProduceResult(Buffer.concat([b, Buffer.from([0])])));
  });

  it('a forged record count is refused before anything is allocated for it', () => {
    const b = codec.encodeProduceRequest({ topic: 't', partition: 0, records: [], requestId: '', timeoutMs: 1 });
    b.writeUInt32BE(0xffffffff, b.length - 4);
    expectCodecError(() => codec.decodeProduceRequest(b, ''));
  });

  it('a length prefix that runs past the end', () => {
    const b = codec.encodeProduceRequest({
      topic: 't',
      partition: 0,
      records: [{ key: null, value: Buffer.from('abc'), headers: [], timestampMs: 0 }],
      requestId: '',
      timeoutMs: 1,
    });
    const valueLenAt = b.length - (2 + 8 + 3 + 4);
    b.writeUInt32BE(1000, valueLenAt);
    expectCodecError(() => codec.decodeProduceRequest(b, ''));
  });

  it('a tombstone that carries value bytes, and record flags from a newer layout', () => {
    const one = (r: RecordIn): Buffer =>
      codec.encodeProduceRequest({ topic: 't', partition: 0, records: [r], requestId: '', timeoutMs: 1 });
    expectCodecError(() => one({ key: null, value: Buffer.from('x'), headers: [], timestampMs: 0, tombstone: true }));
    const b = one({ key: null, value: Buffer.from('abc'), headers: [], timestampMs: 0 });
    const flagsAt = b.length - (2 + 8 + 3 + 4 + 1);
    expect(b[flagsAt]).toBe(0);
    b[flagsAt] = 0x02; // tombstone flag on a record with three value bytes
    expectCodecError(() => codec.decodeProduceRequest(b, ''));
    b[flagsAt] = 0x10; // an unknown bit
    expectCodecError(() => codec.decodeProduceRequest(b, ''));
  });

  it('invalid UTF-8, non-integer numbers, bad flags and bad booleans', () => {
    const topic = Buffer.from([0, 2, 0xc3, 0x28]); // str16 with an invalid 2-byte sequence
    expectCodecError(() => codec.decodePartitionRef(Buffer.concat([topic, Buffer.alloc(4)])));
    const res = codec.encodeProduceResult({ baseOffset: 1, count: 1, duplicate: false });
    res.writeDoubleBE(1.5, 0);
    expectCodecError(() => codec.decodeProduceResult(res));
    res.writeDoubleBE(-1, 0);
    expectCodecError(() => codec.decodeProduceResult(res));
    const dup = codec.encodeProduceResult({ baseOffset: 1, count: 1, duplicate: true });
    dup[dup.length - 1] = 7;
    expectCodecError(() => codec.decodeProduceResult(dup));
    const req = codec.encodeProduceRequest({ topic: 't', partition: 0, records: [], requestId: '', timeoutMs: 1 });
    req[2 + 1 + 4 + 4] = 0x80; // flags byte
    expectCodecError(() => codec.decodeProduceRequest(req, ''));
  });

  it('status JSON with a missing or mistyped field', () => {
    expectCodecError(() => codec.decodeStatus(Buffer.from('not json')));
    expectCodecError(() => codec.decodeStatus(Buffer.from('[]')));
    expectCodecError(() => codec.decodeStatus(Buffer.from('{"topic":"t"}')));
  });

  it('random bytes never raise anything but CodecError', () => {
    const decoders = [
      (b: Buffer) => codec.decodeProduceRequest(b, ''),
      (b: Buffer) => codec.decodeFetchRequest(b, ''),
      codec.decodeFetchResult,
      codec.decodeGroupOffset,
      (b: Buffer) => codec.decodeGroupOffsetCommit(b, ''),
      codec.decodeStatus,
      (b: Buffer) => codec.decodeAddLearner(b, ''),
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 128 }), fc.nat({ max: decoders.length - 1 }), (raw, i) => {
        try {
          decoders[i](Buffer.from(raw));
        } catch (e) {
          expect(e).toBeInstanceOf(CodecError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('encoders refuse values the wire cannot carry', () => {
    expectCodecError(() =>
      codec.encodeFetchRequest({
        topic: 't',
        partition: -1,
        offset: 0,
        maxRecords: 1,
        maxBytes: 1,
        waitMs: 0,
        requestId: '',
      }),
    );
    expectCodecError(() => codec.encodeProduceResult({ baseOffset: 2 ** 60, count: 1, duplicate: false }));
  });
});
