import {
  ConfChangeRefusedError,
  EntryType,
  InvariantViolation,
  MemoryStorage,
  MessageType,
  NotLeaderError,
  RaftNode,
  RaftUsageError,
  TooManyUncommittedError,
  type Entry,
  type Message,
  type RaftConfig,
  type Ready,
} from '../../../../replica/raft';
import { RaftLog } from '../../../../replica/raft/log';

/**
 * Focused behaviours of the core, driven by hand (the simulator covers the interleavings).
 * A tiny synchronous driver: persist → send → apply → advance, messages delivered in order.
 */
class Cluster {
  readonly stores = new Map<string, MemoryStorage>();
  readonly nodes = new Map<string, RaftNode>();
  readonly sent: Message[] = [];
  readonly applied = new Map<string, Entry[]>();
  /** Return false to drop a message. */
  filter: (m: Message) => boolean = () => true;

  constructor(
    ids: string[],
    over: Partial<RaftConfig> = {},
    private readonly storeFor: (id: string) => MemoryStorage = () => MemoryStorage.bootstrap(ids),
  ) {
    let seed = 7;
    for (const id of ids) {
      const storage = this.storeFor(id);
      this.stores.set(id, storage);
      this.applied.set(id, []);
      this.nodes.set(
        id,
        new RaftNode(config(id, storage, () => (seed = (seed * 16807) % 2147483647) / 2147483647, over)),
      );
    }
  }

  node(id: string): RaftNode {
    return this.nodes.get(id)!;
  }

  /** Run every node's Ready loop and deliver messages until quiet. */
  settle(): void {
    for (let rounds = 0; rounds < 1000; rounds++) {
      let busy = false;
      for (const [id, n] of this.nodes) {
        while (n.hasReady()) {
          busy = true;
          this.process(id, n, n.ready());
        }
      }
      const q = this.sent.splice(0);
      for (const m of q) {
        busy = true;
        if (this.filter(m)) this.nodes.get(m.to)?.step(m);
      }
      if (!busy) return;
    }
    throw new Error('no quiescence');
  }

  process(id: string, n: RaftNode, rd: Ready): void {
    const st = this.stores.get(id)!;
    if (rd.snapshot) st.applySnapshot(rd.snapshot);
    st.append(rd.entries);
    if (rd.hardState) st.setHardState(rd.hardState);
    this.sent.push(...rd.messages);
    this.applied.get(id)!.push(...rd.committed);
    n.advance(rd);
  }

  elect(id: string): void {
    const n = this.node(id);
    for (let i = 0; i < 40 && n.role !== 'leader'; i++) {
      n.tick();
      this.settle();
    }
    expect(n.role).toBe('leader');
  }
}

function config(id: string, storage: MemoryStorage, random: () => number, over: Partial<RaftConfig>): RaftConfig {
  return {
    id,
    storage,
    electionTicks: 10,
    heartbeatTicks: 1,
    random,
    preVote: true,
    checkQuorum: true,
    maxSizePerMsgBytes: 1 << 20,
    maxInflightMsgs: 16,
    maxInflightBytes: 1 << 20,
    ...over,
  };
}

const data = (s: string) => new TextEncoder().encode(s);

describe('persistence contract', () => {
  test('a single voter commits its entry only after advance() of the Ready that persisted it', () => {
    const c = new Cluster(['a']);
    c.elect('a');
    const a = c.node('a');
    const [idx] = a.propose(data('x'));
    const rd = a.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([idx]);
    expect(rd.mustSync).toBe(true);
    expect(a.commit).toBeLessThan(idx); // not counted before persisted
    c.process('a', a, rd);
    expect(a.commit).toBe(idx);
    const next = a.ready();
    expect(next.committed.map((e) => e.index)).toEqual([idx]);
  });

  test('a vote leaves in the same Ready as the hard state that records it', () => {
    const c = new Cluster(['a', 'b', 'c'], { preVote: false });
    const a = c.node('a');
    for (let i = 0; i < 20 && a.role !== 'candidate'; i++) a.tick();
    const rd = a.ready();
    expect(rd.hardState).toMatchObject({ term: 2, vote: 'a' });
    expect(rd.mustSync).toBe(true);
    c.process('a', a, rd);
    const b = c.node('b');
    b.step(c.sent.find((m) => m.to === 'b')!);
    const brd = b.ready();
    expect(brd.hardState).toMatchObject({ term: 2, vote: 'a' });
    expect(brd.messages).toContainEqual(expect.objectContaining({ type: MessageType.VoteResp, reject: false }));
  });

  test('ready() twice without advance() is a usage error', () => {
    const c = new Cluster(['a']);
    c.elect('a');
    const a = c.node('a');
    a.propose(data('x'));
    const rd = a.ready();
    expect(a.hasReady()).toBe(false);
    expect(() => a.ready()).toThrow(RaftUsageError);
    expect(() => a.advance({ ...rd })).toThrow(RaftUsageError);
    a.advance(rd);
  });
});

describe('urgent messages while a write is in progress', () => {
  test('a leader busy writing still sends heartbeats, and appends only of entries it is writing', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const a = c.node('a');
    const [first] = a.propose(data('x'));
    const rd = a.ready(); // the write of `first` is in progress
    expect(rd.entries.map((e) => e.index)).toEqual([first]);
    const [second] = a.propose(data('y')); // proposed during the write: not handed out yet
    a.tick(); // heartbeatTicks = 1
    const urgent = a.takeUrgentMessages();
    expect(urgent.some((m) => m.type === MessageType.Heartbeat)).toBe(true);
    for (const m of urgent)
      if (m.type === MessageType.App) expect(Math.max(...m.entries.map((e) => e.index), 0)).toBeLessThan(second);
    c.process('a', a, rd);
    // The entry proposed during the write goes out with the next Ready, not before.
    const next = a.ready();
    expect(next.entries.map((e) => e.index)).toEqual([second]);
    c.process('a', a, next);
    c.settle();
    expect(a.commit).toBeGreaterThanOrEqual(second);
  });

  test('a follower answers a heartbeat at once while writing, but nothing in a term not yet durable', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const a = c.node('a');
    const b = c.node('b');
    a.propose(data('x'));
    c.process('a', a, a.ready());
    const app = c.sent.find((m) => m.to === 'b' && m.type === MessageType.App)!;
    c.sent.length = 0;
    b.step(app);
    const brd = b.ready(); // b is writing the entry
    a.tick();
    const hb = a.takeUrgentMessages().find((m) => m.to === 'b' && m.type === MessageType.Heartbeat)!;
    b.step(hb);
    const answers = b.takeUrgentMessages();
    expect(answers.map((m) => m.type)).toEqual([MessageType.HeartbeatResp]);
    // The append's answer promises the entry is on disk: it waits for the write.
    expect(brd.messages.some((m) => m.type === MessageType.AppResp)).toBe(true);
    c.process('b', b, brd);

    // A vote request of a higher term: q's new term is not durable until its Ready is advanced.
    const fresh = new Cluster(['p', 'q', 'r'], { preVote: false });
    const p = fresh.node('p');
    for (let i = 0; i < 20 && p.role !== 'candidate'; i++) p.tick();
    fresh.process('p', p, p.ready());
    const q = fresh.node('q');
    q.step(fresh.sent.find((m) => m.to === 'q')!);
    expect(q.takeUrgentMessages()).toEqual([]); // its VoteResp (term 2, vote p) waits for the Ready
    const qrd = q.ready();
    expect(qrd.messages.some((m) => m.type === MessageType.VoteResp)).toBe(true);
  });
});

describe('log replication', () => {
  test('a stale, reordered App never truncates entries already acknowledged', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    const a = c.node('a');
    a.propose([data('1')]);
    c.settle();
    // Capture the App carrying one entry, then let two more through.
    a.propose([data('2')]);
    let stale: Message | undefined;
    c.filter = (m) => {
      if (m.type === MessageType.App && m.to === 'b' && m.entries.length > 0 && stale === undefined) {
        stale = m;
      }
      return true;
    };
    c.settle();
    a.propose([data('3'), data('4')]);
    c.settle();
    const b = c.node('b');
    const last = b.lastIndex;
    expect(stale).toBeDefined();
    b.step(stale!);
    c.settle();
    expect(b.lastIndex).toBe(last);
  });

  test('a follower rejects a mismatching App with a hint, and the leader skips the conflicting term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.settle();
    const b = c.node('b');
    const m: Message = {
      type: MessageType.App,
      from: 'a',
      to: 'b',
      term: c.node('a').term,
      prevIndex: 50,
      prevTerm: c.node('a').term,
      entries: [],
      commit: 0,
      epoch: 0,
    };
    b.step(m);
    const rd = b.ready();
    const resp = rd.messages.find((x) => x.type === MessageType.AppResp);
    expect(resp).toMatchObject({ reject: true, index: 50, hintIndex: b.lastIndex });
    c.process('b', b, rd);
  });

  test('an App that would rewrite committed entries is answered with the commit index, not applied', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose([data('1'), data('2')]);
    c.settle();
    const b = c.node('b');
    expect(b.commit).toBe(4);
    b.step({
      type: MessageType.App,
      from: 'a',
      to: 'b',
      term: b.term + 1,
      prevIndex: 3,
      prevTerm: b.term,
      entries: [{ index: 4, term: b.term + 1, type: EntryType.Normal, data: data('other') }],
      commit: 4,
      epoch: 0,
    });
    const rd = b.ready();
    expect(rd.entries).toEqual([]);
    expect(rd.messages).toContainEqual(expect.objectContaining({ type: MessageType.AppResp, index: 4, reject: false }));
  });

  test('the log itself refuses to truncate at or below commit (crash-only)', () => {
    const st = MemoryStorage.bootstrap(['a']);
    const e = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: data('') });
    st.append([e(2, 2), e(3, 2)]);
    const log = new RaftLog(st, 3, 1);
    expect(() => log.truncateAndAppend([e(3, 5)])).toThrow(InvariantViolation);
    expect(() => log.commitTo(9)).toThrow(InvariantViolation);
    log.truncateAndAppend([e(4, 5)]);
    expect(log.lastIndex()).toBe(4);
  });

  test('an unavailable storage read is retried after logAvailable()', () => {
    let available = true;
    const stores = new Map<string, MemoryStorage>();
    const c = new Cluster(['a', 'b', 'c'], {}, (id) => {
      const s = MemoryStorage.bootstrap(['a', 'b', 'c']);
      stores.set(id, s);
      return s;
    });
    c.elect('a');
    const a = c.node('a');
    a.propose([data('1'), data('2'), data('3')]);
    c.settle();
    // A new learner needs entries from the leader's storage: make them unavailable.
    const sa = stores.get('a')!;
    const orig = sa.entries.bind(sa);
    sa.entries = (lo, hi, max) => (available ? orig(lo, hi, max) : null);
    c.filter = (m) => !(m.to === 'c');
    a.propose([data('4')]);
    c.settle();
    c.filter = () => true;
    available = false;
    for (let i = 0; i < 5; i++) {
      a.tick();
      c.settle();
    }
    expect(c.node('c').lastIndex).toBeLessThan(a.lastIndex);
    available = true;
    a.logAvailable();
    c.settle();
    expect(c.node('c').lastIndex).toBe(a.lastIndex);
  });
});

describe('snapshots', () => {
  test('a stale snapshot is ignored; one matching the log fast-forwards commit and keeps the suffix', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    c.node('a').propose([data('1'), data('2'), data('3')]);
    c.settle();
    const b = c.node('b');
    const term = b.term;
    const conf = { voters: ['a', 'b', 'c'], learners: [] };
    b.step({
      type: MessageType.Snap,
      from: 'a',
      to: 'b',
      term,
      snapshot: { meta: { index: 2, term, conf }, data: new Uint8Array() },
    });
    let rd = b.ready();
    expect(rd.snapshot).toBeUndefined();
    expect(rd.messages[0]).toMatchObject({ type: MessageType.AppResp, index: b.commit });
    c.process('b', b, rd);
    // Leader-side view of the same log but with a commit index the follower has not learnt.
    c.filter = () => false;
    c.node('a').propose([data('4')]);
    c.settle();
    c.filter = () => true;
    const last = b.lastIndex;
    b.step({
      type: MessageType.App,
      from: 'a',
      to: 'b',
      term,
      prevIndex: last,
      prevTerm: term,
      entries: [{ index: last + 1, term, type: EntryType.Normal, data: data('5') }],
      commit: b.commit,
      epoch: 0,
    });
    c.process('b', b, b.ready());
    b.step({
      type: MessageType.Snap,
      from: 'a',
      to: 'b',
      term,
      snapshot: { meta: { index: last, term, conf }, data: new Uint8Array() },
    });
    rd = b.ready();
    expect(rd.snapshot).toBeUndefined();
    expect(b.commit).toBe(last);
    expect(b.lastIndex).toBe(last + 1);
    c.process('b', b, rd);
  });
});

describe('refusals', () => {
  test('a follower refuses proposals and names the leader', () => {
    const c = new Cluster(['a', 'b', 'c']);
    c.elect('a');
    let err: unknown;
    try {
      c.node('b').propose(data('x'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).leaderHint).toBe('a');
  });

  test('backpressure: proposals beyond maxUncommittedBytes are refused until entries commit', () => {
    const c = new Cluster(['a', 'b', 'c'], { maxUncommittedBytes: 10 });
    c.elect('a');
    const a = c.node('a');
    c.filter = () => false;
    a.propose(data('123456'));
    expect(() => a.propose(data('123456'))).toThrow(TooManyUncommittedError);
    c.filter = () => true;
    for (let i = 0; i < 3; i++) {
      a.tick();
      c.settle();
    }
    expect(() => a.propose(data('123456'))).not.toThrow();
  });

  test('membership: no change before the leader committed an entry of its term', () => {
    const c = new Cluster(['a', 'b', 'c']);
    const a = c.node('a');
    c.filter = (m) => m.type !== MessageType.AppResp;
    c.elect('a');
    let err: unknown;
    try {
      a.changeMembership({ type: 'addLearner', node: 'd' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfChangeRefusedError);
    expect((err as ConfChangeRefusedError).reason).toBe('noCurrentTermCommit');
    c.filter = () => true;
    for (let i = 0; i < 3; i++) {
      a.tick();
      c.settle();
    }
    expect(a.changeMembership({ type: 'addLearner', node: 'd' })).toBeGreaterThan(0);
  });

  test('a configuration that cannot work is refused at construction', () => {
    const s = MemoryStorage.bootstrap(['a']);
    expect(() => new RaftNode(config('a', s, Math.random, { heartbeatTicks: 10 }))).toThrow(RaftUsageError);
    expect(() => new RaftNode(config('a', s, Math.random, { maxInflightMsgs: 0 }))).toThrow(RaftUsageError);
  });
});
