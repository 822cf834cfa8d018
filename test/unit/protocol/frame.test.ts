import fc from 'fast-check';
import {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameError,
  FrameType,
  PEER_FRAME_TYPES,
  RPC_FRAME_TYPES,
  encodeFrame,
  encodeFrameHeader,
  type Frame,
} from '../../../protocol/frame';

const ALL_TYPES = new Set([...PEER_FRAME_TYPES, ...RPC_FRAME_TYPES]);
const typeArb = fc.constantFrom(...([...ALL_TYPES] as FrameType[]));

function decoder(maxFrameBytes?: number) {
  return new FrameDecoder({ allowedTypes: ALL_TYPES, maxFrameBytes });
}

/** Split `buf` at the given cut points (sorted, deduplicated, clamped). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

function decodeAll(d: FrameDecoder, chunks: Buffer[]): Frame[] {
  const frames: Frame[] = [];
  for (const c of chunks) {
    d.push(c);
    for (const f of d.frames()) frames.push(f);
  }
  d.end();
  return frames;
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof FrameError) return e.reason;
    throw e;
  }
  return 'no error';
}

describe('frame encode/decode', () => {
  it('round-trips any sequence of frames through any chunk split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: typeArb, payload: fc.uint8Array({ maxLength: 2048 }) }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, cuts) => {
          const wire = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.payload)));
          const got = decodeAll(decoder(), split(wire, cuts));
          expect(got.map((f) => f.type)).toEqual(frames.map((f) => f.type));
          got.forEach((f, i) => expect(Buffer.compare(f.payload, Buffer.from(frames[i].payload))).toBe(0));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('round-trips byte by byte', () => {
    const payload = Buffer.from('hello, peers');
    const wire = Buffer.concat([encodeFrame(FrameType.PEER_MESSAGE, payload), encodeFrame(FrameType.PEER_HELLO_ACK)]);
    const got = decodeAll(
      decoder(),
      [...wire].map((b) => Buffer.from([b])),
    );
    expect(got).toHaveLength(2);
    expect(got[0].payload.toString()).toBe('hello, peers');
    expect(got[1].payload).toHaveLength(0);
  });

  it('computes the same header for a payload given in parts as given whole', () => {
    fc.assert(
      fc.property(typeArb, fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), (type, parts) => {
        const whole = Buffer.concat(parts);
        expect(encodeFrameHeader(type, parts)).toEqual(encodeFrame(type, whole).subarray(0, FRAME_HEADER_BYTES));
      }),
    );
  });

  it('returns undefined until a frame is whole', () => {
    const d = decoder();
    const wire = encodeFrame(FrameType.RPC_REQUEST, Buffer.alloc(100, 7));
    d.push(wire.subarray(0, 50));
    expect(d.next()).toBeUndefined();
    d.push(wire.subarray(50));
    expect(d.next()?.payload).toHaveLength(100);
    expect(d.next()).toBeUndefined();
    expect(d.bufferedBytes).toBe(0);
  });
});

describe('frame decoding refuses invalid input with a typed FrameError', () => {
  const good = () => encodeFrame(FrameType.PEER_MESSAGE, Buffer.from('payload'));

  it('bad version', () => {
    const w = good();
    w[0] = 9;
    const d = decoder();
    d.push(w);
    expect(reasonOf(() => d.next())).toBe('bad_version');
  });

  it('unknown type', () => {
    const d = new FrameDecoder({ allowedTypes: RPC_FRAME_TYPES });
    d.push(good()); // a peer frame on the client port
    expect(reasonOf(() => d.next())).toBe('unknown_type');
  });

  it('unknown flag bits', () => {
    const d = decoder();
    d.push(encodeFrame(FrameType.PEER_MESSAGE, Buffer.from('x'), 0x8000));
    expect(reasonOf(() => d.next())).toBe('bad_flags');
  });

  it('oversize length, refused from the header alone before any payload arrives', () => {
    const d = decoder(1024);
    d.push(encodeFrame(FrameType.PEER_MESSAGE, Buffer.alloc(1025)).subarray(0, FRAME_HEADER_BYTES));
    expect(reasonOf(() => d.next())).toBe('oversize');
  });

  it('a 4 GiB length announcement is oversize, not an allocation', () => {
    const h = encodeFrameHeader(FrameType.PEER_MESSAGE, []);
    h.writeUInt32BE(0xffffffff, 4);
    const d = decoder();
    d.push(h);
    expect(reasonOf(() => d.next())).toBe('oversize');
  });

  it('any single flipped bit in header or payload is detected', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 512 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (p, at, bit) => {
          const w = encodeFrame(FrameType.PEER_MESSAGE, p);
          const i = at % w.length;
          w[i] ^= 1 << bit;
          const d = decoder();
          d.push(w);
          // Whatever the flip hits, the frame must not decode: a header field check or the CRC catches it.
          let r: string;
          try {
            const f = d.next();
            d.end();
            r = f === undefined ? 'incomplete' : 'decoded';
          } catch (e) {
            if (!(e instanceof FrameError)) throw e;
            r = e.reason;
          }
          expect(r).not.toBe('decoded');
        },
      ),
      { numRuns: 500 },
    );
  });

  it('crc mismatch', () => {
    const w = good();
    w[w.length - 1] ^= 0xff;
    const d = decoder();
    d.push(w);
    expect(reasonOf(() => d.next())).toBe('crc_mismatch');
  });

  it('truncated: the stream ends inside a header or a payload', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (p, cut) => {
        const w = encodeFrame(FrameType.PEER_MESSAGE, p);
        const d = decoder();
        d.push(w.subarray(0, 1 + (cut % (w.length - 1))));
        expect(d.next()).toBeUndefined();
        expect(reasonOf(() => d.end())).toBe('truncated');
      }),
    );
  });

  it('random garbage only ever raises FrameError (or waits for more bytes)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const d = decoder(4096);
        try {
          for (const c of chunks) {
            d.push(c);
            for (const f of d.frames()) void f;
          }
        } catch (e) {
          expect(e).toBeInstanceOf(FrameError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('hands out every whole frame before the bad one, then stays failed', () => {
    const bad = good();
    bad[0] = 2;
    const d = decoder();
    d.push(Buffer.concat([good(), good(), bad, good()]));
    expect(d.next()).toBeDefined();
    expect(d.next()).toBeDefined();
    expect(reasonOf(() => d.next())).toBe('bad_version');
    d.push(good());
    expect(reasonOf(() => d.next())).toBe('bad_version');
  });

  it('rejects a nonsensical maxFrameBytes at construction', () => {
    expect(() => decoder(-1)).toThrow(RangeError);
  });
});
