import { collectInts, intArg, parseDurationMs, parseHeader, parseOffsetSpec, parseTimestamp } from '../../../cli/args';
import { checkConsumeOpts, offsetForTimestamp, type ConsumeOpts } from '../../../cli/commands/consume';
import { filterBody, replayBody } from '../../../cli/commands/dlq';
import { resetBody } from '../../../cli/commands/groups';
import { statusOf } from '../../../cli/commands/status';

describe('flag values', () => {
  it('headers are name=value; the value may hold = and be empty', () => {
    expect(parseHeader('a=b=c')).toEqual({ name: 'a', value: 'b=c' });
    expect(parseHeader('a=')).toEqual({ name: 'a', value: '' });
    expect(() => parseHeader('=x')).toThrow(/not name=value/);
    expect(() => parseHeader('novalue')).toThrow(/not name=value/);
  });

  it('offsets are earliest, latest or a number', () => {
    expect(parseOffsetSpec('earliest')).toEqual({ kind: 'earliest' });
    expect(parseOffsetSpec('LATEST')).toEqual({ kind: 'latest' });
    expect(parseOffsetSpec('42')).toEqual({ kind: 'offset', offset: 42 });
    expect(() => parseOffsetSpec('-1')).toThrow();
    expect(() => parseOffsetSpec('soon')).toThrow(/not earliest, latest or an offset/);
  });

  it('durations carry units; a bare number is milliseconds', () => {
    expect(parseDurationMs('250')).toBe(250);
    expect(parseDurationMs('2s')).toBe(2000);
    expect(parseDurationMs('1.5m')).toBe(90_000);
    expect(parseDurationMs('7d')).toBe(7 * 86_400_000);
    expect(() => parseDurationMs('2 weeks')).toThrow(/not a duration/);
  });

  it('times are ms, ISO 8601 or now-<duration>', () => {
    const now = 1_800_000_000_000;
    expect(parseTimestamp('1767000000000', now)).toBe(1_767_000_000_000);
    expect(parseTimestamp('2026-01-04T10:00:00Z', now)).toBe(Date.UTC(2026, 0, 4, 10));
    expect(parseTimestamp('now-15m', now)).toBe(now - 900_000);
    expect(parseTimestamp('now', now)).toBe(now);
    expect(() => parseTimestamp('yesterday', now)).toThrow(/not a time/);
  });

  it('integers are checked against their range; partitions may be listed or repeated', () => {
    expect(intArg(1, 10)('5')).toBe(5);
    expect(() => intArg(1, 10)('11')).toThrow(/outside/);
    expect(() => intArg(1)('1.5')).toThrow(/not an integer/);
    expect(collectInts(0, 9)('0,2', [1])).toEqual([1, 0, 2]);
  });
});

describe('consume options', () => {
  const base: ConsumeOpts = { commit: true, ack: 'accept', encoding: 'utf8', wait: 5000, fetchSize: 500 };
  it('refuses combinations that mean nothing', () => {
    expect(() => checkConsumeOpts({ ...base, offset: { kind: 'earliest' }, timestamp: 1 })).toThrow(/exclude/);
    expect(() => checkConsumeOpts({ ...base, leased: true })).toThrow(/--leased needs --group/);
    expect(() => checkConsumeOpts({ ...base, leased: true, group: 'g', partition: [0] })).toThrow(/do not apply/);
    expect(() => checkConsumeOpts({ ...base, ack: 'reject' })).toThrow(/--leased only/);
    expect(() => checkConsumeOpts({ ...base, leased: true, group: 'g', ackError: 'x' })).toThrow(/--ack-error/);
    expect(() => checkConsumeOpts({ ...base, leased: true, group: 'g', ack: 'reject', delay: 5 })).toThrow(/--delay/);
    expect(() =>
      checkConsumeOpts({ ...base, leased: true, group: 'g', ack: 'reject', ackError: 'E: x' }),
    ).not.toThrow();
  });

  it('finds the first offset at or after a timestamp by binary search', async () => {
    const ts = [10, 10, 20, 30, 30, 30, 40];
    const fetched: number[] = [];
    const one = async (o: number) => {
      fetched.push(o);
      return o < ts.length ? { offset: o, timestamp: ts[o], headers: [] } : undefined;
    };
    expect(await offsetForTimestamp(one, 30, 0, ts.length)).toBe(3);
    expect(await offsetForTimestamp(one, 5, 0, ts.length)).toBe(0);
    expect(await offsetForTimestamp(one, 99, 0, ts.length)).toBe(7);
    expect(await offsetForTimestamp(one, 25, 2, 2)).toBe(2);
    expect(fetched.length).toBeLessThan(15);
  });
});

describe('request bodies', () => {
  it('groups reset: exactly one target', () => {
    expect(resetBody({ topic: 't', toOffset: 5, partition: [1, 1, 0], dryRun: true })).toEqual({
      topic: 't',
      to: 'offset',
      offset: 5,
      partitions: [1, 0],
      dry_run: true,
    });
    expect(() => resetBody({ topic: 't' })).toThrow(/exactly one/);
    expect(() => resetBody({ topic: 't', toEarliest: true, toLatest: true })).toThrow(/exactly one/);
  });

  it('dead-letter filters and replay', () => {
    expect(filterBody({ group: 'g', errorClass: 'E', id: ['0-1,1-2', '2-0'], from: 1 })).toEqual({
      from: 1,
      group: 'g',
      error_class: 'E',
      ids: ['0-1', '1-2', '2-0'],
    });
    expect(replayBody({ wait: true, poll: 1, targetTopic: 'p', rate: 5, dryRun: true })).toEqual({
      filter: {},
      target: 'topic',
      target_topic: 'p',
      rate_per_sec: 5,
      dry_run: true,
    });
  });
});

describe('status', () => {
  it('a partition without leader, or that could not be asked, is leaderless', () => {
    const r = statusOf([
      {
        name: 't',
        partition_count: 3,
        max_record_bytes: 1,
        quotas: {},
        rights: [],
        partitions: [
          { partition: 0, leader: 'a', term: 2, high_watermark: 5, log_start_offset: 0 },
          { partition: 1, leader: null },
          { partition: 2, leader: null, error: { code: 'UNAVAILABLE', detail: 'no replica' } },
        ],
      },
    ]);
    expect(r).toMatchObject({ healthy: false, partitions: 3, leaderless: 2, under_replicated: null });
    expect(r.details[2].error).toBe('UNAVAILABLE: no replica');
  });
});
