import fc from 'fast-check';
import { SendQueue } from '../../../../replica/transport/send-queue';

describe('SendQueue (bounded, drop-oldest)', () => {
  it('keeps both bounds after every push and holds exactly the newest messages that fit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 500 }),
        fc.array(
          fc.oneof(
            fc.nat({ max: 120 }).map((n) => ({ push: n })),
            fc.constant({ shift: true }),
          ),
          {
            maxLength: 300,
          },
        ),
        (maxQueueMsgs, maxQueueBytes, ops) => {
          const q = new SendQueue({ maxQueueMsgs, maxQueueBytes });
          const model: Uint8Array[] = [];
          let seq = 0;
          let dropped = 0;
          for (const op of ops) {
            if ('shift' in op) {
              expect(q.shift()).toBe(model.shift());
              continue;
            }
            const msg = new Uint8Array(op.push);
            msg.fill(seq++ & 0xff);
            const d = q.push(msg);
            dropped += d;
            if (msg.byteLength > maxQueueBytes) {
              expect(d).toBe(1);
            } else {
              model.push(msg);
              let bytes = model.reduce((n, m) => n + m.byteLength, 0);
              let shed = 0;
              while (model.length > maxQueueMsgs || bytes > maxQueueBytes) {
                bytes -= (model.shift() as Uint8Array).byteLength;
                shed++;
              }
              expect(d).toBe(shed);
            }
            expect(q.length).toBe(model.length);
            expect(q.length).toBeLessThanOrEqual(maxQueueMsgs);
            expect(q.byteLength).toBeLessThanOrEqual(maxQueueBytes);
            expect(q.peek()).toBe(model[0]);
          }
          expect(dropped).toBeGreaterThanOrEqual(0);
          expect(q.clear()).toBe(model.length);
          expect(q.byteLength).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('stays O(live items) over a long run of push/shift (compaction)', () => {
    const q = new SendQueue({ maxQueueMsgs: 10, maxQueueBytes: 1 << 20 });
    for (let i = 0; i < 100_000; i++) {
      q.push(new Uint8Array(1));
      if (i % 3 !== 0) q.shift();
    }
    expect(q.length).toBeLessThanOrEqual(10);
  });

  it('refuses nonsensical bounds', () => {
    expect(() => new SendQueue({ maxQueueMsgs: 0, maxQueueBytes: 1 })).toThrow(RangeError);
    expect(() => new SendQueue({ maxQueueMsgs: 1, maxQueueBytes: 0 })).toThrow(RangeError);
  });
});
