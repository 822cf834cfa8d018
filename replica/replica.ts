import type { LeasedPartitionClient, PartitionAdmin, PartitionClient } from '../protocol/methods';
import { DaftkaError } from '../common/errors';
import type {
  DeadLetterAdminRequest,
  DeadLetterPage,
  DeadLetterQuery,
  GroupLeaseInfo,
  GroupPolicyRequest,
  GroupTarget,
  LeaseAckRequest,
  LeaseAckResult,
  LeaseFetchRequest,
  LeaseFetchResult,
  ReplayJobQuery,
  ReplayJobRequest,
  ReplayJobStatus,
} from '../common/leased-api';
import type { Logger } from '../common/log';
import type { promClient } from '../common/metrics';
import type {
  AddLearnerRequest,
  FetchRequest,
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  GroupOffsetQuery,
  MemberRequest,
  PartitionStatus,
  ProduceRequest,
  ProduceResult,
  RecordOut,
  StatusRequest,
  TransferLeadershipRequest,
} from '../common/partition-api';
import { RemotePartitionClient } from '../protocol/partition-client';
import { RpcClient } from '../protocol/rpc-client';
import { CommandKind, decodeCommand, encodeCommand, payloadHash, recordBytes, type Command } from './state/commands';
import { ordinalOf, replicaId, type ResolvedReplicaConfig } from './config';
import { replicaMetrics, type ReplicaMetrics } from './metrics';
import {
  ConfChangeRefusedError,
  EntryType,
  MessageType,
  NotLeaderError,
  ProposalsPausedError,
  RaftNode,
  TooManyUncommittedError,
  TransferRefusedError,
  applyConfChange,
  bootstrapSnapshot,
  decodeConfChange,
  decodeMessage,
  encodeMessage,
  MESSAGE_CODEC_VERSION,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type Snapshot,
} from './raft';
import { ReplicaLog } from './driver/raft-log';
import { LeasedService } from './leased/service';
import type { TopicWriter } from './control/topic-writer';
import { PartitionState, type ApplyResult } from './state/partition-state';
import { ReplicaStorage, type StateOp } from './storage/storage';
import { PeerTransport } from './transport/peer';
import { BufReader, BufWriter } from '../protocol/bytes';

/**
 * One partition replica: the Raft core driven by real storage (RocksDB worker), the peer
 * transport and the state machine, serving the partition API. The driver loop is the one of
 * STYLE.md: ready → persist → send → apply → advance, with two refinements:
 *  - a leader's App/Heartbeat messages go out before its own fsync (etcd does the same): they
 *    promise nothing; the leader counts its own copy only at advance(), after the fsync;
 *  - responses (votes, append acks) go out only after the persist they promise.
 */

interface Pending {
  term: number;
  startedAt: bigint;
  bytes: number;
  records: number;
  resolve: (r: ApplyResult) => void;
  reject: (e: DaftkaError) => void;
  timer: NodeJS.Timeout;
}

interface Waiter {
  offset: number;
  wake: () => void;
}

const K_STATE_INDEX = new TextEncoder().encode('m/stateIndex');

export class PartitionReplica implements PartitionClient, PartitionAdmin, LeasedPartitionClient {
  readonly id: string;
  readonly metrics: ReplicaMetrics;
  private node: RaftNode | null = null;
  private readonly state: PartitionState;
  private log!: ReplicaLog;
  private transport!: PeerTransport;
  private processing = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private memberTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Map<number, Pending>();
  private waiters: Waiter[] = [];
  private conf: ConfState = { voters: [], learners: [] };
  private stateIndex = 0;
  private applyChain: Promise<void> = Promise.resolve();
  /** A commit-only hard state not written yet: it rides on the next durable write (see handleReady). */
  private deferredHardState: HardState | undefined;
  /**
   * The highest commit index a leader has told us (its appends, its status): what "caught up" is
   * measured against. Our own commit cannot tell: a follower knows only as much commit as it
   * holds log, and a leader's heartbeat never tells it more than that.
   */
  private leaderCommitSeen = 0;
  /** The leader (and term) whose commit index we last asked for: readiness needs a fresh answer. */
  private leaderPolled: { leader: string; term: number } | null = null;
  private polling = false;
  private stopping = false;
  private fatalError: unknown = null;
  private lastLeader: string | null = null;
  /** Last time a leader spoke to this replica (0: none yet, or this replica leads). */
  private leaderContactMs = 0;
  private readonly peerClients = new Map<number, { client: RemotePartitionClient; rpc: RpcClient }>();
  private readonly lbl: { topic: string; partition: string };
  /** Leased groups, dead letters and replay jobs (replica/leased-service.ts). */
  readonly leased: LeasedService;
  /** Writes to other topics (dead-letter replay to a target topic); set by main when NATS is configured. */
  topicWriter: TopicWriter | null = null;
  /** Called on leadership and status changes (the NATS announcer listens). */
  onLeaderChange: (leader: string | null, term: number) => void = () => {};

  private constructor(
    private readonly rc: ResolvedReplicaConfig,
    private readonly storage: ReplicaStorage,
    private readonly logger: Logger,
    private readonly registry: promClient.Registry,
    private readonly onFatal: (err: unknown) => void,
  ) {
    this.id = replicaId(rc.self.ordinal, storage.recovered.incarnation);
    this.state = new PartitionState({ dedupWindowMs: rc.cfg.dedupWindowMs });
    this.lbl = { topic: rc.cfg.topic, partition: String(rc.cfg.partition) };
    this.metrics = replicaMetrics(registry);
    this.metrics.restarts.set(this.lbl, Date.now() / 1000);
    const c = rc.cfg;
    this.leased = new LeasedService({
      topic: c.topic,
      partition: c.partition,
      state: this.state,
      checkTarget: (topic, partition) => this.checkTarget(topic, partition),
      requireLeader: () => void this.requireLeader(),
      isLeader: () => this.node?.role === 'leader' && !this.stopping,
      propose: (data, timeoutMs) => this.propose(data, timeoutMs),
      readEntry: async (i) => (await this.log.read(i, i + 1, Number.MAX_SAFE_INTEGER))[0],
      topicWriter: () => this.topicWriter,
      logger,
      registry,
      settings: {
        defaults: {
          maxAttempts: c.leaseMaxAttempts,
          leaseMs: c.leaseMs,
          backoffInitialMs: c.leaseBackoffInitialMs,
          backoffMaxMs: Math.max(c.leaseBackoffMaxMs, c.leaseBackoffInitialMs),
          backoffMultiplier: c.leaseBackoffMultiplier,
          deadLetter: c.deadLetter,
          ordered: false,
        },
        deadLetterRetentionMs: c.deadLetterRetentionMs,
        sweepIntervalMs: c.leaseSweepMs,
        maxWaiters: c.maxFetchWaiters,
      },
    });
  }

  /** Open storage, recover the state machine, start the peer transport; the Raft node starts in `run`. */
  static async open(
    rc: ResolvedReplicaConfig,
    logger: Logger,
    registry: promClient.Registry,
    onFatal: (err: unknown) => void,
  ): Promise<PartitionReplica> {
    const holder: { replica?: PartitionReplica } = {};
    const storage = await ReplicaStorage.open({
      dir: rc.cfg.dataDir,
      fsync: rc.cfg.fsync,
      fsyncIntervalMs: rc.cfg.fsyncIntervalMs,
      maxPendingBytes: rc.cfg.storageMaxPendingBytes,
      logger,
      onFlush: (s) => {
        if (s.synced && holder.replica) holder.replica.metrics.fsync.observe(holder.replica.lbl, s.fsyncSeconds);
      },
    });
    const replica = new PartitionReplica(rc, storage, logger, registry, onFatal);
    holder.replica = replica;
    await replica.recover();
    return replica;
  }

  private async recover(): Promise<void> {
    const rec = this.storage.recovered;
    const pairs = await this.storage.scan({ gte: new Uint8Array(0), lt: new Uint8Array([0xff]) });
    this.state.load(pairs);
    const si = pairs.find(([k]) => Buffer.compare(Buffer.from(k), Buffer.from(K_STATE_INDEX)) === 0);
    this.stateIndex = si ? new BufReader(Buffer.from(si[1])).i53('stateIndex') : 0;
    this.conf = rec.conf ?? rec.snapshot?.conf ?? { voters: [], learners: [] };
    this.log = new ReplicaLog(this.storage, rec, {
      cacheBytes: this.rc.cfg.entryCacheBytes,
      onAvailable: () => {
        this.node?.logAvailable();
        this.kick();
      },
      makeSnapshot: () => this.makeSnapshot(),
      onError: (err) => this.fatal(err),
    });
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

  /** Start the peer transport and, once membership is known (or founded), the Raft node. */
  async run(): Promise<void> {
    const { cfg, self, endpoints } = this.rc;
    this.transport = new PeerTransport({
      selfId: this.id,
      clusterId: this.rc.clusterId,
      listenHost: cfg.listenHost,
      listenPort: self.peerPort,
      resolve: (id) => {
        const o = ordinalOf(id);
        const ep = o === undefined ? undefined : endpoints[o];
        return ep ? { host: ep.host, port: ep.peerPort } : undefined;
      },
      peers: this.peerIds(),
      // Any configured ordinal may connect: a fresh learner must hear the leader that added it.
      acceptPeer: (id) => {
        const o = ordinalOf(id);
        return o !== undefined && o < endpoints.length && o !== self.ordinal;
      },
      logger: this.logger,
      registry: this.registry,
      maxFrameBytes: Math.max(16 * 1024 * 1024, cfg.maxSizePerMsgBytes * 2),
      // One Raft message codec today; a second one would widen this range and encode per
      // connection with transport.versionFor(peer) (docs/wire-protocol.md, Versions).
      versions: { min: MESSAGE_CODEC_VERSION, max: MESSAGE_CODEC_VERSION },
      ...(cfg.peerSecret !== '' ? { secret: cfg.peerSecret } : {}),
    });
    this.transport.onMessage((from, payload) => this.onPeerMessage(from, payload));
    await this.transport.start();

    const fresh =
      this.conf.voters.length === 0 && this.conf.learners.length === 0 && this.storage.recovered.lastIndex === 0;
    if (fresh && self.ordinal === 0 && cfg.bootstrap) await this.bootstrapWhenPeersAreEmpty();
    this.startNode();
  }

  /**
   * Found a new group (conf = {self}) only when every other configured replica answers that its
   * own data directory is new. A wiped ordinal 0 therefore never founds a second group next to
   * an existing one: its peers have state and it waits to be added back as a new incarnation.
   */
  private async bootstrapWhenPeersAreEmpty(): Promise<void> {
    const others = this.rc.endpoints.filter((e) => e.ordinal !== this.rc.self.ordinal);
    for (;;) {
      if (this.stopping) return;
      const answers = await Promise.all(
        others.map((e) =>
          this.peerClient(e.ordinal)
            .status({ topic: this.rc.cfg.topic, partition: this.rc.cfg.partition, requestId: `bootstrap-${this.id}` })
            .catch(() => null),
        ),
      );
      if (answers.every((a) => a !== null && a.voters.length === 0 && a.learners.length === 0 && a.lastIndex === 0))
        break;
      if (answers.some((a) => a !== null && (a.voters.length > 0 || a.learners.length > 0))) {
        this.logger.warn('bootstrap_skipped_group_exists', { replica: this.id });
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const snap = bootstrapSnapshot([this.id], this.encodeSnapshotState([], 0));
    await this.storage.installSnapshot(snap.meta, []);
    await this.storage.append([], { term: snap.meta.term, vote: null, commit: snap.meta.index }, snap.meta.conf);
    this.log.installed(snap.meta);
    this.log.appended([], { term: snap.meta.term, vote: null, commit: snap.meta.index });
    this.conf = snap.meta.conf;
    this.logger.info('group_bootstrapped', { replica: this.id, voters: this.conf.voters });
  }

  private startNode(): void {
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
      applied: Math.max(this.storage.recovered.appliedIndex, this.log.firstIndex() - 1),
    });
    this.tickTimer = setInterval(() => {
      this.node!.tick();
      this.kick();
    }, cfg.tickMs);
    this.memberTimer = setInterval(() => {
      void this.reconcileMembership();
      void this.pollLeaderCommit();
    }, cfg.membershipCheckMs);
    this.retentionTimer = setInterval(() => this.checkRetention(), cfg.retentionCheckMs);
    this.leased.start();
    // The recovered (or just founded) configuration: set here, not only when a change is applied.
    this.metrics.voters.set(this.lbl, this.conf.voters.length);
    this.kick();
  }

  // ---- the driver loop ----

  private kick(): void {
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
    const termOrVote =
      rd.hardState !== undefined &&
      (rd.hardState.term !== this.log.initialState().hardState.term ||
        rd.hardState.vote !== this.log.initialState().hardState.vote);
    for (const m of rd.messages) {
      // Requests from a leader promise nothing about our disk; responses and votes do.
      if (!termOrVote && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) early.push(m);
      else late.push(m);
    }
    this.send(early);
    if (rd.snapshot) {
      // The install raises the stored commit to the snapshot: an older deferred one must not follow it.
      this.deferredHardState = undefined;
      await this.installSnapshot(rd.snapshot);
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
    this.send(late);
    if (rd.softState) this.onSoftState(rd.softState.leader, rd.softState.role);
    if (rd.committed.length > 0) await this.applyCommitted(rd.committed);
  }

  private send(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type === MessageType.Snap) this.metrics.snapshotsSent.inc({ ...this.lbl, action: 'sent' });
      this.transport.send(m.to, encodeMessage(m));
    }
  }

  private onPeerMessage(from: string, payload: Buffer): void {
    if (this.node === null) return; // not started yet: the sender retries
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
    if (msg.type === MessageType.App && msg.commit > this.leaderCommitSeen) this.leaderCommitSeen = msg.commit;
    if (
      from === this.lastLeader &&
      (msg.type === MessageType.App || msg.type === MessageType.Heartbeat || msg.type === MessageType.Snap)
    )
      this.leaderContactMs = Date.now();
    // A fresh learner must answer a leader it has no configuration for yet.
    if (!this.transport.peers().includes(from)) this.transport.setPeers([...this.peerIds(), from]);
    try {
      this.node.step(msg);
    } catch (err) {
      this.fatal(err);
      return;
    }
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
      for (const [index, p] of this.pending) {
        this.pending.delete(index);
        clearTimeout(p.timer);
        p.reject(
          new DaftkaError(
            'COMMIT_UNKNOWN',
            `leadership lost while the write at log index ${index} was in flight; retry with the same idempotency key`,
            {
              leaderHint: this.leaderEndpoint() ?? undefined,
            },
          ),
        );
      }
    }
    // Long-polls of leased fetch look again (a deposed leader answers them NOT_LEADER at once).
    this.leased.onApplied();
    this.onLeaderChange(leader, this.node!.term);
  }

  private afterAdvance(): void {
    const n = this.node!;
    this.metrics.term.set(this.lbl, n.term);
    this.metrics.commitIndex.set(this.lbl, n.commit);
    this.metrics.appliedIndex.set(this.lbl, n.applied);
  }

  // ---- apply ----

  private async applyCommitted(entries: Entry[]): Promise<void> {
    const ops: StateOp[] = [];
    const before = this.state.nextOffset;
    const startBefore = this.state.logStartOffset;
    let confChanged = false;
    for (const e of entries) {
      if (e.type === EntryType.Config) {
        this.conf = applyConfChange(this.conf, decodeConfChange(e.data));
        confChanged = true;
        continue;
      }
      if (e.type !== EntryType.Normal) continue;
      // A snapshot's state already includes entries up to its state index (see makeSnapshot).
      if (e.index <= this.stateIndex) continue;
      const { ops: o, result, command } = this.state.apply(e.index, e.data);
      for (const op of o) ops.push(op);
      this.settle(e, result, command);
    }
    const last = entries[entries.length - 1].index;
    if (confChanged) {
      await this.storage.append([], undefined, this.conf);
      this.log.setConf(this.conf);
      this.transport.setPeers(this.peerIds());
      this.metrics.voters.set(this.lbl, this.conf.voters.length);
      this.logger.info('membership_applied', {
        replica: this.id,
        voters: this.conf.voters,
        learners: this.conf.learners,
      });
      if (!this.conf.voters.includes(this.id) && !this.conf.learners.includes(this.id))
        this.logger.warn('replica_removed_from_group', { replica: this.id });
    }
    // Applied index and state changes in one batch. It rides on the next group commit; the
    // state in memory is already current, so nothing waits for it (order is kept by storage).
    this.applyChain = this.storage.applyBatch(last, ops).catch((err) => this.fatal(err));
    this.metrics.highWatermark.set(this.lbl, this.state.nextOffset);
    this.metrics.logStartOffset.set(this.lbl, this.state.logStartOffset);
    this.metrics.logBytes.set(this.lbl, this.storage.stats().logBytes);
    if (this.state.nextOffset !== before) this.wakeWaiters();
    this.leased.onApplied();
    if (this.state.logStartOffset !== startBefore) await this.compactToRetention(last);
  }

  private settle(e: Entry, result: ApplyResult, command: Command): void {
    const p = this.pending.get(e.index);
    if (p === undefined) return;
    this.pending.delete(e.index);
    clearTimeout(p.timer);
    if (p.term !== e.term) {
      p.reject(
        new DaftkaError(
          'NOT_LEADER',
          'the write was superseded by a new leader before it committed; it was not written',
          {
            leaderHint: this.leaderEndpoint() ?? undefined,
          },
        ),
      );
      return;
    }
    if (command.kind === CommandKind.Produce && result.kind === 'written') {
      this.metrics.produceRecords.inc(this.lbl, p.records);
      this.metrics.produceBytes.inc(this.lbl, p.bytes);
      this.metrics.commitLatency.observe(this.lbl, Number(process.hrtime.bigint() - p.startedAt) / 1e9);
    }
    p.resolve(result);
  }

  /**
   * Retention applied: drop the Raft log below the first entry that still holds records.
   * `appliedTo` is the last entry of the batch just applied: the core's `applied` only moves at
   * advance(), and bounding by it would leave a whole batch of dead entries behind each time.
   */
  private async compactToRetention(appliedTo: number): Promise<void> {
    const applied = Math.max(appliedTo, this.stateIndex);
    const target = Math.min(this.state.firstRetainedLogIndex() ?? applied + 1, applied + 1, this.log.lastIndex() + 1);
    if (target <= this.log.firstIndex()) return;
    await this.applyChain;
    await this.storage.compactLog(target);
    this.log.compacted(target);
    this.metrics.retentionDeleted.inc(this.lbl);
    this.logger.info('log_compacted', {
      replica: this.id,
      first_index: target,
      log_start_offset: this.state.logStartOffset,
    });
  }

  // ---- snapshots ----

  /**
   * The snapshot a far-behind follower gets: positioned at the compaction point (firstIndex-1,
   * so every retained entry still reaches the follower by normal appends), carrying the state
   * machine as of the current applied index X. The follower skips state changes of entries
   * ≤ X when they arrive (the state already holds them) — the offset index in the state points
   * at those entries, so fetch serves them once they are there.
   */
  private async makeSnapshot(): Promise<Snapshot> {
    await this.applyChain;
    const first = this.log.firstIndex();
    const { meta, state } = await this.storage.exportState();
    const index = first - 1;
    const term = this.log.term(index);
    if (term === undefined) throw new Error(`no term for snapshot index ${index}`);
    const stateIndex = Math.max(meta.index, this.stateIndex);
    this.metrics.snapshotsSent.inc({ ...this.lbl, action: 'built' });
    return { meta: { index, term, conf: this.confAt(index) }, data: this.encodeSnapshotState(state, stateIndex) };
  }

  /**
   * The membership handed with a snapshot at the compaction point is the current one. Config
   * entries after that point reach the follower again and are re-applied on top of it; each
   * change is an assignment (learner / voter / absent) and ids are never reused, so re-applying
   * a suffix of them to the state they produced changes nothing (see applyConfChange).
   */
  private confAt(_index: number): ConfState {
    return this.conf;
  }

  private encodeSnapshotState(state: Array<[Uint8Array, Uint8Array]>, stateIndex: number): Uint8Array {
    const w = new BufWriter(1024);
    w.u8(1).i53(stateIndex).u32(state.length);
    for (const [k, v] of state) w.bytes32(k).bytes32(v);
    return w.finish();
  }

  private async installSnapshot(s: Snapshot): Promise<void> {
    const rd = new BufReader(Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength));
    const version = rd.u8('snapshot.version');
    if (version !== 1) throw new Error(`unknown snapshot version ${version}`);
    const stateIndex = rd.i53('snapshot.stateIndex');
    const n = rd.u32('snapshot.count');
    const pairs: Array<[Uint8Array, Uint8Array]> = [];
    for (let i = 0; i < n; i++) pairs.push([rd.bytes32('k'), rd.bytes32('v')]);
    const withIndex = pairs.filter(([k]) => Buffer.compare(Buffer.from(k), Buffer.from(K_STATE_INDEX)) !== 0);
    withIndex.push([K_STATE_INDEX, new BufWriter(8).i53(stateIndex).finish()]);
    withIndex.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
    await this.applyChain;
    await this.storage.installSnapshot(s.meta, withIndex);
    this.log.installed(s.meta);
    this.state.load(withIndex);
    this.stateIndex = stateIndex;
    this.conf = s.meta.conf;
    this.transport.setPeers(this.peerIds());
    this.metrics.voters.set(this.lbl, this.conf.voters.length);
    this.metrics.snapshotsSent.inc({ ...this.lbl, action: 'installed' });
    this.logger.info('snapshot_installed', {
      replica: this.id,
      index: s.meta.index,
      state_index: stateIndex,
      high_watermark: this.state.nextOffset,
    });
    this.wakeWaiters();
  }

  // ---- partition API ----

  private checkTarget(topic: string, partition: number): void {
    if (topic !== this.rc.cfg.topic || partition !== this.rc.cfg.partition)
      throw new DaftkaError(
        'PARTITION_NOT_FOUND',
        `this replica serves ${this.rc.clusterId}, not ${topic}/${partition}`,
      );
  }

  private leaderEndpoint(): string | null {
    const leader = this.node?.leader ?? null;
    const o = leader === null ? undefined : ordinalOf(leader);
    const ep = o === undefined ? undefined : this.rc.endpoints[o];
    return ep ? `${ep.host}:${ep.clientPort}` : null;
  }

  private requireLeader(): RaftNode {
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

  private propose(data: Uint8Array, timeoutMs: number, records = 0, bytes = 0): Promise<ApplyResult> {
    const node = this.requireLeader();
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
    return new Promise<ApplyResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(index))
          reject(
            new DaftkaError(
              'COMMIT_UNKNOWN',
              `not committed within ${timeoutMs} ms; retry with the same idempotency key`,
            ),
          );
      }, timeoutMs);
      this.pending.set(index, { term, startedAt: process.hrtime.bigint(), records, bytes, resolve, reject, timer });
    });
  }

  async produce(req: ProduceRequest): Promise<ProduceResult> {
    this.checkTarget(req.topic, req.partition);
    const { cfg } = this.rc;
    try {
      this.requireLeader();
      if (req.records.length === 0)
        throw new DaftkaError('INVALID_REQUEST', 'a produce batch needs at least one record');
      if (req.records.length > cfg.maxBatchRecords)
        throw new DaftkaError(
          'PAYLOAD_TOO_LARGE',
          `${req.records.length} records in one batch; the limit is ${cfg.maxBatchRecords}`,
          { extra: { limit: cfg.maxBatchRecords } },
        );
      for (let i = 0; i < req.records.length; i++) {
        const size = recordBytes([req.records[i]]);
        if (size > cfg.maxRecordBytes)
          throw new DaftkaError(
            'RECORD_TOO_LARGE',
            `record ${i} is ${size} bytes; the limit is ${cfg.maxRecordBytes}`,
            { extra: { limit: cfg.maxRecordBytes, index: i } },
          );
      }
      const hash = req.idempotencyKey !== undefined ? payloadHash(req.records) : undefined;
      if (req.idempotencyKey !== undefined) {
        const pre = this.state.precheckIdempotency(req.idempotencyKey, hash!);
        if (pre) return this.produceResult(pre);
      }
      if (req.producer) {
        const pre = this.state.checkProducer(
          req.producer.producerId,
          req.producer.epoch,
          req.producer.seq,
          req.records.length,
        );
        if (pre) return this.produceResult(pre);
      }
      const data = encodeCommand({
        kind: CommandKind.Produce,
        leaderTimeMs: Date.now(),
        idempotencyKey: req.idempotencyKey,
        payloadHash: hash,
        producer: req.producer,
        records: req.records,
      });
      const res = this.produceResult(
        await this.propose(data, req.timeoutMs, req.records.length, recordBytes(req.records)),
      );
      this.metrics.produceRequests.inc({ ...this.lbl, code: 'OK' });
      return res;
    } catch (err) {
      this.metrics.produceRequests.inc({ ...this.lbl, code: err instanceof DaftkaError ? err.code : 'INTERNAL' });
      throw err;
    }
  }

  private produceResult(r: ApplyResult): ProduceResult {
    if (r.kind === 'written') return { baseOffset: r.baseOffset, count: r.count, duplicate: false };
    if (r.kind === 'duplicate') return { baseOffset: r.baseOffset, count: r.count, duplicate: true };
    if (r.kind === 'refused') throw r.error;
    throw new DaftkaError('INTERNAL', `unexpected apply result ${r.kind} for a produce`);
  }

  async fetch(req: FetchRequest): Promise<FetchResult> {
    this.checkTarget(req.topic, req.partition);
    if (this.node === null) throw new DaftkaError('UNAVAILABLE', 'replica is starting', { retryAfterMs: 200 });
    const s = this.state;
    if (req.offset < s.logStartOffset)
      throw new DaftkaError(
        'OFFSET_OUT_OF_RANGE',
        `offset ${req.offset} is below the log start offset ${s.logStartOffset} (deleted by retention)`,
        {
          extra: { log_start_offset: s.logStartOffset, high_watermark: s.nextOffset },
        },
      );
    if (req.offset > s.nextOffset)
      throw new DaftkaError(
        'OFFSET_OUT_OF_RANGE',
        `offset ${req.offset} is beyond the high watermark ${s.nextOffset}`,
        {
          extra: { log_start_offset: s.logStartOffset, high_watermark: s.nextOffset },
        },
      );
    if (req.offset === s.nextOffset && req.waitMs > 0) await this.waitForData(req.offset, req.waitMs);
    const records: RecordOut[] = [];
    let bytes = 0;
    const want = Math.max(1, req.maxRecords);
    // The index rows this answer can use (bounded by the records and bytes they hold), then their
    // entries in as few reads as possible: one storage round trip per entry made a fetch below
    // the entry cache (a restarted replica, a consumer far behind) take seconds for 1000s of rows.
    const rows: Array<{ base: number; count: number; logIndex: number; bytes: number }> = [];
    let planned = 0;
    let plannedBytes = 0;
    for (const row of s.rowsFrom(req.offset)) {
      if (row.base + row.count <= req.offset) continue;
      rows.push(row);
      planned += row.base + row.count - Math.max(row.base, req.offset);
      plannedBytes += row.bytes;
      if (planned >= want || plannedBytes >= req.maxBytes) break;
    }
    const byIndex = new Map<number, Entry>();
    if (rows.length > 0) {
      const hi = rows[rows.length - 1].logIndex + 1;
      for (let lo = rows[0].logIndex; lo < hi;) {
        const got = await this.log.read(lo, hi, Number.MAX_SAFE_INTEGER);
        if (got.length === 0 || got[0].index !== lo) break;
        for (const e of got) byIndex.set(e.index, e);
        lo = got[got.length - 1].index + 1;
      }
    }
    outer: for (const row of rows) {
      const e = byIndex.get(row.logIndex);
      if (e === undefined) break; // not replicated here yet (after a snapshot)
      const cmd = decodeCommand(e.data);
      if (cmd.kind !== CommandKind.Produce) break;
      for (let i = 0; i < cmd.records.length; i++) {
        const offset = row.base + i;
        if (offset < req.offset) continue;
        const r = cmd.records[i];
        const size = recordBytes([r]);
        if (records.length > 0 && (records.length >= want || bytes + size > req.maxBytes)) break outer;
        records.push({ ...r, offset });
        bytes += size;
      }
      if (records.length >= want) break;
    }
    this.metrics.fetchRecords.inc(this.lbl, records.length);
    this.metrics.fetchBytes.inc(this.lbl, bytes);
    const next = records.length > 0 ? records[records.length - 1].offset + 1 : req.offset;
    return { records, nextOffset: next, highWatermark: s.nextOffset, logStartOffset: s.logStartOffset };
  }

  private waitForData(offset: number, waitMs: number): Promise<void> {
    if (this.waiters.length >= this.rc.cfg.maxFetchWaiters) {
      this.metrics.shed.inc({ ...this.lbl, reason: 'fetch_waiters' });
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const w: Waiter = {
        offset,
        wake: () => {
          clearTimeout(t);
          resolve();
        },
      };
      const t = setTimeout(
        () => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve();
        },
        Math.min(waitMs, 30_000),
      );
      this.waiters.push(w);
    });
  }

  private wakeWaiters(): void {
    const keep: Waiter[] = [];
    for (const w of this.waiters)
      if (w.offset < this.state.nextOffset) w.wake();
      else keep.push(w);
    this.waiters = keep;
  }

  async commitOffset(req: GroupOffsetCommit): Promise<void> {
    this.checkTarget(req.topic, req.partition);
    if (!Number.isSafeInteger(req.offset) || req.offset < 0)
      throw new DaftkaError('INVALID_REQUEST', `offset must be a non-negative integer, got ${req.offset}`);
    if (req.offset > this.state.nextOffset)
      throw new DaftkaError(
        'OFFSET_OUT_OF_RANGE',
        `offset ${req.offset} is beyond the high watermark ${this.state.nextOffset}`,
        {
          extra: { high_watermark: this.state.nextOffset },
        },
      );
    const data = encodeCommand({
      kind: CommandKind.GroupCommit,
      leaderTimeMs: Date.now(),
      group: req.group,
      offset: req.offset,
      metadata: req.metadata ?? '',
    });
    await this.propose(data, 5000);
  }

  async getOffset(req: GroupOffsetQuery): Promise<GroupOffset> {
    this.checkTarget(req.topic, req.partition);
    this.requireLeader();
    const g = this.state.groups.get(req.group);
    const hw = this.state.nextOffset;
    const ls = this.state.logStartOffset;
    const lag = hw - Math.max(g?.offset ?? ls, ls);
    if (g) this.metrics.groupLag.set({ ...this.lbl, group: req.group }, lag);
    return {
      group: req.group,
      topic: req.topic,
      partition: req.partition,
      offset: g?.offset ?? null,
      ...(g && g.metadata !== '' ? { metadata: g.metadata } : {}),
      highWatermark: hw,
      logStartOffset: ls,
      lag,
    };
  }

  async status({ topic, partition }: StatusRequest): Promise<PartitionStatus> {
    this.checkTarget(topic, partition);
    const n = this.node;
    const role =
      n === null
        ? 'follower'
        : n.role === 'leader'
          ? 'leader'
          : this.conf.learners.includes(this.id)
            ? 'learner'
            : n.role === 'follower'
              ? 'follower'
              : 'candidate';
    return {
      topic,
      partition,
      replicaId: this.id,
      role,
      term: n?.term ?? 0,
      leaderId: n?.leader ?? null,
      leaderEndpoint: this.leaderEndpoint(),
      highWatermark: this.state.nextOffset,
      logStartOffset: this.state.logStartOffset,
      commitIndex: n?.commit ?? 0,
      appliedIndex: n?.applied ?? 0,
      lastIndex: this.log.lastIndex(),
      logBytes: this.storage.stats().logBytes,
      voters: [...this.conf.voters],
      learners: [...this.conf.learners],
    };
  }

  // ---- leased groups and dead letters (replica/leased-service.ts) ----

  leaseFetch(req: LeaseFetchRequest): Promise<LeaseFetchResult> {
    return this.leased.leaseFetch(req);
  }
  leaseAck(req: LeaseAckRequest): Promise<LeaseAckResult[]> {
    return this.leased.leaseAck(req);
  }
  setGroupPolicy(req: GroupPolicyRequest): Promise<GroupLeaseInfo> {
    return this.leased.setGroupPolicy(req);
  }
  getGroupLeases(req: GroupTarget): Promise<GroupLeaseInfo> {
    return this.leased.getGroupLeases(req);
  }
  listDeadLetters(q: DeadLetterQuery): Promise<DeadLetterPage> {
    return this.leased.listDeadLetters(q);
  }
  adminDeadLetters(req: DeadLetterAdminRequest): Promise<{ count: number }> {
    return this.leased.adminDeadLetters(req);
  }
  startReplay(req: ReplayJobRequest): Promise<ReplayJobStatus> {
    return this.leased.startReplay(req);
  }
  getReplay(q: ReplayJobQuery): Promise<ReplayJobStatus | null> {
    return this.leased.getReplay(q);
  }

  // ---- admin ----

  async transferLeadership(req: TransferLeadershipRequest): Promise<void> {
    this.checkTarget(req.topic, req.partition);
    const node = this.requireLeader();
    try {
      node.transferLeadership(req.to);
    } catch (err) {
      if (err instanceof TransferRefusedError) throw new DaftkaError('CONFLICT', err.message);
      throw err;
    }
    this.kick();
  }

  async addLearner(req: AddLearnerRequest): Promise<void> {
    this.checkTarget(req.topic, req.partition);
    this.changeMembership('addLearner', req.id);
  }
  async promote(req: MemberRequest): Promise<void> {
    this.checkTarget(req.topic, req.partition);
    const node = this.requireLeader();
    const pr = node.status().progress?.[req.id];
    if (!pr || pr.match < node.commit)
      throw new DaftkaError(
        'CONFLICT',
        `${req.id} is not caught up (match ${pr?.match ?? 'unknown'}, commit ${node.commit}); promote it once it is`,
      );
    this.changeMembership('promote', req.id);
  }
  async removeMember(req: MemberRequest): Promise<void> {
    this.checkTarget(req.topic, req.partition);
    this.changeMembership('remove', req.id);
  }

  private changeMembership(type: 'addLearner' | 'promote' | 'remove', id: string): void {
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

  /**
   * Leader: make the membership match the configured replicas. Each configured ordinal is asked
   * for its id; a new id (a new replica, or a wiped one back as a new incarnation) is added as a
   * learner, promoted once caught up, and then the old incarnation of that ordinal is removed —
   * one change at a time, so the group never drops below quorum.
   */
  private async reconcileMembership(): Promise<void> {
    const node = this.node;
    if (node === null || node.role !== 'leader' || this.stopping) return;
    const members = [...this.conf.voters, ...this.conf.learners];
    try {
      for (const ep of this.rc.endpoints) {
        if (ep.ordinal === this.rc.self.ordinal) continue;
        const st = await this.peerClient(ep.ordinal)
          .status({ topic: this.rc.cfg.topic, partition: this.rc.cfg.partition, requestId: `members-${this.id}` })
          .catch(() => null);
        if (st === null || node.role !== 'leader') continue;
        const id = st.replicaId;
        if (!members.includes(id)) {
          this.changeMembership('addLearner', id);
          return;
        }
        if (this.conf.learners.includes(id)) {
          const pr = node.status().progress?.[id];
          if (pr && pr.match >= node.commit) {
            this.changeMembership('promote', id);
            return;
          }
          continue;
        }
        const stale = members.filter((m) => m !== id && ordinalOf(m) === ep.ordinal);
        if (stale.length > 0 && this.conf.voters.includes(id)) {
          this.changeMembership('remove', stale[0]);
          return;
        }
      }
    } catch (err) {
      if (err instanceof DaftkaError && (err.code === 'CONFLICT' || err.code === 'NOT_LEADER')) return;
      this.logger.warn('membership_reconcile_failed', { replica: this.id, error: (err as Error).message });
    }
  }

  /** Follower: ask the leader for its commit index (readiness measures our lag against it). */
  private async pollLeaderCommit(): Promise<void> {
    const n = this.node;
    if (n === null || n.role === 'leader' || n.leader === null || this.polling || this.stopping) return;
    const o = ordinalOf(n.leader);
    if (o === undefined || o >= this.rc.endpoints.length) return;
    const asked = { leader: n.leader, term: n.term };
    this.polling = true;
    try {
      const st = await this.peerClient(o)
        .status({ topic: this.rc.cfg.topic, partition: this.rc.cfg.partition, requestId: `lag-${this.id}` })
        .catch(() => null);
      if (st === null || st.replicaId !== asked.leader || st.term !== asked.term || st.role !== 'leader') return;
      if (st.commitIndex > this.leaderCommitSeen) this.leaderCommitSeen = st.commitIndex;
      this.leaderPolled = asked;
    } finally {
      this.polling = false;
    }
  }

  private peerClient(ordinal: number): RemotePartitionClient {
    let c = this.peerClients.get(ordinal);
    if (!c) {
      const ep = this.rc.endpoints[ordinal];
      const rpc = new RpcClient({ host: ep.host, port: ep.clientPort, connectTimeoutMs: 500 });
      c = { rpc, client: new RemotePartitionClient(rpc, { defaultTimeoutMs: 1000 }) };
      this.peerClients.set(ordinal, c);
    }
    return c.client;
  }

  // ---- retention ----

  private checkRetention(): void {
    const node = this.node;
    if (node === null || node.role !== 'leader' || this.stopping) return;
    const cut = this.state.retentionCut(Date.now(), this.rc.cfg.retentionMs, this.rc.cfg.retentionBytes);
    if (cut === undefined) return;
    this.logger.info('retention_advance_proposed', { replica: this.id, log_start_offset: cut });
    this.propose(
      encodeCommand({ kind: CommandKind.AdvanceLogStart, leaderTimeMs: Date.now(), logStartOffset: cut }),
      5000,
    ).catch((err) => this.logger.warn('retention_advance_failed', { replica: this.id, error: (err as Error).message }));
  }

  /** Leader side for tests and operations: run a retention check now. */
  runRetentionNow(): void {
    this.checkRetention();
  }

  // ---- health and lifecycle ----

  /** Ready: storage open, a member of the group, and caught up with the leader's commit. */
  readiness(): { ready: boolean; reason: string; applied_index?: number; high_watermark?: number } {
    const n = this.node;
    const where = { applied_index: n?.applied ?? 0, high_watermark: this.state.nextOffset };
    if (this.fatalError !== null) return { ready: false, reason: 'fatal error' };
    if (n === null) return { ready: false, reason: 'waiting for the group to form' };
    if (!this.conf.voters.includes(this.id) && !this.conf.learners.includes(this.id))
      return { ready: false, reason: 'not a member yet' };
    if (n.leader === null) return { ready: false, reason: 'no leader known', ...where };
    if (n.applied < n.commit) return { ready: false, reason: `applying (${n.applied}/${n.commit})`, ...where };
    // A restarted or lagging follower holds a consistent prefix and applied all it knows to be
    // committed — yet may be far behind: not ready until within the allowed lag of its leader's
    // commit, as the leader itself reported it (asked every membershipCheckMs).
    const p = this.leaderPolled;
    if (n.role !== 'leader' && (p === null || p.leader !== n.leader || p.term !== n.term))
      return { ready: false, reason: 'asking the leader how far behind we are', ...where };
    if (n.role !== 'leader' && n.applied + this.rc.cfg.readyMaxLagEntries < this.leaderCommitSeen)
      return {
        ready: false,
        reason: `catching up (applied ${n.applied} of ${this.leaderCommitSeen} committed)`,
        ...where,
      };
    return { ready: true, reason: n.role === 'leader' ? 'leader' : 'following', ...where };
  }

  get raft(): RaftNode | null {
    return this.node;
  }

  get partitionState(): PartitionState {
    return this.state;
  }

  /**
   * SIGTERM: stop taking proposals, hand leadership to the most caught-up voter, flush, close.
   * Bounded by `shutdownTimeoutMs`.
   */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    const deadline = Date.now() + this.rc.cfg.shutdownTimeoutMs;
    const node = this.node;
    if (node !== null && node.role === 'leader' && this.conf.voters.length > 1) {
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const progress = node.status().progress ?? {};
      // Followers that answered lately first, then the most caught up: a follower that just died
      // may still have the highest match, and a transfer to it can only time out. If a transfer
      // does not complete (the core aborts it after an election timeout), try the next voter.
      const candidates = this.conf.voters
        .filter((v) => v !== this.id)
        .sort(
          (a, b) =>
            Number(progress[b]?.recentActive ?? false) - Number(progress[a]?.recentActive ?? false) ||
            (progress[b]?.match ?? 0) - (progress[a]?.match ?? 0),
        );
      for (const target of candidates) {
        if (Date.now() >= deadline || node.role !== 'leader') break;
        try {
          node.transferLeadership(target);
          this.kick();
          this.logger.info('shutdown_transferring_leadership', { replica: this.id, to: target });
          const giveUp = Math.min(deadline, Date.now() + 2 * this.rc.cfg.electionTimeoutMs);
          while (Date.now() < giveUp && node.role === 'leader' && node.status().leadTransferee === target)
            await sleep(10);
        } catch (err) {
          this.logger.warn('shutdown_transfer_failed', { replica: this.id, to: target, error: (err as Error).message });
        }
      }
      if (node.role !== 'leader') {
        // Stepping down happens on the successor's vote request, before it has won. Stay (briefly)
        // until it is known: our vote reaches it, and our NOT_LEADER answers name it as the hint
        // instead of sending producers back to a replica that is about to close its port.
        const until = Math.min(deadline, Date.now() + 2 * this.rc.cfg.electionTimeoutMs);
        while (Date.now() < until && node.role !== 'leader' && (node.leader === null || node.leader === this.id))
          await sleep(10);
      } else this.logger.warn('shutdown_transfer_failed', { replica: this.id, error: 'no voter took over' });
    }
    this.stopping = true;
    // Let the last acks (and the new leader's first messages) go out.
    while (Date.now() < deadline && this.processing) await new Promise((r) => setTimeout(r, 5));
    await this.close();
  }

  async close(): Promise<void> {
    this.stopping = true;
    for (const t of [this.tickTimer, this.memberTimer, this.retentionTimer]) if (t) clearInterval(t);
    this.leased.stop();
    for (const w of this.waiters) w.wake();
    this.waiters = [];
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new DaftkaError('COMMIT_UNKNOWN', 'replica stopped with the write in flight'));
    }
    this.pending.clear();
    for (const c of this.peerClients.values()) c.rpc.close();
    await this.transport?.close();
    await this.applyChain;
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
    this.logger.error('replica_fatal', {
      replica: this.id,
      error: (err as Error)?.message ?? String(err),
      name: (err as Error)?.name,
    });
    this.onFatal(err);
  }
}
