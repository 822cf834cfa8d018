import type { Logger } from '../common/log';
import { gauge, type promClient } from '../common/metrics';
import { replicaId, type ResolvedReplicaConfig } from './config';
import type { TopicWriter } from './control/topic-writer';
import { RaftDriver } from './driver/raft-driver';
import { LeasedService } from './leased/service';
import { Membership } from './membership/membership';
import { replicaMetrics, type ReplicaMetrics } from './metrics';
import { checkTarget, PartitionService } from './partition/service';
import type { RaftNode } from './raft';
import { PartitionState } from './state/partition-state';
import { DiskGuard } from './storage/disk-guard';
import { Compactor } from './driver/compactor';
import { ReplicaStorage } from './storage/storage';

/**
 * One partition replica, put together: storage (RocksDB worker), the partition state, the Raft
 * driver (replica/driver), and the three services its client port serves — the partition API
 * (replica/partition), membership (replica/membership) and leased groups with dead letters
 * (replica/leased). This file only wires them and owns the lifecycle: open, run, readiness,
 * shutdown with leadership transfer, close.
 */
export class PartitionReplica {
  readonly id: string;
  readonly metrics: ReplicaMetrics;
  readonly state: PartitionState;
  readonly driver: RaftDriver;
  /** produce, fetch, offsets, status. */
  readonly partition: PartitionService;
  /** The operator's membership and leadership calls, and the leader's reconcile loop. */
  readonly membership: Membership;
  /** Leased groups, dead letters and replay jobs. */
  readonly leased: LeasedService;
  /** Free space of the data directory and the disk-full state (storage/disk-guard.ts). */
  readonly disk: DiskGuard;
  /** Key compaction: the leader's requests, every replica's passes (driver/compactor.ts). */
  readonly compactor: Compactor;
  /** Writes to other topics (dead-letter replay to a target topic); set by main when NATS is configured. */
  topicWriter: TopicWriter | null = null;
  /** Called on leadership and status changes (the NATS announcer listens). */
  onLeaderChange: (leader: string | null, term: number) => void = () => {};

  private constructor(
    private readonly rc: ResolvedReplicaConfig,
    storage: ReplicaStorage,
    private readonly logger: Logger,
    registry: promClient.Registry,
    onFatal: (err: unknown) => void,
  ) {
    const c = rc.cfg;
    this.id = replicaId(rc.self.ordinal, storage.recovered.incarnation);
    this.state = new PartitionState(
      {
        dedupWindowMs: c.dedupWindowMs,
        dedupMaxEntries: c.dedupMaxEntries,
        dedupMaxBytes: c.dedupMaxBytes,
        producerExpiryMs: c.producerExpiryMs,
        groupExpiryMs: c.groupOffsetsRetentionMs,
        indexCacheBytes: c.indexCacheBytes,
      },
      storage,
    );
    this.metrics = replicaMetrics(registry);
    this.metrics.restarts.set({ topic: c.topic, partition: String(c.partition) }, Date.now() / 1000);
    this.disk = new DiskGuard({
      dir: c.dataDir,
      minFreeBytes: c.storageMinFreeBytes,
      intervalMs: c.diskCheckIntervalMs,
      storage,
      metrics: this.metrics,
      lbl: { topic: c.topic, partition: String(c.partition) },
      logger,
      onStuck: onFatal,
    });
    this.driver = new RaftDriver({
      rc,
      id: this.id,
      storage,
      state: this.state,
      logger,
      registry,
      metrics: this.metrics,
      hooks: {
        applied: (hwMoved) => {
          if (hwMoved) this.partition.applied();
          this.leased.onApplied();
          this.compactor.onApplied();
        },
        leadershipChanged: (leader, term) => {
          // Long-polls of leased fetch look again (a deposed leader answers them NOT_LEADER at once).
          this.leased.onApplied();
          this.onLeaderChange(leader, term);
        },
        fatal: onFatal,
      },
    });
    this.partition = new PartitionService({
      rc,
      driver: this.driver,
      state: this.state,
      metrics: this.metrics,
      logger,
      admitWrite: () => this.disk.admitWrite(),
      diskFull: () => this.disk.full !== null,
    });
    this.compactor = new Compactor({
      host: {
        state: this.state,
        readEntries: (lo, hi) => this.driver.readEntries(lo, hi),
        rewriteEntries: (entries, ops) => this.driver.rewriteEntries(entries, ops),
        appliedWritten: () => this.driver.appliedWritten(),
        isLeader: () => this.driver.isLeader,
        peerMatches: () => this.driver.peerMatches(),
        propose: (data, timeoutMs) => this.driver.propose(data, timeoutMs),
      },
      settings: c,
      metrics: this.metrics,
      lbl: { topic: c.topic, partition: String(c.partition) },
      logger,
      replica: this.id,
    });
    this.membership = new Membership({
      rc,
      driver: this.driver,
      logger,
      diskFull: () => this.disk.full,
      recheckDisk: () => this.disk.check(),
      mayAddMember: () => !this.compactor.dropPending,
    });
    this.leased = new LeasedService({
      topic: c.topic,
      partition: c.partition,
      state: this.state,
      checkTarget: (topic, partition) => checkTarget(rc, topic, partition),
      requireLeader: () => void this.driver.requireLeader(),
      isLeader: () => this.driver.isLeader,
      propose: (data, timeoutMs) => this.driver.propose(data, timeoutMs),
      readEntry: (i) => this.driver.readEntry(i),
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
          orderingKey: false,
          expired: 'dead_letter',
        },
        deadLetterRetentionMs: c.deadLetterRetentionMs,
        sweepIntervalMs: c.leaseSweepMs,
        factsCacheEntries: c.leaseFactsCacheEntries,
        maxWaiters: c.maxFetchWaiters,
      },
    });
  }

  /** Open storage and recover the state machine; the Raft node starts in `run`. */
  static async open(
    rc: ResolvedReplicaConfig,
    logger: Logger,
    registry: promClient.Registry,
    onFatal: (err: unknown) => void,
  ): Promise<PartitionReplica> {
    const holder: { replica?: PartitionReplica } = {};
    const lbl = { topic: rc.cfg.topic, partition: String(rc.cfg.partition) };
    const storage = await ReplicaStorage.open({
      dir: rc.cfg.dataDir,
      fsync: rc.cfg.fsync,
      fsyncIntervalMs: rc.cfg.fsyncIntervalMs,
      maxPendingBytes: rc.cfg.storageMaxPendingBytes,
      blockCacheBytes: rc.cfg.rocksdbBlockCacheBytes,
      memtableBytes: rc.cfg.rocksdbMemtableBytes,
      diskFullProbeMaxMs: rc.cfg.diskFullProbeMaxMs,
      onDiskFull: () => holder.replica?.disk.changed(),
      logger,
      onFlush: (s) => {
        if (s.synced && holder.replica) holder.replica.metrics.fsync.observe(lbl, s.fsyncSeconds);
      },
    });
    const replica = new PartitionReplica(rc, storage, logger, registry, onFatal);
    holder.replica = replica;
    replica.disk.start();
    gauge(registry, {
      name: 'daftka_storage_rocksdb_memory_bytes',
      help: 'RocksDB memory by kind: memtables and block_cache (bounded by config), table_readers (index and filter blocks outside the cache)',
      labelNames: ['topic', 'partition', 'kind'] as const,
      async collect() {
        const m = await storage.memory().catch(() => null);
        if (m === null) return; // closing, or the worker is gone: no sample
        this.set({ ...lbl, kind: 'memtables' }, m.memtableBytes);
        this.set({ ...lbl, kind: 'block_cache' }, m.blockCacheBytes);
        this.set({ ...lbl, kind: 'table_readers' }, m.tableReaderBytes);
      },
    });
    gauge(registry, {
      name: 'daftka_storage_worker_heap_bytes',
      help: "The storage worker thread's V8 heap, committed bytes (its own isolate: not in daftka_nodejs_heap_*)",
      labelNames: ['topic', 'partition'] as const,
      async collect() {
        const m = await storage.memory().catch(() => null);
        if (m?.workerHeapBytes !== undefined) this.set(lbl, m.workerHeapBytes);
      },
    });
    gauge(registry, {
      name: 'daftka_raft_entry_cache_bytes',
      help: 'Recent log entries kept in memory for replication and fetch: data plus per-entry overhead (bound entryCacheBytes)',
      labelNames: ['topic', 'partition'] as const,
      collect() {
        this.set(lbl, replica.driver.entryCacheBytes);
      },
    });
    await replica.driver.recover();
    return replica;
  }

  /** Start the peer transport and, once membership is known (or founded), the Raft node. */
  async run(): Promise<void> {
    await this.driver.startTransport();
    if (this.driver.fresh && this.rc.self.ordinal === 0 && this.rc.cfg.bootstrap)
      await this.membership.foundWhenPeersAreEmpty(() => this.driver.isStopping);
    this.driver.start();
    this.membership.start();
    this.partition.start();
    this.leased.start();
    this.compactor.start();
  }

  get raft(): RaftNode | null {
    return this.driver.raft;
  }

  /** Leader side for tests and operations: run a retention check now. */
  runRetentionNow(): void {
    this.partition.checkRetention();
  }

  /** Ready: storage open, a member of the group, and caught up with the leader's commit. */
  readiness(): { ready: boolean; reason: string; applied_index?: number; high_watermark?: number } {
    const n = this.driver.raft;
    const conf = this.driver.membership;
    const where = { applied_index: n?.applied ?? 0, high_watermark: this.state.nextOffset };
    if (this.driver.failed) return { ready: false, reason: 'fatal error' };
    // Disk full is degradable: reads go on, produce is refused; not ready says why (crash matrix).
    const full = this.disk.full;
    if (full !== null) return { ready: false, reason: `disk full (${full.reason}): ${full.detail}`, ...where };
    if (n === null) return { ready: false, reason: 'waiting for the group to form' };
    if (!conf.voters.includes(this.id) && !conf.learners.includes(this.id))
      return { ready: false, reason: 'not a member yet' };
    if (n.leader === null) return { ready: false, reason: 'no leader known', ...where };
    if (n.applied < n.commit) return { ready: false, reason: `applying (${n.applied}/${n.commit})`, ...where };
    // A restarted or lagging follower holds a consistent prefix and applied all it knows to be
    // committed — yet may be far behind: not ready until within the allowed lag of its leader's
    // commit, as the leader itself reported it (asked every membershipCheckMs).
    const p = this.membership.leaderPolled;
    if (n.role !== 'leader' && (p === null || p.leader !== n.leader || p.term !== n.term))
      return { ready: false, reason: 'asking the leader how far behind we are', ...where };
    const leaderCommit = this.driver.leaderCommitSeen;
    if (n.role !== 'leader' && n.applied + this.rc.cfg.readyMaxLagEntries < leaderCommit)
      return { ready: false, reason: `catching up (applied ${n.applied} of ${leaderCommit} committed)`, ...where };
    return { ready: true, reason: n.role === 'leader' ? 'leader' : 'following', ...where };
  }

  /**
   * SIGTERM: stop taking proposals, hand leadership to the most caught-up voter, flush, close.
   * Bounded by `shutdownTimeoutMs`.
   */
  async shutdown(): Promise<void> {
    if (this.driver.isStopping) return;
    const deadline = Date.now() + this.rc.cfg.shutdownTimeoutMs;
    const node = this.driver.raft;
    const voters = this.driver.membership.voters;
    const electionMs = this.rc.cfg.electionTimeoutMs;
    if (node !== null && node.role === 'leader' && voters.length > 1) {
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const progress = node.status().progress ?? {};
      // Followers that answered lately first, then the most caught up: a follower that just died
      // may still have the highest match, and a transfer to it can only time out. If a transfer
      // does not complete (the core aborts it after an election timeout), try the next voter.
      const candidates = voters
        .filter((v) => v !== this.id)
        .sort(
          (a, b) =>
            Number(progress[b]?.recentActive ?? false) - Number(progress[a]?.recentActive ?? false) ||
            (progress[b]?.match ?? 0) - (progress[a]?.match ?? 0),
        );
      for (const target of candidates) {
        if (Date.now() >= deadline || node.role !== 'leader') break;
        try {
          this.driver.transferLeadership(target);
          this.logger.info('shutdown_transferring_leadership', { replica: this.id, to: target });
          const giveUp = Math.min(deadline, Date.now() + 2 * electionMs);
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
        const until = Math.min(deadline, Date.now() + 2 * electionMs);
        while (Date.now() < until && node.role !== 'leader' && (node.leader === null || node.leader === this.id))
          await sleep(10);
      } else this.logger.warn('shutdown_transfer_failed', { replica: this.id, error: 'no voter took over' });
    }
    this.driver.stop();
    // Let the last acks (and the new leader's first messages) go out — unless the loop is held
    // by a write waiting for disk space: nothing more goes out until space returns.
    while (Date.now() < deadline && this.driver.busy && this.disk.full?.reason !== 'enospc')
      await new Promise((r) => setTimeout(r, 5));
    await this.close();
  }

  async close(): Promise<void> {
    this.disk.stop();
    this.driver.stop();
    this.membership.stop();
    this.partition.stop();
    this.leased.stop();
    this.compactor.stop();
    await this.driver.close();
  }
}
