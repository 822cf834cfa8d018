import fc from 'fast-check';
import {
  EntryType,
  MalformedMessageError,
  MessageType,
  decodeConfChange,
  decodeMessage,
  encodeConfChange,
  encodeMessage,
  type Entry,
  type Message,
} from '../../../../replica/raft';

const id = fc.oneof(fc.constantFrom('n1.1', 'n2.7', 'n10.123456'), fc.string({ minLength: 1, maxLength: 20 }));
const u = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const small = fc.integer({ min: 0, max: 1_000_000 });
const bytes = fc.uint8Array({ maxLength: 64 });

const message: fc.Arbitrary<Message> = fc.oneof(
  fc
    .record({
      type: fc.constantFrom(MessageType.PreVote, MessageType.Vote),
      from: id,
      to: id,
      term: small,
      lastIndex: u,
      transfer: fc.boolean(),
    })
    .chain((m) => fc.integer({ min: 0, max: m.term }).map((lastTerm) => ({ ...m, lastTerm }))),
  fc.record({
    type: fc.constantFrom(MessageType.PreVoteResp, MessageType.VoteResp),
    from: id,
    to: id,
    term: u,
    reject: fc.boolean(),
  }),
  fc
    .record({
      from: id,
      to: id,
      term: fc.integer({ min: 1, max: 1000 }),
      prevIndex: small,
      commit: u,
      epoch: u,
      n: fc.nat(8),
    })
    .chain((m) =>
      fc
        .tuple(
          fc.integer({ min: 0, max: m.term }),
          fc.array(
            fc.record({ type: fc.constantFrom(EntryType.Normal, EntryType.NoOp, EntryType.Config), data: bytes }),
            {
              minLength: m.n,
              maxLength: m.n,
            },
          ),
        )
        .map(([prevTerm, es]) => {
          const entries: Entry[] = es.map((e, i) => ({ index: m.prevIndex + 1 + i, term: m.term, ...e }));
          return {
            type: MessageType.App as const,
            from: m.from,
            to: m.to,
            term: m.term,
            prevIndex: m.prevIndex,
            prevTerm,
            commit: m.commit,
            entries,
            epoch: m.epoch,
          };
        }),
    ),
  fc.record({
    type: fc.constant(MessageType.AppResp),
    from: id,
    to: id,
    term: u,
    index: u,
    reject: fc.boolean(),
    hintIndex: u,
    hintTerm: u,
    epoch: u,
  }),
  fc.record({ type: fc.constant(MessageType.Heartbeat), from: id, to: id, term: u, commit: u }),
  fc.record({ type: fc.constantFrom(MessageType.HeartbeatResp, MessageType.TimeoutNow), from: id, to: id, term: u }),
  fc
    .record({
      from: id,
      to: id,
      term: small,
      index: u,
      voters: fc.array(id, { minLength: 1, maxLength: 7 }),
      learners: fc.array(id, { maxLength: 3 }),
      data: bytes,
    })
    .chain((m) =>
      fc.integer({ min: 0, max: m.term }).map((sterm) => ({
        type: MessageType.Snap as const,
        from: m.from,
        to: m.to,
        term: m.term,
        snapshot: {
          meta: { index: m.index, term: sterm, conf: { voters: m.voters, learners: m.learners } },
          data: m.data,
        },
      })),
    ),
);

const idFits = (m: Message) => [m.from, m.to].every((s) => new TextEncoder().encode(s).length <= 255);

describe('message codec', () => {
  test('every message round-trips', () => {
    fc.assert(
      fc.property(message, (m) => {
        fc.pre(idFits(m));
        expect(decodeMessage(encodeMessage(m))).toEqual(m);
      }),
      { numRuns: 1000 },
    );
  });

  test('any corruption of a valid frame is refused with MalformedMessageError or decodes to a valid message', () => {
    fc.assert(
      fc.property(message, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(), (m, pos, byte, truncate) => {
        fc.pre(idFits(m));
        const buf = encodeMessage(m).slice();
        const at = pos % buf.length;
        const bad = truncate ? buf.subarray(0, at) : (buf.set([byte], at), buf);
        try {
          const d = decodeMessage(bad);
          expect(encodeMessage(d)).toEqual(bad); // canonical: what decodes re-encodes identically
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedMessageError);
        }
      }),
      { numRuns: 1500 },
    );
  });

  test('random bytes never crash the decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (buf) => {
        try {
          decodeMessage(buf);
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedMessageError);
        }
      }),
      { numRuns: 1500 },
    );
  });

  test('refuses an absurd entry count before allocating', () => {
    const m = encodeMessage({
      type: MessageType.App,
      from: 'a',
      to: 'b',
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      commit: 0,
      entries: [],
      epoch: 0,
    });
    const bad = m.slice();
    bad[bad.length - 1] = 0xff; // count varint continues…
    const huge = new Uint8Array([...bad, 0xff, 0xff, 0xff, 0x0f]);
    expect(() => decodeMessage(huge)).toThrow(MalformedMessageError);
  });

  test('refuses entries whose terms go backwards or exceed the leader term', () => {
    const m = encodeMessage({
      type: MessageType.App,
      from: 'a',
      to: 'b',
      term: 5,
      prevIndex: 0,
      prevTerm: 0,
      commit: 0,
      entries: [
        { index: 1, term: 3, type: EntryType.Normal, data: new Uint8Array() },
        { index: 2, term: 4, type: EntryType.Normal, data: new Uint8Array() },
      ],
      epoch: 0,
    });
    const decoded = decodeMessage(m);
    expect(decoded.type).toBe(MessageType.App);
    // Swap the two entry terms (3 → 4, 4 → 3): out of order.
    const bad = m.slice();
    const i = bad.lastIndexOf(3, bad.length - 1);
    const j = bad.lastIndexOf(4);
    bad[i] = 4;
    bad[j] = 3;
    expect(() => decodeMessage(bad)).toThrow(MalformedMessageError);
  });
});

describe('conf change codec', () => {
  test('round-trips', () => {
    for (const type of ['addLearner', 'promote', 'remove'] as const) {
      expect(decodeConfChange(encodeConfChange({ type, node: 'n3.9' }))).toEqual({ type, node: 'n3.9' });
    }
  });
  test('refuses garbage', () => {
    expect(() => decodeConfChange(new Uint8Array([1, 9, 1, 65]))).toThrow(MalformedMessageError);
    expect(() => decodeConfChange(new Uint8Array([]))).toThrow(MalformedMessageError);
  });
});
