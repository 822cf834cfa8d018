import * as lc from '../../../protocol/codecs/leased';
import { DEFAULT_LEASE_POLICY } from '../../../replica/leased/leases';
import { CodecError } from '../../../protocol/bytes';

const rec = {
  key: new Uint8Array(Buffer.from('k')),
  value: new Uint8Array(Buffer.from('v')),
  headers: [['h', new Uint8Array(Buffer.from('x'))]] as Array<[string, Uint8Array]>,
  timestampMs: 7,
};
const plain = <T>(v: T): unknown => JSON.parse(JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? [...x] : x)));

describe('leased client-port codec', () => {
  test('fetch and its answer round-trip', () => {
    const req = { group: 'g', topic: 't', partition: 2, maxRecords: 10, waitMs: 500, leaseMs: 1000, requestId: 'r' };
    expect(lc.decodeLeaseFetch(lc.encodeLeaseFetch(req), 'r')).toEqual(req);
    const { leaseMs: _drop, ...noLease } = req;
    expect(lc.decodeLeaseFetch(lc.encodeLeaseFetch(noLease), 'r')).toEqual(noLease);
    const res = {
      records: [{ ...rec, offset: 4, attempt: 2, leaseUntilMs: 99 }],
      available: true,
      highWatermark: 5,
      committedOffset: null,
    };
    expect(plain(lc.decodeLeaseFetchResult(lc.encodeLeaseFetchResult(res)))).toEqual(plain(res));
  });

  test('acks and their results round-trip', () => {
    const req = {
      group: 'g',
      topic: 't',
      partition: 0,
      requestId: 'r',
      items: [
        { offset: 1, attempt: 1, action: 'accept' as const },
        { offset: 2, attempt: 3, action: 'release' as const, delayMs: 50, error: 'E: x', errorClass: 'E' },
        { offset: 3, attempt: 1, action: 'extend' as const, leaseMs: 1000 },
      ],
    };
    expect(lc.decodeLeaseAck(lc.encodeLeaseAck(req), 'r')).toEqual(req);
    const res = [
      { status: 'ok' as const, leaseUntilMs: 5, deadLettered: true },
      { status: 'stale_attempt' as const, detail: 'old' },
      { status: 'lease_expired' as const },
    ];
    expect(lc.decodeLeaseAckResults(lc.encodeLeaseAckResults(res))).toEqual(res);
  });

  test('dead-letter pages, group info and replay status round-trip', () => {
    const page = {
      nextAfterSeq: 3,
      items: [
        {
          topic: 't',
          partition: 1,
          seq: 3,
          group: 'g',
          originOffset: 9,
          record: rec,
          attempts: 5,
          lastError: 'E: x',
          errorClass: 'E',
          firstDeliveryMs: 1,
          lastDeliveryMs: 2,
          deadLetteredMs: 3,
          state: 'replayed' as const,
          replay: { jobId: 'j', offset: 12, atMs: 4 },
        },
      ],
    };
    expect(plain(lc.decodeDeadLetterPage(lc.encodeDeadLetterPage(page)))).toEqual(plain(page));
    const info = {
      group: 'g',
      topic: 't',
      partition: 0,
      override: { maxAttempts: 3 },
      effective: { ...DEFAULT_LEASE_POLICY, maxAttempts: 3 },
      committedOffset: null,
      highWatermark: 4,
      leased: 1,
      waiting: 0,
      done: 2,
      known: true,
    };
    expect(lc.decodeGroupLeaseInfo(lc.encodeGroupLeaseInfo(info))).toEqual(info);
    const job = {
      jobId: 'j',
      topic: 't',
      partition: 0,
      state: 'running' as const,
      dryRun: false,
      ratePerSec: 2.5,
      matched: 3,
      written: 1,
      skipped: 0,
      createdMs: 5,
      finishedMs: null,
      target: null,
    };
    expect(lc.decodeReplayStatus(lc.encodeReplayStatus(job))).toEqual(job);
    const toTopic = { ...job, target: { topic: 'other', partitions: 3 }, lastError: 'writing to other: UNAVAILABLE x' };
    expect(lc.decodeReplayStatus(lc.encodeReplayStatus(toTopic))).toEqual(toTopic);
    const start = {
      topic: 't',
      partition: 1,
      jobId: 't.j',
      filter: { group: 'g' },
      ratePerSec: 5,
      dryRun: false,
      target: { topic: 'other', partitions: 3 },
      requestId: 'r',
    };
    expect(lc.decodeReplayJob(lc.encodeReplayJob(start), 'r')).toEqual(start);
    const { target: _t, ...toOrigin } = start;
    expect(lc.decodeReplayJob(lc.encodeReplayJob(toOrigin), 'r')).toEqual(toOrigin);
    expect(() =>
      lc.decodeReplayJob(Buffer.from(JSON.stringify({ ...start, target: { topic: 'o', partitions: 0 } })), 'r'),
    ).toThrow(/target.partitions must be at least 1/);
    expect(lc.decodeReplayStatus(lc.encodeReplayStatus(null))).toBeNull();
    const q = { topic: 't', partition: 0, filter: { group: 'g', fromMs: 1 }, afterSeq: 4, limit: 10, requestId: 'r' };
    expect(lc.decodeDeadLetterQuery(lc.encodeDeadLetterQuery(q), 'r')).toEqual(q);
  });

  test('malformed bodies are codec errors', () => {
    const body = lc.encodeLeaseAck({
      group: 'g',
      topic: 't',
      partition: 0,
      requestId: 'r',
      items: [{ offset: 1, attempt: 1, action: 'accept' }],
    });
    expect(() => lc.decodeLeaseAck(body.subarray(0, body.length - 2), 'r')).toThrow(CodecError);
    const bad = Buffer.from(body);
    bad[bad.length - 2] = 9; // action
    expect(() => lc.decodeLeaseAck(bad, 'r')).toThrow(/ack action/);
    expect(() =>
      lc.decodeGroupPolicy(Buffer.from('{"group":"g","topic":"t","partition":0,"policy":{"x":1}}'), 'r'),
    ).toThrow(/policy.x is unknown/);
    expect(() =>
      lc.decodeDeadLetterQuery(Buffer.from('{"topic":"t","partition":0,"filter":{"states":["gone"]},"limit":1}'), 'r'),
    ).toThrow(/filter.states/);
  });
});
