import { ClassifiedError } from '../../common/crash-policy';
import { DaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { promClient } from '../../common/metrics';
import { ordinalOf, type ResolvedReplicaConfig } from '../config';
import type { ReplicaMetrics } from '../metrics';
import {
  ConfChangeRefusedError,
  MessageType,
  NotLeaderError,
  ProposalsPausedError,
  RaftNode,
  TooManyUncommittedError,
  TransferRefusedError,
  bootstrapSnapshot,
  decodeMessage,
  encodeMessage,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Ready,
} from '../raft';
import type { ApplyResult, PartitionState } from '../state/partition-state';
import type { ReplicaStorage, StateOp } from '../storage/storage';
import type { PeerTransport } from '../transport/peer';
import { Applier } from './applier';
import { Proposals } from './proposals';
import { peerTransport } from './peers';
import { ReplicaLog } from './raft-log';
import { encodeSnapshotState, streamedSnapshotOf } from './snapshots';
import { isTransferFrame, SNAPSHOT_TRANSFER_DEFAULTS, SnapshotTransfer } from './snapshot-transfer';

/**
 * The Raft driver of one replica: the core (replica/raft) fed by real storage (the RocksDB
 * worker), the peer transport and timers, applying committed entries to the partition state.
 * The loop is the one of STYLE.md — ready → persist → send → apply → advance — with two
 * refinements:
 *  - a leader's App/Heartbeat messages go out before its own fsync (etcd does the same): they
 *    promise nothing; the leader counts its own copy only at advance(), after the fsync;
 *  - responses (votes, append acks) go out only after the persist they promise.
 *
 * Proposals wait for their commit in proposals.ts; applying committed entries, snapshots and
 * compaction are applier.ts. What the partition does with its state (produce, fetch, groups) lives in
 * replica/partition/, membership decisions in replica/membership/.
 */

export type MembershipChange = 'addLearner' | 'promote' | 'remove';

export interface RaftDriverHooks {
  /** After each applied batch or installed snapshot; `hwMoved`: the high watermark changed. */
  applied(hwMoved: boolean): void;
  /** The known leader or this replica's role changed (after a soft-state change). */
  leadershipChanged(leader: string | null, term: number): void;
  /** A fatal fault (crash-only): the process exits. */
  fatal(err: unknown): void;
}

export interface RaftDriverOptions {
  rc: ResolvedReplicaConfig;
  id: string;
  storage: ReplicaStorage;
  state: PartitionState;
  logger: Logger;
  registry: promClient.Registry;
  metrics: ReplicaMetrics;
  hooks: RaftDriverHooks;
}

export class RaftDriver {
  readonly id: string;
  private node: RaftNode | null = null;
  private log!: ReplicaLog;
  private transport!: PeerTransport;
  private processing = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private readonly proposals = new Proposals();
  private readonly applier: Applier;
  private readonly transfer: SnapshotTransfer;
  /** A commit-only hard state not written yet: it rides on the next durable write (see handleReady). */
  private deferredHardState: HardState | undefined;
  /**
   * The highest commit index a leader has told us (its appends, its status): what "caught up" is
   * measured against. Our own commit cannot tell: a follower knows only as much commit as it
   * holds log, and a leader's heartbeat never tells it more than that.
   */
  private leaderCommit = 0;
  private stopping = false;
  /** A leader held by a full disk went quiet so that a voter with room is elected (see goQuietForHandoff). */
  private quietForHandoff = false;
  private fatalError: unknown = null;
  private lastLeader: string | null = null;
  /** Last time a leader spoke to this replica (0: none yet, or this replica leads). */
  private leaderContactMs = 0;
  private readonly rc: ResolvedReplicaConfig;
  private readonly storage: ReplicaStorage;
  private readonly state: PartitionState;
  private readonly logger: Logger;
  private readonly metrics: ReplicaMetrics;
  private readonly hooks: RaftDriverHooks;
  private readonly lbl: { topic: string; partition: string };

  constructor(private readonly o: RaftDriverOptions) {
    this.id = o.id;
    this.rc = o.rc;
    this.storage = o.storage;
    this.state = o.state;
    this.logger = o.logger;
    this.metrics = o.metrics;
    this.hooks = o.hooks;
    this.lbl = { topic: o.rc.cfg.topic, partition: String(o.rc.cfg.partition) };
    this.transfer = new SnapshotTransfer({
      id: o.id,
      storage: o.storage,
      metrics: o.metrics,
      lbl: this.lbl,
      logger: o.logger,
      settings: { ...SNAPSHOT_TRANSFER_DEFAULTS, chunkBytes: o.rc.cfg.snapshotChunkBytes },
      send: (to, payload) => this.transport.send(to, payload),
      deliver: (msg) => this.stepMessage(msg),
      exportClosed: () => this.log.forgetSnapshot(),
    });
    this.applier = new Applier({
      id: o.id,
      storage: o.storage,
      state: o.state,
      proposals: this.proposals,
      metrics: o.metrics,
      lbl: this.lbl,
      logger: o.logger,
      transfer: this.transfer,
      leaderHint: () => this.leaderEndpoint(),
      membershipChanged: () => {
        this.transport.setPeers(this.peerIds());
        this.metrics.voters.set(this.lbl, this.conf.voters.length);
      },
      applied: (hwMoved) => o.hooks.applied(hwMoved),
      fatal: (err) => this.fatal(err),
    });
  }

  private get conf(): ConfState {
    return this.applier.conf;
  }

  // ---- what the rest of the replica reads ----

  /** The core, once started (null before: the group has not formed here yet). */
  get raft(): RaftNode | null {
    return this.node;
  }
  get membership(): ConfState {
    return this.conf;
  }
  get lastIndex(): number {
    return this.log.lastIndex();
  }
  get logBytes(): number {
    return this.storage.stats().logBytes;
  }
  get leaderCommitSeen(): number {
    return this.leaderCommit;
  }
  get busy(): boolean {
    return this.processing;
  }
  get failed(): boolean {
    return this.fatalError !== null;
  }
  get isStopping(): boolean {
    return this.stopping;
  }

  /** A leader's commit index learned out of band (its status answer). */
  noteLeaderCommit(commit: number): void {
    if (commit > this.leaderCommit) this.leaderCommit = commit;
  }

  /** One log entry, if this replica has it. */
  async readEntry(index: number): Promise<Entry | undefined> {
    return (await this.log.read(index, index + 1, Number.MAX_SAFE_INTEGER))[0];
  }

  /** Entries [lo, hi) in as few storage reads as the log allows (a prefix when some are missing). */
  readEntries(lo: number, hi: number): Promise<Entry[]> {
    return this.log.read(lo, hi, Number.MAX_SAFE_INTEGER);
  }

  /**
   * Key compaction rewrote these applied entries: into storage (with `ops`, one batch), then the
   * entry cache, so appends to followers and fetches serve the rewritten data.
   */
  async rewriteEntries(entries: Entry[], ops: StateOp[]): Promise<void> {
    await this.storage.rewriteEntries(entries, ops);
    this.log.rewritten(entries);
  }

  /** Every applied batch so far is on its way to storage (in order before any later write). */
  appliedWritten(): Promise<void> {
    return this.applier.settled();
  }

  /** Leader: the highest log index each other member is known to hold (matching ours); else undefined. */
  peerMatches(): number[] | undefined {
    const n = this.node;
    if (n === null || n.role !== 'leader') return undefined;
    const progress = n.status().progress ?? {};
    return Object.entries(progress)
      .filter(([id]) => id !== this.id)
      .map(([, p]) => p.match);
  }

  // ---- start-up ----

  /** Recover the state machine and the log view from storage: nothing is replayed. */
  async recover(): Promise<void> {
    const rec = this.storage.recovered;
    await this.applier.recover();
    this.log = new ReplicaLog(this.storage, rec, {
      cacheBytes: this.rc.cfg.entryCacheBytes,
      onAvailable: () => {
        this.node?.logAvailable();
        this.kick();
      },
      makeSnapshot: () => this.applier.makeSnapshot(),
      onError: (err) => this.fatal(err),
    });
    this.applier.attach(this.log);
    this.logger.info('replica_recovered', {
      replica: this.id,
      fresh: rec.freshlyInitialised,
      first_index: rec.firstIndex,
      last_index: rec.lastIndex,
      applied_index: rec.appliedIndex,
      tail_repaired: rec.tailRepaired,
      high_watermark: this.state.nextOffset,
      log_start_offset: this.state.logStartOffset,
      voters: this.conf.voters,
      learners: this.conf.learners,
    });
  }

  /** Start the peer transport: peers are heard (and answered) only once the node starts. */
  async startTransport(): Promise<void> {
    this.transport = peerTransport(this.rc, this.id, this.peerIds(), this.logger, this.o.registry);
    this.transport.onMessage((from, payload) => this.onPeerMessage(from, payload));
    await this.transport.start();
  }

  /** No membership and no log: this data directory was never part of a group. */
  get fresh(): boolean {
    return this.conf.voters.length === 0 && this.conf.learners.length === 0 && this.storage.recovered.lastIndex === 0;
  }

  /** Found a new group whose only voter is this replica (the caller checked that nobody else has one). */
  async found(): Promise<void> {
    const snap = bootstrapSnapshot([this.id], encodeSnapshotState([], 0));
    await this.storage.installSnapshot(snap.meta, []);
    await this.storage.append([], { term: snap.meta.term, vote: null, commit: snap.meta.index }, snap.meta.conf);
    this.log.installed(snap.meta);
    this.log.appended([], { term: snap.meta.term, vote: null, commit: snap.meta.index });
    this.applier.conf = snap.meta.conf;
    this.logger.info('group_bootstrapped', { replica: this.id, voters: this.conf.voters });
  }

  /** Create the core and start ticking. */
  start(): void {
    const { cfg } = this.rc;
    this.node = new RaftNode({
      id: this.id,
      storage: this.log,
      electionTicks: Math.max(2, Math.round(cfg.electionTimeoutMs / cfg.tickMs)),
      heartbeatTicks: Math.max(1, Math.round(cfg.heartbeatMs / cfg.tickMs)),
      random: Math.random,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsgBytes: cfg.maxSizePerMsgBytes,
      maxInflightMsgs: cfg.maxInflightMsgs,
      maxInflightBytes: cfg.maxInflightBytes,
      maxUncommittedBytes: cfg.maxUncommittedBytes,
      maxCommittedBytesPerReady: cfg.maxCommittedBytesPerReady,
      applied: Math.max(this.storage.recovered.appliedIndex, this.log.firstIndex() - 1),
    });
    this.tickTimer = setInterval(() => {
      this.node!.tick();
      this.transfer.tick(Date.now());
      this.sendUrgent();
      this.kick();
    }, cfg.tickMs);
    // The recovered (or just founded) configuration: set here, not only when a change is applied.
    this.metrics.voters.set(this.lbl, this.conf.voters.length);
    this.kick();
  }

  // ---- the loop ----

  /**
   * While the loop waits for a write (or applies a large batch), heartbeats, their answers and
   * appends leave now rather than after it (RaftNode.takeUrgentMessages says which may): a slow
   * fsync or a big batch then never starves a heartbeat into an election.
   */
  private sendUrgent(): void {
    if (this.quietForHandoff) {
      if (this.storage.diskFull !== null) return;
      this.quietForHandoff = false;
    }
    if (this.processing && this.node !== null && this.fatalError === null) this.send(this.node.takeUrgentMessages());
  }

  /**
   * A leader whose loop is held at a write that met ENOSPC cannot hand leadership on (TimeoutNow
   * waits for the next Ready), but its heartbeats still leave as urgent messages and keep its
   * followers. When a voter with room exists (membership/ asks), it stops sending them until the
   * write goes through: its followers time out and elect one of themselves. Sending nothing is
   * always safe in Raft (it is message loss); with no voter with room it keeps leading and
   * refusing (STORAGE_FULL), which beats a partition with no leader at all.
   */
  goQuietForHandoff(): void {
    if (this.quietForHandoff || this.storage.diskFull === null) return;
    this.quietForHandoff = true;
    this.logger.warn('disk_full_leader_quiet', { replica: this.id });
  }

  kick(): void {
    if (this.processing || this.node === null || this.fatalError !== null) return;
    this.processing = true;
    setImmediate(() => void this.process());
  }

  private async process(): Promise<void> {
    const node = this.node!;
    try {
      while (node.hasReady() && this.fatalError === null) {
        const rd = node.ready();
        await this.handleReady(rd);
        node.advance(rd);
        this.afterAdvance();
      }
    } catch (err) {
      this.fatal(err);
    } finally {
      this.processing = false;
    }
  }

  private async handleReady(rd: Ready): Promise<void> {
    const early: Message[] = [];
    const late: Message[] = [];
    const before = this.log.initialState().hardState;
    const termOrVote =
      rd.hardState !== undefined && (rd.hardState.term !== before.term || rd.hardState.vote !== before.vote);
    // A vote is an event worth a line: with the incarnation it lets a reader (and the e2e tier)
    // check that no replica ever voted for two candidates in one term, across restarts and wipes.
    const vote =
      rd.hardState !== undefined &&
      rd.hardState.vote !== null &&
      (rd.hardState.vote !== before.vote || rd.hardState.term !== before.term)
        ? { term: rd.hardState.term, vote: rd.hardState.vote }
        : null;
    for (const m of rd.messages) {
      // Requests from a leader promise nothing about our disk; responses and votes do.
      if (!termOrVote && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) early.push(m);
      else late.push(m);
    }
    this.send(early);
    if (rd.snapshot) {
      // The install raises the stored commit to the snapshot: an older deferred one must not follow it.
      this.deferredHardState = undefined;
      await this.applier.install(rd.snapshot);
    }
    // A hard state whose only change is the commit index promises nothing (Raft needs term and
    // vote durable, never commit: a restarted node takes commit = max(persisted, applied) and
    // learns the rest from the leader). Writing it would cost a synced write per commit on
    // every replica — half the fsyncs at one produce in flight, and one on the ack path. So it
    // is kept and written with the next entries or term/vote change (etcd's MustSync rule).
    if (rd.hardState !== undefined && rd.entries.length === 0 && !termOrVote && !rd.snapshot) {
      this.deferredHardState = rd.hardState;
      this.log.appended([], rd.hardState);
    } else if (rd.entries.length > 0 || rd.hardState) {
      const hardState = rd.hardState ?? this.deferredHardState;
      this.deferredHardState = undefined;
      // A full storage queue is backpressure, not a fault: the loop waits (and takes no new Ready,
      // so producers meet the uncommitted-bytes bound at the edge).
      await this.storage.appendWaiting(rd.entries, hardState, () => this.metrics.storageWaits.inc(this.lbl));
      this.log.appended(rd.entries, hardState);
      if (rd.entries.length > 0) this.metrics.appendBatch.observe(this.lbl, rd.entries.length);
    }
    if (vote !== null)
      this.logger.info('vote_cast', {
        replica: this.id,
        incarnation: this.storage.recovered.incarnation,
        term: vote.term,
        vote: vote.vote,
      });
    this.send(late);
    if (rd.softState) this.onSoftState(rd.softState.leader, rd.softState.role);
    if (rd.committed.length > 0) await this.applier.apply(rd.committed);
  }

  private send(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type === MessageType.Snap) this.metrics.snapshotsSent.inc({ ...this.lbl, action: 'sent' });
      this.transport.send(m.to, encodeMessage(m));
    }
  }

  private onPeerMessage(from: string, payload: Buffer): void {
    if (this.node === null) return; // not started yet: the sender retries
    if (isTransferFrame(payload)) {
      this.transfer.onFrame(from, payload);
      return;
    }
    let msg: Message;
    try {
      msg = decodeMessage(payload);
    } catch (err) {
      this.logger.warn('peer_message_malformed', { from, error: (err as Error).message });
      return;
    }
    if (msg.from !== from) {
      this.logger.warn('peer_message_sender_mismatch', { from, claimed: msg.from });
      return;
    }
    if (msg.type === MessageType.App) this.noteLeaderCommit(msg.commit);
    if (
      from === this.lastLeader &&
      (msg.type === MessageType.App || msg.type === MessageType.Heartbeat || msg.type === MessageType.Snap)
    )
      this.leaderContactMs = Date.now();
    // A fresh learner must answer a leader it has no configuration for yet.
    if (!this.transport.peers().includes(from)) this.transport.setPeers([...this.peerIds(), from]);
    if (msg.type === MessageType.Snap) {
      let streamed: ReturnType<typeof streamedSnapshotOf>;
      try {
        streamed = streamedSnapshotOf(msg.snapshot.data);
      } catch (err) {
        this.logger.warn('peer_message_malformed', { from, error: (err as Error).message });
        return;
      }
      // Its state is pulled first; the message reaches the core once the state is staged.
      if (streamed !== null && !this.transfer.offer(msg, streamed.exportKey, streamed.stateIndex)) return;
    }
    this.stepMessage(msg);
  }

  /** Into the core, then send what must go now and run the loop. */
  private stepMessage(msg: Message): void {
    if (this.node === null || this.fatalError !== null) return;
    try {
      this.node.step(msg);
    } catch (err) {
      this.fatal(err);
      return;
    }
    this.sendUrgent();
    this.kick();
  }

  private peerIds(): string[] {
    return [...this.conf.voters, ...this.conf.learners].filter((id) => id !== this.id);
  }

  private onSoftState(leader: string | null, role: string): void {
    if (leader !== this.lastLeader) {
      const now = Date.now();
      // Recovery after leader loss, measured once per election, by the winner: from the last
      // word of a leader (or this replica's own step-down) to leading. The first election of a
      // group has no predecessor and is not counted.
      if (leader === this.id && role === 'leader' && this.leaderContactMs > 0)
        this.metrics.leaderRecovery.observe(this.lbl, (now - this.leaderContactMs) / 1000);
      if (this.lastLeader === this.id || leader === this.id) this.leaderContactMs = leader === this.id ? 0 : now;
      this.lastLeader = leader;
      this.metrics.leaderChanges.inc(this.lbl);
      this.logger.info('leader_changed', { replica: this.id, leader, role, term: this.node!.term });
    }
    this.metrics.leader.set(this.lbl, role === 'leader' ? 1 : 0);
    if (role !== 'leader') {
      // Proposals in flight may still commit under the next leader: the outcome is unknown.
      const hint = this.leaderEndpoint() ?? undefined;
      this.proposals.rejectAll(
        (index) =>
          new DaftkaError(
            'COMMIT_UNKNOWN',
            `leadership lost while the write at log index ${index} was in flight; retry with the same idempotency key`,
            { leaderHint: hint },
          ),
      );
    }
    this.hooks.leadershipChanged(leader, this.node!.term);
  }

  private afterAdvance(): void {
    const n = this.node!;
    this.metrics.term.set(this.lbl, n.term);
    this.metrics.commitIndex.set(this.lbl, n.commit);
    this.metrics.appliedIndex.set(this.lbl, n.applied);
  }

  // ---- proposals ----

  /** host:port of the leader's client port, when known. */
  leaderEndpoint(): string | null {
    const leader = this.node?.leader ?? null;
    const o = leader === null ? undefined : ordinalOf(leader);
    const ep = o === undefined ? undefined : this.rc.endpoints[o];
    return ep ? `${ep.host}:${ep.clientPort}` : null;
  }

  /** The core, if this replica leads and is not stopping; NOT_LEADER (with a hint) otherwise. */
  requireLeader(): RaftNode {
    const node = this.node;
    if (this.stopping)
      throw new DaftkaError('NOT_LEADER', 'replica is shutting down', {
        retryAfterMs: 100,
        leaderHint: this.leaderEndpoint() ?? undefined,
      });
    if (node === null || node.role !== 'leader') {
      const hint = this.leaderEndpoint();
      throw new DaftkaError('NOT_LEADER', `replica ${this.id} is not the leader of ${this.rc.clusterId}`, {
        leaderHint: hint ?? undefined,
        retryAfterMs: hint ? undefined : 100,
      });
    }
    return node;
  }

  get isLeader(): boolean {
    return this.node?.role === 'leader' && !this.stopping;
  }

  /** The entry cache's accounted bytes (bound entryCacheBytes); 0 before recovery. */
  get entryCacheBytes(): number {
    return this.log?.cachedBytes ?? 0;
  }

  /**
   * Propose a state-machine command; resolves with what applying it returned once it committed
   * in this leader's term. `records`/`bytes` (produces) feed the produce metrics at commit.
   */
  propose(data: Uint8Array, timeoutMs: number, records = 0, bytes = 0): Promise<ApplyResult> {
    const node = this.requireLeader();
    // A write held for lack of space (ENOSPC) blocks every later persist: a proposal now would
    // only wait in memory for its timeout. Refused at once; nothing was written.
    const held = this.storage.diskFull;
    if (held !== null)
      throw new DaftkaError(
        'STORAGE_FULL',
        `replica storage is full, writes are held until space returns: ${held.error}`,
        {
          retryAfterMs: 5000,
          extra: { reason: 'enospc' },
        },
      );
    const majority = Math.floor(this.rc.cfg.replicationFactor / 2) + 1;
    if (this.conf.voters.length < majority)
      throw new DaftkaError(
        'NO_QUORUM',
        `${this.rc.clusterId} has ${this.conf.voters.length} voters; writes need at least ${majority} (a majority of replication factor ${this.rc.cfg.replicationFactor})`,
        { retryAfterMs: 500 },
      );
    let index: number;
    try {
      [index] = node.propose(data);
    } catch (err) {
      if (err instanceof NotLeaderError)
        throw new DaftkaError('NOT_LEADER', err.message, {
          leaderHint: this.leaderEndpoint() ?? undefined,
          retryAfterMs: 100,
        });
      if (err instanceof ProposalsPausedError) throw new DaftkaError('NOT_LEADER', err.message, { retryAfterMs: 100 });
      if (err instanceof TooManyUncommittedError) {
        this.metrics.shed.inc({ ...this.lbl, reason: 'uncommitted_bytes' });
        throw new DaftkaError('OVERLOADED', err.message, { retryAfterMs: 50 });
      }
      throw err;
    }
    const term = node.term;
    this.kick();
    return this.proposals.wait(index, term, timeoutMs, records, bytes);
  }

  /** Hand leadership to `to` (a voter); CONFLICT when the core refuses. */
  transferLeadership(to: string): void {
    const node = this.requireLeader();
    try {
      node.transferLeadership(to);
    } catch (err) {
      if (err instanceof TransferRefusedError) throw new DaftkaError('CONFLICT', err.message);
      throw err;
    }
    this.kick();
  }

  /** Propose one single-server membership change; CONFLICT when the core refuses it now. */
  changeMembership(type: MembershipChange, id: string): void {
    const node = this.requireLeader();
    try {
      node.changeMembership({ type, node: id });
    } catch (err) {
      if (err instanceof ConfChangeRefusedError) throw new DaftkaError('CONFLICT', err.message);
      throw err;
    }
    this.metrics.membershipChanges.inc({ ...this.lbl, action: type });
    this.logger.info('membership_change_proposed', { replica: this.id, action: type, member: id });
    if (type === 'addLearner') this.transport.setPeers([...this.peerIds(), id]);
    this.kick();
  }

  // ---- stopping ----

  /** Stop taking proposals (shutdown: leadership has been handed on, or could not be). */
  stop(): void {
    this.stopping = true;
  }

  async close(): Promise<void> {
    this.stopping = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.transfer.close();
    this.proposals.rejectAll(() => new DaftkaError('COMMIT_UNKNOWN', 'replica stopped with the write in flight'));
    await this.transport?.close();
    // A write held for disk space would keep the loop and the apply chain waiting for ever:
    // close storage first, which fails the held write (it was never acknowledged) and the
    // waits on it; what is durable stays, and a restart recovers from it.
    if (this.storage.diskFull !== null) await this.storage.close();
    await this.applier.settled();
    // Not needed for safety (see handleReady), but a clean stop leaves the latest commit on disk.
    const hs = this.deferredHardState;
    this.deferredHardState = undefined;
    if (hs !== undefined && this.fatalError === null)
      await this.storage
        .append([], hs)
        .catch((err) => this.logger.warn('hard_state_flush_failed', { error: (err as Error).message }));
    await this.storage.close();
  }

  private fatal(err: unknown): void {
    if (this.fatalError !== null) return;
    this.fatalError = err;
    if (this.stopping && err instanceof ClassifiedError && err.kind === 'disk_full') {
      // close() failed a write held for disk space: expected at shutdown, not a fault.
      this.logger.warn('held_write_abandoned', { replica: this.id, error: err.message });
      return;
    }
    this.logger.error('replica_fatal', {
      replica: this.id,
      error: (err as Error)?.message ?? String(err),
      name: (err as Error)?.name,
    });
    this.hooks.fatal(err);
  }
}
