import { EXIT, exitCodeFor, formatProblem, describeError, UsageError } from '../../../cli/errors';
import { compileTemplate, recordFormatter, renderTable, type ApiRecord } from '../../../cli/output';

const rec: ApiRecord = {
  offset: 7,
  timestamp: Date.UTC(2026, 0, 4, 10, 0, 0),
  key: 'user-1',
  value: 'hello',
  headers: [
    { name: 'source', value: 'cli' },
    { name: 'bin', value_b64: 'AAE=' },
  ],
};

describe('a gateway problem as one line', () => {
  it('names code, status and detail, then the hints the problem carries, then the request id', () => {
    const line = formatProblem({
      status: 503,
      code: 'NO_QUORUM',
      detail: 'partition t/0 has no quorum',
      retry_after_ms: 1000,
      leader_hint: '127.0.0.1:7001',
      request_id: 'r-1',
    });
    expect(line).toBe(
      'NO_QUORUM (HTTP 503): partition t/0 has no quorum; retry after 1000 ms; leader 127.0.0.1:7001; request r-1',
    );
    expect(line).not.toContain('\n');
  });

  it('keeps pointer, parameter, limit and partial results, and adds what to do for auth and commit-unknown', () => {
    expect(
      formatProblem({ status: 413, code: 'RECORD_TOO_LARGE', detail: 'x', pointer: '/records/3', limit: 10 }),
    ).toBe('RECORD_TOO_LARGE (HTTP 413): x; at /records/3; limit 10');
    expect(formatProblem({ status: 401, code: 'UNAUTHENTICATED', detail: 'bad\ntoken' })).toMatch(
      /^UNAUTHENTICATED \(HTTP 401\): bad token; hint: pass a valid token/,
    );
    expect(
      formatProblem({
        status: 504,
        code: 'COMMIT_UNKNOWN',
        detail: 'd',
        partial_results: [
          { partition: 0, status: 'written' },
          { partition: 1, status: 'unknown', code: 'COMMIT_UNKNOWN' },
        ],
      }),
    ).toContain('partitions: 0 written, 1 unknown COMMIT_UNKNOWN; hint: retry with the same idempotency key');
  });

  it('maps statuses to documented exit codes', () => {
    expect(exitCodeFor({ status: 400 })).toBe(EXIT.REFUSED);
    expect(exitCodeFor({ status: 401 })).toBe(EXIT.AUTH);
    expect(exitCodeFor({ status: 403 })).toBe(EXIT.AUTH);
    expect(exitCodeFor({ status: 404 })).toBe(EXIT.NOT_FOUND);
    expect(exitCodeFor({ status: 409 })).toBe(EXIT.REFUSED);
    expect(exitCodeFor({ status: 416 })).toBe(EXIT.REFUSED);
    expect(exitCodeFor({ status: 429 })).toBe(EXIT.UNAVAILABLE);
    expect(exitCodeFor({ status: 503 })).toBe(EXIT.UNAVAILABLE);
    expect(exitCodeFor({ status: 504 })).toBe(EXIT.UNAVAILABLE);
    expect(exitCodeFor({ status: 500 })).toBe(EXIT.SERVER);
    expect(exitCodeFor({ status: 501 })).toBe(EXIT.SERVER);
  });

  it('prefixes every error with daftka: and keeps usage errors at exit 1', () => {
    expect(describeError(new UsageError('bad flag'))).toEqual({ line: 'daftka: bad flag', exitCode: 1 });
    expect(describeError(new Error('boom')).exitCode).toBe(EXIT.SERVER);
  });
});

describe('tables', () => {
  it('aligns columns, upper-cases headers and shows empty cells as -', () => {
    expect(
      renderTable(
        ['name', 'partitions', 'error'],
        [
          ['events', 3, null],
          ['o', 12, 'x'],
        ],
      ),
    ).toBe('NAME    PARTITIONS  ERROR\nevents  3           -\no       12          x\n');
  });
});

describe('record output', () => {
  it('value: the value, one per line', () => {
    expect(recordFormatter('value')(rec, 't', 0)).toBe('hello\n');
    expect(recordFormatter('value')({ ...rec, value: undefined, value_b64: 'AAE=' }, 't', 0)).toBe('AAE=\n');
  });

  it('value: a JSON value (--encoding json) as compact JSON, a null value (tombstone) as an empty line', () => {
    expect(recordFormatter('value')({ ...rec, value: { order: 42, items: [1] } }, 't', 0)).toBe(
      '{"order":42,"items":[1]}\n',
    );
    expect(recordFormatter('value')({ ...rec, value: 7 }, 't', 0)).toBe('7\n');
    expect(recordFormatter('value')({ ...rec, value: null }, 't', 0)).toBe('\n');
    expect(compileTemplate('{{value_b64}}')({ ...rec, value: { a: 1 } }, 't', 0)).toBe(
      Buffer.from('{"a":1}').toString('base64') + '\n',
    );
    expect(compileTemplate('[{{value_b64}}]')({ ...rec, value: null }, 't', 0)).toBe('[]\n');
  });

  it('json: one JSON line with topic and partition and without the lease token', () => {
    const line = recordFormatter('json')({ ...rec, lease_token: 'secret' }, 't', 1);
    expect(line.endsWith('\n')).toBe(true);
    const o = JSON.parse(line);
    expect(o).toMatchObject({ topic: 't', partition: 1, offset: 7, key: 'user-1', value: 'hello' });
    expect(o.lease_token).toBeUndefined();
  });

  it('template: fields, header.NAME, escapes, and a newline at the end', () => {
    const f = compileTemplate(
      '{{topic}}/{{partition}}@{{offset}}\\t{{key}}={{value}} {{header.source}} {{headers}} {{time}}',
    );
    expect(f(rec, 't', 2)).toBe('t/2@7\tuser-1=hello cli source=cli,bin=AAE= 2026-01-04T10:00:00.000Z\n');
    expect(compileTemplate('{{ value_b64 }}\\n')(rec, 't', 0)).toBe('aGVsbG8=\n');
  });

  it('template: an unknown field is a usage error before anything runs', () => {
    expect(() => compileTemplate('{{vaule}}')).toThrow(/unknown field \{\{vaule\}\}/);
    expect(() => recordFormatter('template')).toThrow(/needs --template/);
  });
});
