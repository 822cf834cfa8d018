import {
  EntryType,
  MemoryStorage,
  MessageType,
  RaftNode,
  RaftRefusal,
  applyConfChange,
  decodeConfChange,
  decodeMessage,
  encodeMessage,
  type Message,
  type NodeId,
  type Ready,
} from '../../replica/raft';
import { withBugs, type RaftBugs } from '../../replica/raft/bugs';
import { BOOT_CHAIN, chainStep, decodeChain, encodeChain } from './chain';
import { SimDisk } from './disk';
import { Oracle, Violation } from './oracle';
import { Prng } from './prng';
import { defaultClientBacklog, drawProfile, type Budget, type Profile } from './profile';
import { FlakyStorage, SimNode } from './simnode';

/**
 * A deterministic, single-threaded discrete-event simulation of a Raft group: nodes with
 * simulated disks (page cache vs fsync, crashes lose the unsynced tail), a network with per-link
 * delay, loss, duplication, reordering and partitions, drifting clocks, restarts, membership
 * changes, leadership transfers and clients — all driven by one seed. The oracle checks every
 * event. After the chaos phase the world heals and the group must make progress again.
 */

export interface RunOptions {
  seed: number;
  /** Record the event trace (returned in the result). */
  trace?: boolean;
  /** Break rules in the core (oracle teeth tests). */
  bugs?: RaftBugs;
  /** Override parts of the seed's drawn profile. */
  profile?: Partial<Profile>;
  /** How long and busy each seed's run is (default 'full'). */
  budget?: Budget;
  /** Hard cap on processed events (a run that needs more is a failure: event storm). */
  maxEvents?: number;
}

export interface RunResult {
  seed: number;
  ok: boolean;
  /** Failed invariant (or 'liveness', 'exception'). */
  invariant?: string;
  error?: string;
  events: number;
  simMs: number;
  acks: number;
  committed: number;
  terms: number;
  crashes: number;
  confChanges: number;
  profile: Profile;
  trace: string[];
}

interface Link {
  cuts: number;
  baseMs: number;
  /** Delivery time of the last in-order message on this link. */
  fifoAt: number;
}

interface Ev {
  t: number;
  seq: number;
  fn: () => void;
}

/** Binary min-heap on (time, insertion order): equal times run in the order scheduled. */
class EventQueue {
  private h: Ev[] = [];
  get size(): number {
    return this.h.length;
  }
  private less(a: Ev, b: Ev): boolean {
    return a.t < b.t || (a.t === b.t && a.seq < b.seq);
  }
  push(e: Ev): void {
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Ev | undefined {
    const h = this.h;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

const MSG_NAMES: Record<MessageType, string> = {
  [MessageType.PreVote]: 'PreVote',
  [MessageType.PreVoteResp]: 'PreVoteResp',
  [MessageType.Vote]: 'Vote',
  [MessageType.VoteResp]: 'VoteResp',
  [MessageType.App]: 'App',
  [MessageType.AppResp]: 'AppResp',
  [MessageType.Heartbeat]: 'Heartbeat',
  [MessageType.HeartbeatResp]: 'HeartbeatResp',
  [MessageType.Snap]: 'Snap',
  [MessageType.TimeoutNow]: 'TimeoutNow',
};

export function formatMessage(m: Message): string {
  const head = `${MSG_NAMES[m.type]} ${m.from}→${m.to} t${m.term}`;
  switch (m.type) {
    case MessageType.PreVote:
    case MessageType.Vote:
      return `${head} last=${m.lastIndex}/${m.lastTerm}${m.transfer ? ' transfer' : ''}`;
    case MessageType.PreVoteResp:
    case MessageType.VoteResp:
      return `${head} ${m.reject ? 'reject' : 'grant'}`;
    case MessageType.App: {
      const n = m.entries.length;
      const ents = n === 0 ? '' : ` [${m.entries[0].index}..${m.entries[n - 1].index}]`;
      return `${head} prev=${m.prevIndex}/${m.prevTerm} commit=${m.commit}${ents}`;
    }
    case MessageType.AppResp:
      return `${head} ${m.reject ? `reject ${m.index} hint=${m.hintIndex}/${m.hintTerm}` : `ok ${m.index}`}`;
    case MessageType.Heartbeat:
      return `${head} commit=${m.commit}`;
    case MessageType.Snap:
      return `${head} snap=${m.snapshot.meta.index}/${m.snapshot.meta.term} voters=${m.snapshot.meta.conf.voters.join(',')}`;
    default:
      return head;
  }
}

/** Client payloads: a unique 6-byte id, then filler. */
const PAYLOAD_ID_BYTES = 6;
function makePayload(id: number, filler: number): Uint8Array {
  const b = new Uint8Array(PAYLOAD_ID_BYTES + filler);
  let v = id;
  for (let i = 0; i < PAYLOAD_ID_BYTES; i++) {
    b[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return b;
}
function payloadId(data: Uint8Array): number {
  if (data.length < PAYLOAD_ID_BYTES) return -1;
  let v = 0;
  for (let i = PAYLOAD_ID_BYTES - 1; i >= 0; i--) v = v * 256 + data[i];
  return v;
}

type FaultKind = keyof Profile['faultWeights'];

interface Replacement {
  order: 'removeFirst' | 'addFirst';
  old: SimNode;
  fresh: SimNode | null;
}

export class Simulation {
  now = 0;
  events = 0;
  readonly rng: Prng;
  readonly profile: Profile;
  readonly oracle = new Oracle();
  readonly nodes: SimNode[] = [];
  private readonly byId = new Map<NodeId, SimNode>();
  private readonly queue = new EventQueue();
  private seq = 0;
  private readonly traceLines: string[] | null;
  private readonly bugs: RaftBugs | undefined;
  private readonly maxEvents: number;
  /** Directed links: how many faults cut each, its base delay, and its FIFO horizon. */
  private readonly links = new Map<NodeId, Map<NodeId, Link>>();
  phase: 'chaos' | 'liveness' | 'manual' = 'chaos';
  private nextPayloadId = 1;
  private replacement: Replacement | null = null;
  private nextOrdinal = 0;
  /** Armed fault: crash this leader as soon as its commit passes `commit`. */
  private crashOnCommit: { node: SimNode; commit: number } | null = null;
  /** Message filter for scripted scenarios: return false to drop. */
  filter: ((m: Message) => boolean) | null = null;
  stats = { crashes: 0, confChanges: 0, acks: 0, refused: 0, transfers: 0 };
  /** Acknowledged client proposals, by payload id. */
  readonly acked = new Map<number, { index: number; term: number }>();

  constructor(
    readonly seed: number,
    opts: { trace?: boolean; bugs?: RaftBugs; profile?: Partial<Profile>; maxEvents?: number; budget?: Budget } = {},
  ) {
    this.rng = new Prng(seed);
    this.profile = { ...drawProfile(this.rng.fork(), opts.budget), ...opts.profile };
    if (this.profile.clientMaxBacklog === 0) this.profile.clientMaxBacklog = defaultClientBacklog(this.profile);
    this.traceLines = opts.trace ? [] : null;
    this.bugs = opts.bugs;
    this.maxEvents = opts.maxEvents ?? 3_000_000;
    this.oracle.nodeLookup = (id) => this.byId.get(id);
  }

  // ---- plumbing ----

  trace(line: string): void {
    if (this.traceLines !== null) this.traceLines.push(`${this.now.toFixed(3).padStart(10)} ${line}`);
  }

  get traceOutput(): string[] {
    return this.traceLines ?? [];
  }

  schedule(delayMs: number, fn: () => void): void {
    this.queue.push({ t: this.now + Math.max(0, delayMs), seq: this.seq++, fn });
  }

  /** Process events until `until` (ms) or `stop()` holds. Returns whether `stop` held. */
  runUntil(untilMs: number, stop?: () => boolean): boolean {
    for (;;) {
      if (stop?.()) return true;
      const e = this.queue.pop();
      if (e === undefined) return false;
      if (e.t > untilMs) {
        this.queue.push(e);
        this.now = untilMs;
        return stop?.() ?? false;
      }
      this.now = e.t;
      if (++this.events > this.maxEvents) throw new Violation('event budget', `more than ${this.maxEvents} events`);
      e.fn();
    }
  }

  node(id: NodeId): SimNode {
    const n = this.byId.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** The up node that believes it leads the highest term. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes) {
      if (n.raft !== null && n.raft.role === 'leader' && (best === null || n.raft.term > best.raft!.term)) best = n;
    }
    return best;
  }

  liveMembers(): SimNode[] {
    return this.nodes.filter((n) => n.lifecycle !== 'decommissioned');
  }

  // ---- nodes ----

  /** Create the founding members and start them. */
  bootstrap(): void {
    const ids: NodeId[] = [];
    for (let i = 0; i < this.profile.nodes; i++) ids.push(`n${i + 1}.1`);
    this.nextOrdinal = this.profile.nodes + 1;
    for (let i = 0; i < this.profile.nodes; i++) {
      const storage = MemoryStorage.bootstrap(ids, encodeChain(BOOT_CHAIN));
      this.addNode(ids[i], i + 1, 1, storage, 'member');
    }
  }

  private addNode(id: NodeId, ordinal: number, incarnation: number, storage: MemoryStorage, lc: SimNode['lifecycle']) {
    const drift = this.profile.clockDrift;
    const tickMs = this.profile.tickMs * (1 + this.rng.range(-drift, drift));
    const n = new SimNode(id, ordinal, incarnation, new SimDisk(storage), tickMs, this.rng.fork(), lc);
    this.nodes.push(n);
    this.byId.set(id, n);
    this.start(n);
    return n;
  }

  private start(n: SimNode): void {
    n.rebuildFromDisk(this.oracle);
    n.pausedUntil = 0;
    const p = this.profile;
    const storage = new FlakyStorage(
      n,
      () => this.rng.chance(p.storageUnavailableRate),
      () => {
        const epoch = n.epoch;
        this.schedule(this.rng.range(0.1, 3), () => {
          if (n.epoch !== epoch || n.raft === null) return;
          this.trace(`${n.id} logAvailable`);
          n.raft.logAvailable();
          this.after(n);
        });
      },
    );
    let config = {
      id: n.id,
      storage,
      electionTicks: p.electionTicks,
      heartbeatTicks: p.heartbeatTicks,
      random: () => n.rng.next(),
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      maxSizePerMsgBytes: p.maxSizePerMsgBytes,
      maxInflightMsgs: p.maxInflightMsgs,
      maxInflightBytes: p.maxInflightBytes,
      maxUncommittedBytes: p.maxUncommittedBytes,
      maxCommittedBytesPerReady: p.maxCommittedBytesPerReady,
      applied: n.smApplied,
    };
    if (this.bugs !== undefined) config = withBugs(config, this.bugs);
    n.raft = new RaftNode(config);
    n.lastCommitSeen = n.raft.commit;
    this.oracle.onRestart(n);
    this.trace(
      `${n.id} start term=${n.raft.term} commit=${n.raft.commit} last=${n.raft.lastIndex} applied=${n.smApplied}`,
    );
    this.scheduleTick(n);
    this.after(n);
  }

  private scheduleTick(n: SimNode): void {
    const epoch = n.epoch;
    this.schedule(n.tickMs, () => {
      if (n.epoch !== epoch || n.raft === null) return;
      // A frozen process misses its timer; it fires once when the process resumes.
      if (this.now < n.pausedUntil) return this.schedule(n.pausedUntil - this.now, () => this.resumeTick(n, epoch));
      n.raft.tick();
      this.after(n);
      this.scheduleTick(n);
    });
  }

  private resumeTick(n: SimNode, epoch: number): void {
    if (n.epoch !== epoch || n.raft === null) return;
    n.raft.tick();
    this.after(n);
    this.scheduleTick(n);
  }

  /**
   * Scripted scenarios: make `n` time out now (it ticks through a full election timeout at
   * once), so the test decides who campaigns.
   */
  campaign(n: SimNode): void {
    const r = n.raft;
    if (r === null) throw new Error(`${n.id} is down`);
    this.trace(`${n.id} forced election timeout`);
    const term = r.term;
    const role = r.role;
    const started = () => r.term !== term || (r.role !== role && (r.role === 'candidate' || r.role === 'precandidate'));
    for (let i = 0; i < 2 * this.profile.electionTicks && !started(); i++) {
      r.tick();
      this.after(n);
    }
  }

  /** Run for `ms` of simulated time (or until `stop`). */
  runFor(ms: number, stop?: () => boolean): boolean {
    return this.runUntil(this.now + ms, stop);
  }

  crash(n: SimNode): void {
    if (n.raft === null) return;
    n.raft = null;
    n.epoch++;
    n.busy = false;
    const kept = n.disk.crash(this.rng);
    this.oracle.onDurable(n);
    this.stats.crashes++;
    this.trace(`${n.id} CRASH (kept ${kept} unsynced writes)`);
  }

  restart(n: SimNode): void {
    if (n.raft !== null || n.lifecycle === 'decommissioned') return;
    this.start(n);
  }

  /** After anything happened to `n`: check, then let its driver run. */
  after(n: SimNode): void {
    this.oracle.onEvent(n);
    if (this.crashOnCommit !== null && n === this.crashOnCommit.node && n.raft !== null) {
      if (n.raft.role !== 'leader') this.crashOnCommit = null;
      else if (n.raft.commit > this.crashOnCommit.commit) {
        this.crashOnCommit = null;
        const duration = this.rng.exp(this.profile.faultMeanDurationMs);
        this.trace(`fault crash leader ${n.id} on commit ${n.raft.commit}`);
        this.crash(n);
        this.schedule(duration, () => this.restart(n));
        return;
      }
    }
    this.drive(n);
  }

  /** The replica's driver loop: Ready → persist → (fsync) → send → apply → advance. */
  private drive(n: SimNode): void {
    // Like the replica: while a write is in progress, heartbeats, their answers and a leader's
    // appends leave at once (RaftNode.takeUrgentMessages) instead of after the fsync.
    if (n.raft !== null && n.busy && this.profile.sendAppsBeforePersist && this.now >= n.pausedUntil)
      for (const m of n.raft.takeUrgentMessages()) {
        this.oracle.onSend(n, m);
        this.send(m);
      }
    while (n.raft !== null && !n.busy && n.raft.hasReady()) {
      const rd = n.raft.ready();
      if (this.traceLines !== null) this.traceReady(n, rd);
      const prevHs = n.disk.liveHs;
      this.oracle.beforeWrite(n, rd);
      // Like the replica: a leader's App/Heartbeat promise nothing about its own disk, so they
      // may leave before the write (Raft thesis §10.2.1) unless the term or vote changes in it.
      let later = rd.messages;
      const hs = rd.hardState;
      if (
        this.profile.sendAppsBeforePersist &&
        (hs === undefined || (hs.term === prevHs.term && hs.vote === prevHs.vote))
      ) {
        later = [];
        for (const m of rd.messages) {
          if (m.type === MessageType.App || m.type === MessageType.Heartbeat) this.send(m);
          else later.push(m);
        }
      }
      n.disk.write({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
      n.writeChains(rd, this.oracle);
      n.inMemoryConfigs = [];
      this.oracle.afterWrite(n, rd, prevHs.commit);
      if (rd.mustSync) {
        n.busy = true;
        const epoch = n.epoch;
        const stall = Math.max(0, n.stalledUntil - this.now);
        const latency = this.rng.range(0.5, 1.5) * this.profile.diskLatencyMs + stall;
        const done = () => {
          if (n.epoch !== epoch) return; // crashed meanwhile: the write may be lost
          // The fsync finished, but a frozen process only sees it when it resumes.
          if (this.now < n.pausedUntil) return this.schedule(n.pausedUntil - this.now, done);
          n.disk.sync();
          this.oracle.onDurable(n);
          n.busy = false;
          this.finish(n, rd, later);
          this.drive(n);
        };
        this.schedule(latency, done);
        return;
      }
      this.finish(n, rd, later);
    }
  }

  private traceReady(n: SimNode, rd: Ready): void {
    const parts: string[] = [];
    if (rd.softState) parts.push(`${rd.softState.role}(leader=${rd.softState.leader})`);
    if (rd.hardState) parts.push(`hs=t${rd.hardState.term}/v${rd.hardState.vote}/c${rd.hardState.commit}`);
    if (rd.snapshot) parts.push(`snap=${rd.snapshot.meta.index}/${rd.snapshot.meta.term}`);
    if (rd.entries.length > 0) {
      parts.push(`ents=[${rd.entries[0].index}..${rd.entries[rd.entries.length - 1].index}]t${rd.entries[0].term}`);
    }
    if (rd.committed.length > 0) {
      parts.push(`apply=[${rd.committed[0].index}..${rd.committed[rd.committed.length - 1].index}]`);
    }
    if (rd.messages.length > 0) parts.push(`msgs=${rd.messages.length}`);
    parts.push(rd.mustSync ? 'sync' : 'nosync');
    this.trace(`${n.id} ready ${parts.join(' ')}`);
  }

  private finish(n: SimNode, rd: Ready, messages: Message[]): void {
    const r = n.raft!;
    for (const m of messages) {
      this.oracle.onSend(n, m);
      this.send(m);
    }
    if (rd.snapshot !== undefined) {
      n.smApplied = rd.snapshot.meta.index;
      n.smChain = decodeChain(rd.snapshot.data);
      n.smConf = rd.snapshot.meta.conf;
      this.oracle.onInstall(n, n.smApplied, n.smChain);
    }
    for (const e of rd.committed) {
      if (e.index !== n.smApplied + 1) {
        throw new Violation('apply order', `${n.id} applies ${e.index} after ${n.smApplied}`);
      }
      n.smChain = chainStep(n.smChain, e);
      n.smApplied = e.index;
      if (e.type === EntryType.Config) n.smConf = applyConfChange(n.smConf, decodeConfChange(e.data));
      this.oracle.onApply(n, e, n.smChain);
      const p = n.proposals.get(e.index);
      if (p !== undefined) {
        n.proposals.delete(e.index);
        const id = payloadId(e.data);
        if (p.term === e.term && e.type === EntryType.Normal && id === p.id) {
          this.oracle.onAck(n, e);
          this.stats.acks++;
          this.acked.set(id, { index: e.index, term: e.term });
        }
      }
    }
    r.advance(rd);
    this.oracle.onEvent(n);
    this.maybeCompact(n);
  }

  /** The driver's own snapshot + log compaction, now and then. */
  private maybeCompact(n: SimNode): void {
    const p = this.profile;
    const r = n.raft;
    if (p.compactEvery === 0 || r === null || r.applied !== n.smApplied) return;
    const live = n.disk.live;
    const snapIndex = live.snapshot()!.meta.index;
    if (n.smApplied - snapIndex < p.compactEvery) return;
    const compactTo = Math.max(live.firstIndex() - 1, n.smApplied - p.compactKeep);
    n.disk.write({
      entries: [],
      ownSnapshot: { index: n.smApplied, conf: n.smConf, data: encodeChain(n.smChain), compactTo },
    });
    n.compactChains(compactTo);
    r.compact(compactTo);
    this.trace(`${n.id} snapshot@${n.smApplied} compact≤${compactTo}`);
  }

  // ---- network ----

  private link(from: NodeId, to: NodeId): Link {
    let row = this.links.get(from);
    if (row === undefined) this.links.set(from, (row = new Map()));
    let l = row.get(to);
    if (l === undefined) {
      l = { cuts: 0, baseMs: this.rng.range(0.05, this.profile.delayMaxBaseMs), fifoAt: 0 };
      row.set(to, l);
    }
    return l;
  }

  cut(from: NodeId, to: NodeId): void {
    this.link(from, to).cuts++;
  }

  uncut(from: NodeId, to: NodeId): void {
    const l = this.link(from, to);
    if (l.cuts > 0) l.cuts--;
  }

  healAll(): void {
    for (const row of this.links.values()) for (const l of row.values()) l.cuts = 0;
  }

  private send(m: Message): void {
    const p = this.profile;
    if (p.codec) m = decodeMessage(encodeMessage(m));
    const link = this.link(m.from, m.to);
    if (link.cuts > 0 || (this.filter !== null && !this.filter(m))) {
      if (this.traceLines !== null) this.trace(`drop(cut) ${formatMessage(m)}`);
      if (link.cuts > 0) this.reportSendFailure(m);
      return;
    }
    if (this.rng.chance(p.dropRate)) {
      if (this.traceLines !== null) this.trace(`drop ${formatMessage(m)}`);
      return;
    }
    const copies = this.rng.chance(p.dupRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.now + link.baseMs + this.rng.next() * p.delayJitterMs;
      if (i === 0 && !this.rng.chance(p.reorderRate)) {
        // In order behind what this link already carries (a TCP connection).
        link.fifoAt = Math.max(at, link.fifoAt);
        this.schedule(link.fifoAt - this.now, () => this.deliver(m));
      } else {
        // Overtakes or falls behind the stream (a retry on a new connection, a duplicate), and
        // now and then much later than anything else.
        const late = this.rng.chance(p.slowMsgRate) ? this.rng.range(20, 200) : 0;
        this.schedule(at - this.now + late, () => this.deliver(m));
      }
    }
  }

  /** A cut link is a broken connection, which a transport notices (now and then, in time). */
  private reportSendFailure(m: Message): void {
    const from = this.byId.get(m.from);
    if (from?.raft?.role !== 'leader' || !this.rng.chance(0.5)) return;
    if (m.type === MessageType.Snap) from.raft.reportSnapshot(m.to, false);
    else from.raft.reportUnreachable(m.to);
    // The report changes state the oracle watches; the driver runs after the current Ready.
    this.oracle.onEvent(from);
    this.schedule(0, () => this.drive(from));
  }

  private deliver(m: Message): void {
    const n = this.byId.get(m.to);
    if (n === undefined || n.raft === null) return;
    // Frozen: the message waits in the socket buffer (in order: equal times keep their order).
    if (this.now < n.pausedUntil) return this.schedule(n.pausedUntil - this.now, () => this.deliver(m));
    if (this.traceLines !== null) this.trace(`recv ${formatMessage(m)}`);
    n.raft.step(m);
    this.after(n);
  }

  // ---- clients ----

  /** Propose `count` payloads at `n`. Returns the indexes, or null if refused. */
  propose(n: SimNode, count: number, fillerMax = 0, fillerMin = 0): number[] | null {
    const r = n.raft;
    if (r === null) return null;
    const payloads: Uint8Array[] = [];
    const ids: number[] = [];
    for (let i = 0; i < count; i++) {
      const id = this.nextPayloadId++;
      ids.push(id);
      payloads.push(makePayload(id, fillerMax > fillerMin ? this.rng.intIn(fillerMin, fillerMax) : fillerMin));
    }
    let indexes: number[];
    try {
      indexes = r.propose(payloads);
    } catch (err) {
      if (!(err instanceof RaftRefusal)) throw err;
      this.stats.refused++;
      return null;
    } finally {
      this.oracle.onEvent(n);
    }
    for (let i = 0; i < indexes.length; i++) n.proposals.set(indexes[i], { term: r.term, id: ids[i] });
    this.trace(`${n.id} propose [${indexes[0]}..${indexes[indexes.length - 1]}] t${r.term}`);
    this.drive(n);
    return indexes;
  }

  private clientLoop(): void {
    const p = this.profile;
    this.schedule(this.rng.exp(p.clientMeanMs), () => {
      if (this.phase !== 'chaos') return;
      const up = this.nodes.filter((x) => x.raft !== null);
      const target = this.rng.chance(p.clientMisrouteRate) || this.leader() === null ? null : this.leader();
      const n = target ?? (up.length > 0 ? this.rng.pick(up) : null);
      const r = n !== null && this.now >= n.pausedUntil ? n.raft : null;
      // Refusals are cheap to produce but not free (an Error each): try non-leaders now and then.
      const tryIt = r !== null && (r.role === 'leader' || this.rng.chance(0.05));
      if (n !== null && tryIt && r!.lastIndex - r!.commit <= p.clientMaxBacklog) {
        this.propose(n, this.rng.intIn(1, p.clientMaxBatch), p.payloadMaxBytes);
      }
      this.clientLoop();
    });
  }

  // ---- operator: membership changes and transfers ----

  /** Propose a membership change at leader `l`; returns whether it was accepted. */
  changeMembership(l: SimNode, type: 'addLearner' | 'promote' | 'remove', node: NodeId): boolean {
    const r = l.raft!;
    let index: number;
    try {
      index = r.changeMembership({ type, node });
    } catch (err) {
      if (!(err instanceof RaftRefusal)) throw err;
      this.trace(`${l.id} ${type} ${node} refused: ${(err as Error).message}`);
      this.oracle.onEvent(l);
      return false;
    }
    this.oracle.onConfProposal(l, index, l.inMemoryConfigs);
    l.inMemoryConfigs.push(index);
    this.stats.confChanges++;
    this.trace(`${l.id} propose ${type} ${node} @${index}`);
    this.after(l);
    return true;
  }

  /** Start a brand-new replica (empty disk, new id) that is not a member yet. */
  spawn(ordinal: number = this.nextOrdinal++): SimNode {
    const prev = this.nodes.filter((x) => x.ordinal === ordinal).reduce((a, x) => Math.max(a, x.incarnation), 0);
    const id = `n${ordinal}.${prev + 1}`;
    this.trace(`spawn ${id} (empty disk)`);
    return this.addNode(id, ordinal, prev + 1, new MemoryStorage(), 'joining');
  }

  decommission(n: SimNode): void {
    this.trace(`${n.id} decommissioned`);
    this.crash(n);
    n.lifecycle = 'decommissioned';
  }

  private operatorStep(): void {
    const l = this.leader();
    if (l === null) return;
    const conf = l.raft!.conf;
    const isMember = (n: SimNode) => conf.voters.includes(n.id) || conf.learners.includes(n.id);
    // Removed (the removal is applied, hence committed): stop the process, keep the disk image.
    for (const n of this.nodes) if (n.lifecycle === 'removing' && !isMember(n)) this.decommission(n);
    // Like the real operator: promote a learner only once it has caught up, and remove a voter
    // only while the voters that remain are caught up (else the group's progress would hang on
    // a laggard). Safety never depends on this; liveness after healing does.
    const progress = l.raft!.status().progress ?? {};
    const caughtUp = (id: NodeId) => id === l.id || (progress[id]?.match ?? 0) >= l.raft!.commit;
    const othersCaughtUp = (except: NodeId) => conf.voters.every((v) => v === except || caughtUp(v));
    const rep = this.replacement;
    if (rep === null) {
      const voters = this.nodes.filter((n) => n.lifecycle === 'member' && conf.voters.includes(n.id));
      if (voters.length === 0 || !this.rng.chance(0.5)) return;
      const old = this.rng.pick(voters);
      const order = voters.length <= 2 || this.rng.chance(0.5) ? 'addFirst' : 'removeFirst';
      this.replacement = { order, old, fresh: null };
      this.trace(`operator: replace ${old.id} (${order})`);
      if (order === 'removeFirst') old.lifecycle = 'removing';
      // The old replica still runs: the new one goes to a new ordinal (a move, not a rebuild).
      else this.replacement.fresh = this.spawn(this.nextOrdinal++);
      return;
    }
    if (rep.old.lifecycle === 'removing' && isMember(rep.old)) {
      if (othersCaughtUp(rep.old.id)) this.changeMembership(l, 'remove', rep.old.id);
      return;
    }
    if (rep.order === 'removeFirst' && rep.old.lifecycle === 'decommissioned' && rep.fresh === null) {
      rep.fresh = this.spawn(rep.old.ordinal);
      return;
    }
    const fresh = rep.fresh;
    if (fresh === null) return;
    if (!isMember(fresh)) {
      this.changeMembership(l, 'addLearner', fresh.id);
      return;
    }
    if (conf.learners.includes(fresh.id)) {
      if (caughtUp(fresh.id)) this.changeMembership(l, 'promote', fresh.id);
      return;
    }
    // fresh is a voter now.
    fresh.lifecycle = 'member';
    if (rep.order === 'addFirst' && rep.old.lifecycle === 'member') {
      rep.old.lifecycle = 'removing';
      if (othersCaughtUp(rep.old.id)) this.changeMembership(l, 'remove', rep.old.id);
      return;
    }
    if (rep.old.lifecycle === 'decommissioned') this.replacement = null;
  }

  private operatorLoop(): void {
    const p = this.profile;
    if (p.operatorMeanMs === 0) return;
    this.schedule(this.rng.exp(p.operatorMeanMs), () => {
      if (this.phase !== 'chaos') return;
      this.operatorStep();
      this.operatorLoop();
    });
  }

  transfer(l: SimNode, to: NodeId): boolean {
    try {
      l.raft!.transferLeadership(to);
    } catch (err) {
      if (!(err instanceof RaftRefusal)) throw err;
      return false;
    } finally {
      this.oracle.onEvent(l);
    }
    this.stats.transfers++;
    this.trace(`${l.id} transfer leadership → ${to}`);
    this.drive(l);
    return true;
  }

  private transferLoop(): void {
    const p = this.profile;
    if (p.transferMeanMs === 0) return;
    this.schedule(this.rng.exp(p.transferMeanMs), () => {
      if (this.phase !== 'chaos') return;
      const l = this.leader();
      if (l !== null) {
        const others = l.raft!.conf.voters.filter((v) => v !== l.id);
        if (others.length > 0) this.transfer(l, this.rng.pick(others));
      }
      this.transferLoop();
    });
  }

  // ---- faults ----

  private faultLoop(): void {
    const p = this.profile;
    if (p.faultMeanMs === 0) return;
    this.schedule(this.rng.exp(p.faultMeanMs), () => {
      if (this.phase !== 'chaos') return;
      this.injectFault();
      this.faultLoop();
    });
  }

  private pickFault(): FaultKind | null {
    const w = this.profile.faultWeights;
    const kinds = Object.keys(w) as FaultKind[];
    const total = kinds.reduce((a, k) => a + w[k], 0);
    if (total === 0) return null;
    let x = this.rng.next() * total;
    for (const k of kinds) {
      x -= w[k];
      if (x < 0) return k;
    }
    return kinds[kinds.length - 1];
  }

  private cutGroups(a: NodeId[], b: NodeId[], oneWay = false): [NodeId, NodeId][] {
    const links: [NodeId, NodeId][] = [];
    for (const x of a)
      for (const y of b) {
        links.push([x, y]);
        if (!oneWay) links.push([y, x]);
      }
    for (const [x, y] of links) this.cut(x, y);
    return links;
  }

  private injectFault(): void {
    const kind = this.pickFault();
    if (kind === null) return;
    const duration = this.rng.exp(this.profile.faultMeanDurationMs);
    const alive = this.liveMembers();
    const ids = alive.map((n) => n.id);
    if (alive.length === 0) return;
    const healLater = (links: [NodeId, NodeId][], what: string) => {
      this.trace(`fault ${what} for ${duration.toFixed(1)}ms`);
      this.schedule(duration, () => {
        for (const [x, y] of links) this.uncut(x, y);
        this.trace(`heal ${what}`);
      });
    };
    switch (kind) {
      case 'crash': {
        const up = alive.filter((n) => n.raft !== null);
        if (up.length === 0) return;
        const n = this.rng.pick(up);
        this.crash(n);
        this.schedule(duration, () => this.restart(n));
        return;
      }
      case 'partition': {
        if (ids.length < 2) return;
        const shuffled = [...ids].sort(() => this.rng.next() - 0.5);
        const k = this.rng.intIn(1, ids.length - 1);
        const a = shuffled.slice(0, k);
        const b = shuffled.slice(k);
        healLater(this.cutGroups(a, b), `partition {${a.join(',')}} | {${b.join(',')}}`);
        return;
      }
      case 'oneWay': {
        if (ids.length < 2) return;
        const links: [NodeId, NodeId][] = [];
        const count = this.rng.intIn(1, ids.length);
        for (let i = 0; i < count; i++) {
          const x = this.rng.pick(ids);
          const y = this.rng.pick(ids);
          if (x !== y) {
            this.cut(x, y);
            links.push([x, y]);
          }
        }
        healLater(links, `one-way cuts ${links.map(([x, y]) => `${x}↛${y}`).join(' ')}`);
        return;
      }
      case 'crashLeader': {
        const l = this.leader();
        if (l === null) return;
        this.crash(l);
        this.schedule(duration, () => this.restart(l));
        return;
      }
      case 'crashLeaderOnCommit': {
        const l = this.leader();
        if (l === null) return;
        this.crashOnCommit = { node: l, commit: l.raft!.commit };
        this.trace(`fault armed: crash ${l.id} when its commit passes ${l.raft!.commit}`);
        return;
      }
      case 'isolateLeader': {
        const l = this.leader();
        if (l === null) return;
        const rest = ids.filter((y) => y !== l.id);
        healLater(this.cutGroups([l.id], rest), `isolate leader ${l.id}`);
        return;
      }
      case 'isolate': {
        const x = this.rng.pick(ids);
        const rest = ids.filter((y) => y !== x);
        healLater(this.cutGroups([x], rest), `isolate ${x}`);
        return;
      }
      case 'bridge': {
        if (ids.length < 3) return;
        const shuffled = [...ids].sort(() => this.rng.next() - 0.5);
        const bridge = shuffled[0];
        const k = this.rng.intIn(1, shuffled.length - 2);
        const a = shuffled.slice(1, 1 + k);
        const b = shuffled.slice(1 + k);
        healLater(this.cutGroups(a, b), `bridge ${bridge} between {${a.join(',')}} | {${b.join(',')}}`);
        return;
      }
      case 'pause': {
        const up = alive.filter((n) => n.raft !== null);
        if (up.length === 0) return;
        // Often the leader: a leader that wakes up after a long pause still believes it leads.
        const l = this.leader();
        const n = l !== null && this.rng.chance(0.5) ? l : this.rng.pick(up);
        const ms = Math.min(duration, 3 * this.profile.electionTicks * this.profile.tickMs);
        n.pausedUntil = Math.max(n.pausedUntil, this.now + ms);
        this.trace(`fault pause ${n.id} for ${ms.toFixed(1)}ms`);
        return;
      }
      case 'diskStall': {
        const n = this.rng.pick(alive);
        n.stalledUntil = this.now + Math.min(duration * 2, this.profile.diskStallMs);
        this.trace(`fault disk stall ${n.id} until ${n.stalledUntil.toFixed(1)}`);
        return;
      }
    }
  }

  // ---- phases ----

  /** Swarm run: chaos, then heal and require progress. Throws Violation on failure. */
  run(): void {
    this.bootstrap();
    this.clientLoop();
    this.operatorLoop();
    this.transferLoop();
    this.faultLoop();
    this.runUntil(this.profile.chaosMs);
    this.liveness();
  }

  /** Heal everything, then require a leader and a committed, applied write within a bound. */
  liveness(): void {
    this.phase = 'liveness';
    const p = this.profile;
    this.crashOnCommit = null;
    this.healAll();
    this.filter = null;
    p.dropRate = 0;
    p.dupRate = 0;
    p.slowMsgRate = 0;
    p.reorderRate = 0;
    p.delayJitterMs = Math.min(p.delayJitterMs, 2);
    p.storageUnavailableRate = 0;
    for (const n of this.nodes) {
      n.stalledUntil = 0;
      n.pausedUntil = Math.min(n.pausedUntil, this.now);
    }
    for (const n of this.liveMembers()) this.restart(n);
    this.trace('--- liveness: healed');
    const tickMs = p.tickMs * (1 + p.clockDrift);
    const boundTicks = p.livenessElectionTimeouts * p.electionTicks;
    let marker: { node: SimNode; index: number; term: number; id: number } | null = null;
    let lastTry = -Infinity;
    const acked = (): boolean => {
      const l = this.leader();
      if (l === null || !l.raft!.conf.voters.includes(l.id)) return false;
      if (marker === null || marker.node !== l || marker.term !== l.raft!.term) {
        // (Re)propose the marker at most once per tick: a refusal (e.g. a transfer in
        // progress) is retried, not spun on.
        if (this.now - lastTry < p.tickMs) return false;
        lastTry = this.now;
        const id = this.nextPayloadId;
        const idx = this.propose(l, 1);
        marker = idx === null ? null : { node: l, index: idx[0], term: l.raft!.term, id };
        return false;
      }
      return this.acked.has(marker.id);
    };
    // 1. A leader, and a write proposed after healing committed and applied by it.
    if (!this.runUntil(this.now + boundTicks * tickMs, acked)) {
      throw new Violation(
        'liveness',
        `no leader with a committed, applied write within ${boundTicks} ticks after healing; ${this.describe()}`,
      );
    }
    // 2. Every member catches up, or at least keeps making progress (a follower far behind on
    //    a slow link need not finish, but must never be stuck).
    const m = marker!;
    const conf = m.node.raft!.conf;
    const members = [...conf.voters, ...conf.learners].map((id) => this.node(id));
    const before = members.map((n) => n.smApplied);
    const windowTicks = 10 * p.electionTicks;
    const caughtUp = () => members.every((n) => n.smApplied >= m.index);
    if (!this.runUntil(this.now + windowTicks * tickMs, caughtUp)) {
      const stuck = members.filter((n, i) => n.smApplied < m.index && n.smApplied <= before[i]);
      if (stuck.length > 0) {
        throw new Violation(
          'liveness',
          `${stuck.map((n) => n.id).join(',')} made no progress towards ${m.index} in ${windowTicks} ticks; ${this.describe()}`,
        );
      }
    }
    this.trace('--- liveness: ok');
    this.checkAckedDurable(m.node);
  }

  /**
   * End to end: every write a client was told succeeded is still on disk — at its index, with
   * its term — on a quorum of the final configuration's voters (or inside their snapshots).
   */
  checkAckedDurable(l: SimNode): void {
    const voters = l.raft!.conf.voters.map((id) => this.node(id));
    const quorum = Math.floor(voters.length / 2) + 1;
    for (const [id, a] of this.acked) {
      let copies = 0;
      for (const v of voters) {
        const d = v.disk.durable;
        if (a.index <= d.firstIndex() - 1 || d.term(a.index) === a.term) copies++;
      }
      if (copies < quorum) {
        throw new Violation(
          'acked write lost',
          `write ${id} acked at ${a.index} (term ${a.term}) is durable on ${copies} of ${voters.length} voters`,
        );
      }
    }
  }

  describe(): string {
    return this.nodes
      .map((n) => {
        if (n.raft === null) return `${n.id}(${n.lifecycle}, down)`;
        const r = n.raft;
        return `${n.id}(${n.lifecycle} ${r.role} t${r.term} lead=${r.leader} c${r.commit} a${r.applied} l${r.lastIndex} voters=${r.conf.voters.join('+')})`;
      })
      .join(' ');
  }
}

/** Run one seed end to end; never throws. */
export function runSeed(opts: RunOptions): RunResult {
  const sim = new Simulation(opts.seed, opts);
  let invariant: string | undefined;
  let error: string | undefined;
  try {
    sim.run();
  } catch (err) {
    if (err instanceof Violation) invariant = err.invariant;
    else invariant = (err as Error)?.name === 'InvariantViolation' ? 'core assertion' : 'exception';
    error = err instanceof Error ? `${err.message}\n${invariant === 'exception' ? err.stack : ''}` : String(err);
    sim.trace(`FAILED ${invariant}: ${error}`);
  }
  return {
    seed: opts.seed,
    ok: invariant === undefined,
    invariant,
    error,
    events: sim.events,
    simMs: sim.now,
    acks: sim.stats.acks,
    committed: sim.oracle.committedMax,
    terms: sim.nodes.reduce((a, n) => Math.max(a, n.raft?.term ?? 0), 0),
    crashes: sim.stats.crashes,
    confChanges: sim.stats.confChanges,
    profile: sim.profile,
    trace: sim.traceOutput,
  };
}

/** The command that replays `seed` exactly, printing its trace. */
export function replayCommand(opts: { seed: number; budget?: Budget; bugs?: RaftBugs }): string {
  let cmd = `npm run sim -- --seed ${opts.seed}`;
  if (opts.budget === 'quick') cmd += ' --quick';
  for (const [bug, on] of Object.entries(opts.bugs ?? {})) if (on) cmd += ` --bug ${bug}`;
  return `${cmd} --trace`;
}
