import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backoff, RestartIntensity } from '../../../common/backoff';
import {
  ClassifiedError,
  FAILURE_KINDS,
  RetriesExhaustedError,
  classify,
  retryRecoverable,
} from '../../../common/crash-policy';

describe('crash classification', () => {
  it.each([
    [Object.assign(new Error('io'), { code: 'EIO' }), 'storage_io_error', 'fatal'],
    [Object.assign(new Error('full'), { code: 'ENOSPC' }), 'disk_full', 'degradable'],
    [Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }), 'peer_connection_lost', 'recoverable'],
    [Object.assign(new Error('reset'), { code: 'ECONNRESET' }), 'peer_connection_lost', 'recoverable'],
    [Object.assign(new Error('slow'), { code: 'ETIMEDOUT' }), 'dependency_timeout', 'recoverable'],
    [new Error('Corruption: block checksum mismatch'), 'storage_corruption', 'fatal'],
    [Object.assign(new Error('commit went backwards'), { name: 'InvariantViolation' }), 'invariant_violation', 'fatal'],
    [new ClassifiedError('nats_disconnected', 'down'), 'nats_disconnected', 'degradable'],
    [new Error('something nobody expected'), 'unknown', 'fatal'],
  ])('classifies %s as %s (%s)', (err, kind, cls) => {
    expect(classify(err)).toEqual({ kind, class: cls });
  });

  it('has a class for every kind and the matrix doc names every kind', () => {
    const doc = readFileSync(join(__dirname, '../../../docs/crash-matrix.md'), 'utf8');
    for (const [kind, cls] of Object.entries(FAILURE_KINDS)) {
      expect(['fatal', 'recoverable', 'degradable']).toContain(cls);
      expect(doc).toContain(`\`${kind}\``);
    }
  });
});

describe('backoff', () => {
  it('grows geometrically, never exceeds the cap and never goes below base·(1-jitter)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 1, max: 4, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 1, maxLength: 40 }),
        (initialMs, capFactor, multiplier, jitter, rolls) => {
          const maxMs = initialMs * capFactor;
          let i = 0;
          const b = new Backoff({ initialMs, maxMs, multiplier, jitter, random: () => rolls[i++ % rolls.length] });
          for (let n = 0; n < rolls.length; n++) {
            const base = Math.min(maxMs, initialMs * Math.pow(multiplier, n));
            const d = b.next();
            expect(d).toBeLessThanOrEqual(Math.ceil(base));
            expect(d).toBeGreaterThanOrEqual(Math.floor(base * (1 - jitter)));
          }
        },
      ),
    );
  });

  it('starts again from the initial delay after reset', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1000, multiplier: 2, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    b.reset();
    expect(b.next()).toBe(10);
  });

  it('refuses nonsensical settings', () => {
    expect(() => new Backoff({ initialMs: 0 })).toThrow('backoff initialMs must be > 0, got 0');
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow('backoff maxMs (5) must be ≥ initialMs (10)');
    expect(() => new Backoff({ jitter: 2 })).toThrow('backoff jitter must be in [0, 1], got 2');
  });
});

describe('restart intensity', () => {
  it('escalates after more than N failures in the window and forgets old ones', () => {
    let now = 0;
    const r = new RestartIntensity({ maxFailures: 3, windowMs: 1000, now: () => now });
    expect([r.record(), r.record(), r.record()]).toEqual(['retry', 'retry', 'retry']);
    expect(r.record()).toBe('escalate');
    now = 5000;
    expect(r.record()).toBe('retry');
    expect(r.recentFailures).toBe(1);
  });
});

describe('retryRecoverable', () => {
  it('retries recoverable failures until success', async () => {
    let calls = 0;
    const result = await retryRecoverable(
      async () => {
        if (++calls < 3) throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
        return 'ok';
      },
      { backoff: { initialMs: 1, maxMs: 2 } },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('rethrows a fatal failure at once', async () => {
    let calls = 0;
    const err = Object.assign(new Error('io'), { code: 'EIO' });
    await expect(
      retryRecoverable(async () => {
        calls++;
        throw err;
      }),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('escalates repeated recoverable failures to fatal', async () => {
    const p = retryRecoverable(
      async () => {
        throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
      },
      { backoff: { initialMs: 1, maxMs: 1 }, intensity: { maxFailures: 4, windowMs: 60_000 } },
    );
    await expect(p).rejects.toBeInstanceOf(RetriesExhaustedError);
    await expect(p).rejects.toMatchObject({
      kind: 'repeated_startup_failure',
      message: 'gave up after 5 failures: refused',
    });
  });
});
