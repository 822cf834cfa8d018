import { DaftkaError, ERROR_CODES, problemHeaders, toProblem } from '../../../common/errors';

describe('errors → problem+json', () => {
  it('maps a typed error with its stable code, status and retry hints', () => {
    const p = toProblem(
      new DaftkaError('NOT_LEADER', 'replica 1 is a follower', { leaderHint: '10.0.0.2:9092', retryAfterMs: 50 }),
      'req-1',
    );
    expect(p).toEqual({
      type: 'https://daftka.io/problems/not-leader',
      title: 'Not the partition leader',
      status: 503,
      code: 'NOT_LEADER',
      detail: 'replica 1 is a follower',
      retryable: true,
      retry_after_ms: 50,
      leader_hint: '10.0.0.2:9092',
      request_id: 'req-1',
    });
    expect(problemHeaders(p)).toEqual({ 'content-type': 'application/problem+json', 'retry-after': '1' });
  });

  it('never echoes internal messages of unknown errors', () => {
    const p = toProblem(new Error('secret connection string postgres://u:p@h'));
    expect(p.code).toBe('INTERNAL');
    expect(p.status).toBe(500);
    expect(p.detail).not.toContain('secret');
  });

  it('rounds Retry-After up to whole seconds', () => {
    expect(
      problemHeaders(toProblem(new DaftkaError('QUOTA_EXCEEDED', 'x', { retryAfterMs: 1200 })))['retry-after'],
    ).toBe('2');
  });

  it('every code is 4xx or 5xx, and only 429/5xx may be retryable', () => {
    for (const [code, d] of Object.entries(ERROR_CODES)) {
      expect(d.status >= 400 && d.status < 600).toBe(true);
      if (d.retryable) expect([429, 503, 504]).toContain(d.status);
      expect(code).toMatch(/^[A-Z_]+$/);
    }
  });
});
