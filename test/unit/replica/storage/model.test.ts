/**
 * Randomised model check: bursts of appends (with truncations), hard-state saves, applies and
 * compactions are issued without waiting — so the facade merges them into group commits in
 * every combination — and the storage must then match a plain in-memory model, both live and
 * after close + reopen. Seeds are fixed: a failure names its seed and replays exactly.
 */
import type { StateOp } from '../../../../replica/storage/storage';
import { dec, enc, openStorage, payload, removeDir, tempDir } from '../../../helpers/storage';

jest.setTimeout(120_000);

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Model {
  terms: Map<number, number>;
  first: number;
  last: number;
  prevTerm: number;
  term: number;
  commit: number;
  applied: number;
  state: Map<string, string>;
}

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f'];

describe('storage against a model', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`matches the model after random merged writes and a reopen (seed ${seed})`, async () => {
      const rnd = prng(seed);
      const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
      const dir = tempDir(`model-${seed}`);
      const m: Model = {
        terms: new Map(),
        first: 1,
        last: 0,
        prevTerm: 0,
        term: 1,
        commit: 0,
        applied: 0,
        state: new Map(),
      };
      const termAt = (i: number): number => (i === m.first - 1 ? m.prevTerm : m.terms.get(i)!);
      let s = await openStorage(dir, { maxBatchBytes: int(0, 1) === 0 ? 512 : 1 << 20 });
      try {
        for (let burst = 0; burst < 25; burst++) {
          const calls: Array<Promise<void>> = [];
          for (let k = int(1, 8); k > 0; k--) {
            const what = rnd();
            if (what < 0.45) {
              const lo = Math.max(m.commit + 1, m.first);
              const start = int(lo, m.last + 1);
              const term = Math.max(termAt(start - 1), m.term) + (rnd() < 0.2 ? 1 : 0);
              m.term = term;
              const n = int(1, 5);
              const es = [];
              for (let i = start; i < start + n; i++)
                es.push({ index: i, term, type: i % 4, data: payload(i, term, int(0, 64)) });
              for (let i = start; i <= m.last; i++) m.terms.delete(i);
              for (const e of es) m.terms.set(e.index, e.term);
              m.last = start + n - 1;
              const hs =
                rnd() < 0.5
                  ? { term: m.term, vote: `v${m.term}`, commit: (m.commit = int(m.commit, m.last)) }
                  : undefined;
              calls.push(s.append(es, hs));
            } else if (what < 0.75) {
              if (m.applied >= m.commit) continue;
              const applied = int(m.applied + 1, m.commit);
              const ops: StateOp[] = [];
              for (let j = int(0, 3); j > 0; j--) {
                const r = rnd();
                const key = KEYS[int(0, KEYS.length - 1)];
                if (r < 0.6) {
                  ops.push({ op: 'put', key: enc(key), value: enc(`${key}@${applied}`) });
                  m.state.set(key, `${key}@${applied}`);
                } else if (r < 0.8) {
                  ops.push({ op: 'del', key: enc(key) });
                  m.state.delete(key);
                } else {
                  const hi = KEYS[Math.min(KEYS.length - 1, KEYS.indexOf(key) + 2)];
                  ops.push({ op: 'delRange', gte: enc(key), lt: enc(hi) });
                  for (const k2 of [...m.state.keys()]) if (k2 >= key && k2 < hi) m.state.delete(k2);
                }
              }
              m.applied = applied;
              calls.push(s.applyBatch(applied, ops));
            } else if (what < 0.85) {
              if (m.applied + 1 <= m.first) continue;
              const to = int(m.first + 1, m.applied + 1);
              m.prevTerm = termAt(to - 1);
              for (let i = m.first; i < to; i++) m.terms.delete(i);
              m.first = to;
              calls.push(s.compactLog(to));
            } else {
              m.term += 1;
              calls.push(s.append([], { term: m.term, vote: null, commit: m.commit }));
            }
          }
          await Promise.all(calls);
          const got = await s.readEntries(m.first, m.last + 1, 1 << 30);
          expect(got.map((e) => `${e.index}:${e.term}`)).toEqual(
            [...m.terms.entries()].sort((a, b) => a[0] - b[0]).map(([i, t]) => `${i}:${t}`),
          );
          for (const e of got)
            expect(Buffer.from(e.data)).toEqual(Buffer.from(payload(e.index, e.term, e.data.byteLength)));
        }
        await s.close();
        s = await openStorage(dir);
        const r = s.recovered;
        expect(r).toMatchObject({
          firstIndex: m.first,
          lastIndex: m.last,
          appliedIndex: m.applied,
          prevTerm: m.prevTerm,
        });
        expect(r.lastTerm).toBe(termAt(m.last));
        for (const [start, term] of r.termRuns) expect(termAt(start)).toBe(term);
        expect(r.termRuns.length === 0 ? [] : [r.termRuns[0][0]]).toEqual(m.last >= m.first ? [m.first] : []);
        expect(r.logBytes).toBe(s.stats().logBytes);
        const rows = await s.scan({ gte: new Uint8Array(0), lt: new Uint8Array(0) });
        expect(rows.map(([k, v]) => [dec(k), dec(v)])).toEqual([...m.state.entries()].sort());
        expect(r.hardState?.commit ?? 0).toBe(m.commit);
      } finally {
        await s.close();
        removeDir(dir);
      }
    });
  }
});
