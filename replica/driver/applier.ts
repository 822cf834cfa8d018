import type { Logger } from '../../common/log';
import type { ReplicaMetrics } from '../metrics';
import {
  BOOTSTRAP_INDEX,
  EntryType,
  applyConfChange,
  decodeConfChange,
  type ConfState,
  type Entry,
  type Snapshot,
} from '../raft';
import { OLD_FORMAT_RANGE, RECOVERY_RANGES, type PartitionState, type StateStats } from '../state/partition-state';
import type { ReplicaStorage, StateOp } from '../storage/storage';
import type { Proposals } from './proposals';
import type { ReplicaLog } from './raft-log';
import {
  decodeSnapshotState,
  encodeSnapshotState,
  encodeStreamedSnapshot,
  stateIndexOf,
  streamedSnapshotOf,
} from './snapshots';
import type { SnapshotTransfer } from './snapshot-transfer';

/**
 * The apply side of the driver: committed entries into the partition state (and its storage
 * batch), configuration entries into the membership, snapshots built and installed, and the
 * Raft log compacted behind retention. The loop (raft-driver.ts) hands it each Ready's
 * committed entries and snapshot; it never decides anything Raft decides.
 */

export interface ApplierOptions {
  id: string;
  storage: ReplicaStorage;
  state: PartitionState;
  proposals: Proposals;
  metrics: ReplicaMetrics;
  lbl: { topic: string; partition: string };
  logger: Logger;
  /** Snapshots of a compacted log are pulled in chunks through it (snapshot-transfer.ts). */
  transfer: SnapshotTransfer;
  /** Where a NOT_LEADER answer should send the caller (the current leader's client endpoint). */
  leaderHint: () => string | null;
  /** The membership changed (a configuration entry, or a snapshot): peers to talk to follow it. */
  membershipChanged: (conf: ConfState) => void;
  /** After each applied batch or installed snapshot; `hwMoved`: the high watermark changed. */
  applied: (hwMoved: boolean) => void;
  fatal: (err: unknown) => void;
}

export class Applier {
  /** The membership as of the last applied configuration entry (or snapshot). */
  conf: ConfState = { voters: [], learners: [] };
  /** Entries ≤ this are already in the state (it came with a snapshot): their changes are skipped. */
  private stateIndex = 0;
  /** The last applied batch's storage write: snapshot export and install wait for it. */
  private applyChain: Promise<void> = Promise.resolve();
  private log!: ReplicaLog;

  constructor(private readonly o: ApplierOptions) {}

  /**
   * Read the partition state's bounded tables and meta keys (not the offset and time indexes,
   * which stay on disk): start-up replays nothing and reads the same amount whatever the log's length.
   */
  async recover(): Promise<void> {
    const rec = this.o.storage.recovered;
    // A directory of the state format before the on-disk offset index: this build would serve
    // it without an index (every fetch below the tail empty). Refuse it, loudly (crash-only).
    if ((await this.o.storage.scan(OLD_FORMAT_RANGE)).length > 0)
      throw new Error(
        'this data directory holds the old partition-state format (offset index keyed by base offset); ' +
          'this build does not convert it: wipe the volume and the replica rejoins as a new incarnation',
      );
    this.stateIndex = await this.loadState(rec.appliedIndex);
    this.conf = rec.conf ?? rec.snapshot?.conf ?? { voters: [], learners: [] };
    this.publishStateStats();
  }

  /**
   * The partition state from its stored keyspace (the bounded tables and meta keys only) as of
   * `appliedIndex`; returns the stored state index.
   */
  private async loadState(appliedIndex: number): Promise<number> {
    const pairs: Array<[Uint8Array, Uint8Array]> = [];
    for (const range of RECOVERY_RANGES) for (const kv of await this.o.storage.scan(range)) pairs.push(kv);
    const stateIndex = stateIndexOf(pairs);
    this.o.state.load(pairs, Math.max(appliedIndex, stateIndex));
    return stateIndex;
  }

  /** The log view (created by the driver after recovery, with this applier's snapshot builder). */
  attach(log: ReplicaLog): void {
    this.log = log;
  }

  /** Every applied batch is on its way to storage (ordered behind earlier writes). */
  settled(): Promise<void> {
    return this.applyChain;
  }

  async apply(entries: Entry[]): Promise<void> {
    const { state, storage, metrics, lbl } = this.o;
    const ops: StateOp[] = [];
    const before = state.nextOffset;
    const startBefore = state.logStartOffset;
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
      const { ops: o, result } = state.apply(e.index, e.data);
      for (const op of o) ops.push(op);
      const produced = this.o.proposals.settle(e, result, this.o.leaderHint());
      if (produced) {
        metrics.produceRecords.inc(lbl, produced.records);
        metrics.produceBytes.inc(lbl, produced.bytes);
        metrics.commitLatency.observe(lbl, produced.seconds);
      }
    }
    const last = entries[entries.length - 1].index;
    if (confChanged) {
      await storage.append([], undefined, this.conf);
      this.log.setConf(this.conf);
      this.o.membershipChanged(this.conf);
      this.o.logger.info('membership_applied', {
        replica: this.o.id,
        voters: this.conf.voters,
        learners: this.conf.learners,
      });
      if (!this.conf.voters.includes(this.o.id) && !this.conf.learners.includes(this.o.id))
        this.o.logger.warn('replica_removed_from_group', { replica: this.o.id });
    }
    // Applied index and state changes in one batch. It rides on the next group commit; the
    // state in memory is already current, so nothing waits for it (order is kept by storage).
    // Once written, the batch's index rows are readable from storage: the state may drop them
    // from memory (until then they are the only copy a fetch can see).
    this.applyChain = storage
      .applyBatch(last, ops)
      .then(() => state.markWritten(last))
      .catch((err) => this.o.fatal(err));
    this.publishStateStats();
    metrics.highWatermark.set(lbl, state.nextOffset);
    metrics.logStartOffset.set(lbl, state.logStartOffset);
    metrics.logBytes.set(lbl, storage.stats().logBytes);
    this.o.applied(state.nextOffset !== before);
    if (state.logStartOffset !== startBefore) await this.compactToRetention(last);
  }

  private lastStats: StateStats | null = null;
  /** The partition state's tables: sizes (gauges) and what they dropped (counters, by delta). */
  private publishStateStats(): void {
    const { metrics, lbl } = this.o;
    const st = this.o.state.stats();
    const t = (kind: string) => ({ ...lbl, kind });
    metrics.stateCache.set(t('index'), st.cachedBytes);
    metrics.stateCache.set(t('dedup'), st.dedupBytes);
    metrics.stateEntries.set(t('index'), st.cachedRows);
    metrics.stateEntries.set(t('dedup'), st.dedupEntries);
    metrics.stateEntries.set(t('producers'), st.producers);
    metrics.stateEntries.set(t('groups'), st.groups);
    const p = this.lastStats;
    const inc = (labels: Record<string, string>, now: number, before: number | undefined) => {
      if (now > (before ?? 0)) metrics.stateDropped.inc({ ...lbl, ...labels } as never, now - (before ?? 0));
    };
    inc({ kind: 'dedup', reason: 'expired' }, st.dedupExpired, p?.dedupExpired);
    inc({ kind: 'dedup', reason: 'full' }, st.dedupEvicted, p?.dedupEvicted);
    inc({ kind: 'producers', reason: 'expired' }, st.producersExpired, p?.producersExpired);
    inc({ kind: 'groups', reason: 'expired' }, st.groupsExpired, p?.groupsExpired);
    if (st.cacheReads > (p?.cacheReads ?? 0))
      metrics.indexReads.inc({ ...lbl, result: 'cache' }, st.cacheReads - (p?.cacheReads ?? 0));
    if (st.diskReads > (p?.diskReads ?? 0))
      metrics.indexReads.inc({ ...lbl, result: 'disk' }, st.diskReads - (p?.diskReads ?? 0));
    this.lastStats = st;
  }

  /**
   * Retention applied: drop the Raft log below the first entry that still holds records.
   * `appliedTo` is the last entry of the batch just applied: the core's `applied` only moves at
   * advance(), and bounding by it would leave a whole batch of dead entries behind each time.
   */
  private async compactToRetention(appliedTo: number): Promise<void> {
    const applied = Math.max(appliedTo, this.stateIndex);
    const first = (await this.o.state.firstRetainedLogIndex()) ?? applied + 1;
    // A follower may be pulling the snapshot at the compaction point: keep it the point (and
    // every entry after it there) until the transfer ends (snapshot-transfer.ts, pinnedIndex).
    const pinned = this.o.transfer.pinnedIndex();
    const target = Math.min(first, applied + 1, this.log.lastIndex() + 1, pinned === undefined ? Infinity : pinned + 1);
    if (target <= this.log.firstIndex()) return;
    await this.applyChain;
    await this.o.storage.compactLog(target);
    this.log.compacted(target);
    this.o.metrics.retentionDeleted.inc(this.o.lbl);
    this.o.logger.info('log_compacted', {
      replica: this.o.id,
      first_index: target,
      log_start_offset: this.o.state.logStartOffset,
    });
  }

  /**
   * The snapshot a far-behind follower gets: positioned at the compaction point (firstIndex-1,
   * so every retained entry still reaches the follower by normal appends), carrying the state
   * machine as of the current applied index X. The follower skips state changes of entries
   * ≤ X when they arrive (the state already holds them) — the offset index in the state points
   * at those entries, so fetch serves them once they are there.
   *
   * The membership handed with it is the current one. Config entries after that point reach the
   * follower again and are re-applied on top of it; each change is an assignment (learner /
   * voter / absent) and ids are never reused, so re-applying a suffix of them to the state they
   * produced changes nothing (see applyConfChange).
   */
  async makeSnapshot(): Promise<Snapshot> {
    await this.applyChain;
    const first = this.log.firstIndex();
    const index = first - 1;
    const term = this.log.term(index);
    if (term === undefined) throw new Error(`no term for snapshot index ${index}`);
    if (index === BOOTSTRAP_INDEX) {
      // The log was never compacted: the compaction point is the group's founding snapshot, whose
      // state is empty, and every entry since is still here. The follower gets that empty state
      // and applies every entry itself (applying is deterministic: it ends with this replica's
      // state). Nothing of the state machine travels in one message — the offset index above
      // all, ~57 B a batch, which at ~290,000 batches no longer fitted a peer frame (issue 20).
      this.o.metrics.snapshotsSent.inc({ ...this.o.lbl, action: 'built' });
      return { meta: { index, term, conf: this.conf }, data: encodeSnapshotState([], index) };
    }
    // The state is not put in the message: it grows with the retained log (the offset index), and
    // the follower pulls it a chunk at a time from a fixed view of it (snapshot-transfer.ts).
    const { exportKey, meta } = await this.o.transfer.open(index);
    const stateIndex = Math.max(meta.index, this.stateIndex);
    this.o.metrics.snapshotsSent.inc({ ...this.o.lbl, action: 'built' });
    return { meta: { index, term, conf: this.conf }, data: encodeStreamedSnapshot(stateIndex, exportKey) };
  }

  async install(s: Snapshot): Promise<void> {
    const streamed = streamedSnapshotOf(s.data);
    // A compaction pass of the old state must not write after the install (its progress would win).
    this.o.state.invalidate();
    await this.applyChain;
    let stateIndex: number;
    if (streamed !== null) {
      // The driver stepped this snapshot only once its state was staged (snapshot-transfer.ts);
      // installing without it would leave an empty state under a log that says otherwise.
      const staged = this.o.transfer.stagedExport();
      if (staged !== streamed.exportKey)
        throw new Error(`snapshot ${streamed.exportKey} installed but ${staged ?? 'nothing'} is staged`);
      await this.o.storage.installStaged(s.meta);
      this.o.transfer.finished(streamed.exportKey);
      this.log.installed(s.meta);
      stateIndex = streamed.stateIndex;
      await this.loadState(Math.max(s.meta.index, stateIndex));
    } else {
      const inline = decodeSnapshotState(s.data);
      stateIndex = inline.stateIndex;
      await this.o.storage.installSnapshot(s.meta, inline.pairs);
      this.log.installed(s.meta);
      this.o.state.load(inline.pairs, Math.max(s.meta.index, stateIndex));
    }
    this.stateIndex = stateIndex;
    this.conf = s.meta.conf;
    this.o.membershipChanged(this.conf);
    this.o.metrics.snapshotsSent.inc({ ...this.o.lbl, action: 'installed' });
    this.o.logger.info('snapshot_installed', {
      replica: this.o.id,
      index: s.meta.index,
      state_index: stateIndex,
      high_watermark: this.o.state.nextOffset,
    });
    this.o.applied(true);
  }
}
