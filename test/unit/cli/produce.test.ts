import { Readable } from 'node:stream';
import { Pacer } from '../../../cli/pacer';
import { readLines, recordFromBytes, recordFromJsonLine, recordFromLine } from '../../../cli/produce-input';
import { renderProgress } from '../../../cli/progress';
import { backoffMs } from '../../../cli/retry';

async function lines(chunks: Array<string | Buffer>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of readLines(Readable.from(chunks))) out.push(l);
  return out;
}

describe('produce input', () => {
  it('splits lines across chunks, LF or CRLF, with a last line without newline', async () => {
    expect(await lines(['a\nb', 'c\r\nd\n', 'e'])).toEqual(['a', 'bc', 'd', 'e']);
    expect(await lines(['x\n\ny\n'])).toEqual(['x', '', 'y']);
  });

  it('keeps a UTF-8 character split between chunks whole', async () => {
    const b = Buffer.from('é€\n');
    expect(await lines([b.subarray(0, 1), b.subarray(1, 3), b.subarray(3)])).toEqual(['é€']);
  });

  it('lines: the line is the value; flags add key, headers and partition; empty lines are skipped', () => {
    expect(recordFromLine('', {})).toBeNull();
    expect(recordFromLine('v', { key: 'k', headers: [{ name: 'h', value: '1' }], partition: 2 })).toEqual({
      key: 'k',
      value: 'v',
      headers: [{ name: 'h', value: '1' }],
      partition: 2,
    });
  });

  it('lines with a key separator: the key is before the first separator', () => {
    expect(recordFromLine('user-1:a:b', { keySeparator: ':' })).toEqual({ key: 'user-1', value: 'a:b' });
    expect(recordFromLine('nokey', { keySeparator: ':', key: 'dflt' })).toEqual({ key: 'dflt', value: 'nokey' });
  });

  it('ndjson: API records; JSON values, null values and delivery times go as they are; the line wins over flags', () => {
    expect(recordFromJsonLine('{"key":"a","value":{"n":1},"partition":1}', 1, { key: 'x', partition: 0 })).toEqual({
      key: 'a',
      value: { n: 1 },
      partition: 1,
    });
    expect(recordFromJsonLine('{"key":"a","value":null}', 2, {})).toEqual({ key: 'a', value: null });
    expect(recordFromJsonLine('{"value":"v","deliver_after_ms":5000,"ttl_ms":60000}', 2, {})).toEqual({
      value: 'v',
      deliver_after_ms: 5000,
      ttl_ms: 60000,
    });
    expect(recordFromJsonLine('{"value_b64":"AAE="}', 1, { key: 'x' })).toEqual({ value_b64: 'AAE=', key: 'x' });
    expect(recordFromJsonLine('  ', 3, {})).toBeNull();
  });

  it('ndjson: a bad line is a usage error naming the line', () => {
    expect(() => recordFromJsonLine('{', 4, {})).toThrow(/input line 4: not JSON/);
    expect(() => recordFromJsonLine('[1]', 5, {})).toThrow(/input line 5: must be a JSON object/);
    expect(() => recordFromJsonLine('{"key":"k"}', 6, {})).toThrow(/input line 6: needs "value"/);
    expect(() => recordFromJsonLine('{"value":"v","offset":1}', 7, {})).toThrow(/unknown field "offset"/);
  });

  it('raw: the whole input as base64 bytes', () => {
    expect(recordFromBytes(Buffer.from([0, 255]), { key: 'k' })).toEqual({ value_b64: 'AP8=', key: 'k' });
  });
});

describe('produce pacing, retries and progress', () => {
  it('--rate spaces batches so that records leave at the rate on average', () => {
    let now = 1000;
    const p = new Pacer(100, () => now);
    expect(p.maxBatch(500)).toBe(25);
    expect(p.delayFor(25)).toBe(0);
    expect(p.delayFor(25)).toBe(250);
    now += 400;
    expect(p.delayFor(25)).toBe(100);
    expect(new Pacer(1).maxBatch(500)).toBe(1);
  });

  it('backs off 200 ms doubling to 5 s, jittered, never below the gateway retry_after_ms', () => {
    expect(backoffMs(0, undefined, () => 1)).toBe(200);
    expect(backoffMs(0, undefined, () => 0)).toBe(100);
    expect(backoffMs(10, undefined, () => 1)).toBe(5000);
    expect(backoffMs(0, 3000, () => 1)).toBe(3000);
  });

  it('draws a bar with percent, bytes, records and rate', () => {
    expect(renderProgress(512 * 1024, 1024 * 1024, 1000, 2000, 10)).toBe(
      '[#####·····]  50%  512.0 KiB / 1.0 MiB  1,000 records  500 rec/s',
    );
  });
});
