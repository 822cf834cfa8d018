import type { promClient } from '../common/metrics';
import { counter, gauge, histogram } from '../common/metrics';

/** The replica's metrics (DESIGN §9). Labels: topic and partition only — bounded by the topic count. */
export function replicaMetrics(reg: promClient.Registry) {
  const tp = ['topic', 'partition'] as const;
  return {
    produceRecords: counter(reg, {
      name: 'daftka_replica_produce_records_total',
      help: 'Records committed through this replica as leader',
      labelNames: tp,
    }),
    produceBytes: counter(reg, {
      name: 'daftka_replica_produce_bytes_total',
      help: 'Record bytes committed through this replica as leader',
      labelNames: tp,
    }),
    produceRequests: counter(reg, {
      name: 'daftka_replica_produce_requests_total',
      help: 'Produce requests by outcome',
      labelNames: ['topic', 'partition', 'code'] as const,
    }),
    fetchRecords: counter(reg, {
      name: 'daftka_replica_fetch_records_total',
      help: 'Records served by fetch',
      labelNames: tp,
    }),
    fetchBytes: counter(reg, {
      name: 'daftka_replica_fetch_bytes_total',
      help: 'Record bytes served by fetch',
      labelNames: tp,
    }),
    commitLatency: histogram(reg, {
      name: 'daftka_replica_commit_latency_seconds',
      help: 'Produce: propose to applied (quorum fsynced)',
      labelNames: tp,
    }),
    appendBatch: histogram(reg, {
      name: 'daftka_raft_append_batch_entries',
      help: 'Entries persisted per Raft Ready',
      labelNames: tp,
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    }),
    fsync: histogram(reg, {
      name: 'daftka_storage_fsync_duration_seconds',
      help: 'Synced RocksDB write (WAL + fsync) per group commit',
      labelNames: tp,
    }),
    leaderRecovery: histogram(reg, {
      name: 'daftka_raft_leader_recovery_seconds',
      help: 'On the replica that became leader: time since it last heard from a leader (how long the partition had none it could reach)',
      labelNames: tp,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    }),
    term: gauge(reg, { name: 'daftka_raft_term', help: 'Current Raft term', labelNames: tp }),
    leader: gauge(reg, { name: 'daftka_raft_leader', help: '1 when this replica leads its partition', labelNames: tp }),
    leaderChanges: counter(reg, {
      name: 'daftka_raft_leader_changes_total',
      help: 'Times this replica saw the leader change',
      labelNames: tp,
    }),
    commitIndex: gauge(reg, { name: 'daftka_raft_commit_index', help: 'Raft commit index', labelNames: tp }),
    appliedIndex: gauge(reg, { name: 'daftka_raft_applied_index', help: 'Raft applied index', labelNames: tp }),
    highWatermark: gauge(reg, {
      name: 'daftka_partition_high_watermark',
      help: 'Offset after the last committed record',
      labelNames: tp,
    }),
    logStartOffset: gauge(reg, {
      name: 'daftka_partition_log_start_offset',
      help: 'First retained offset',
      labelNames: tp,
    }),
    logBytes: gauge(reg, {
      name: 'daftka_partition_log_bytes',
      help: 'Bytes of the retained Raft log',
      labelNames: tp,
    }),
    voters: gauge(reg, { name: 'daftka_raft_voters', help: 'Voters in the configuration', labelNames: tp }),
    followerLag: gauge(reg, {
      name: 'daftka_raft_follower_lag_entries',
      help: 'Leader: entries each follower is behind (max over followers)',
      labelNames: tp,
    }),
    groupLag: gauge(reg, {
      name: 'daftka_group_lag_records',
      help: 'Records between a group committed offset and the high watermark',
      labelNames: ['topic', 'partition', 'group'] as const,
    }),
    groupLagDropped: counter(reg, {
      name: 'daftka_group_lag_series_dropped_total',
      help: 'Group lag queries not exported as a daftka_group_lag_records series: groupLagMaxGroups series exist already',
      labelNames: tp,
    }),
    stateCache: gauge(reg, {
      name: 'daftka_state_cache_bytes',
      help: 'Bytes held by the partition state per kind of row: the offset-index tail (bound indexCacheBytes), the dedup table (bound dedupMaxBytes) and the key-compaction map (bound compactionDedupeBufferBytes)',
      labelNames: ['topic', 'partition', 'kind'] as const,
    }),
    stateEntries: gauge(reg, {
      name: 'daftka_state_entries',
      help: 'Rows held in memory by the partition state per kind of row (index tail, dedup keys, producers, groups)',
      labelNames: ['topic', 'partition', 'kind'] as const,
    }),
    stateDropped: counter(reg, {
      name: 'daftka_state_dropped_total',
      help: 'Rows the partition state dropped since start, by kind and reason (expired on the state clock, or evicted because the table was full)',
      labelNames: ['topic', 'partition', 'kind', 'reason'] as const,
    }),
    indexReads: counter(reg, {
      name: 'daftka_index_reads_total',
      help: 'Offset-index reads since start, by where they were answered (result: cache: the in-memory tail; disk: RocksDB)',
      labelNames: ['topic', 'partition', 'result'] as const,
    }),
    retentionDeleted: counter(reg, {
      name: 'daftka_retention_advances_total',
      help: 'Log start advances by retention',
      labelNames: tp,
    }),
    compactionDirtyBytes: gauge(reg, {
      name: 'daftka_compaction_dirty_bytes',
      help: 'Key compaction lag: record bytes (as written) not yet through a compaction pass on this replica (0 unless cleanup includes compact)',
      labelNames: tp,
    }),
    compactionDirtyRatio: gauge(reg, {
      name: 'daftka_compaction_dirty_ratio',
      help: "Dirty bytes over dirty + clean bytes (the clean section's entries as stored after the last pass); the leader requests a pass at compactionMinDirtyPercent",
      labelNames: tp,
    }),
    compactionReclaimed: counter(reg, {
      name: 'daftka_compaction_reclaimed_bytes_total',
      help: 'Record bytes removed from the log by key compaction on this replica (superseded records and expired tombstones)',
      labelNames: tp,
    }),
    compactionRemoved: counter(reg, {
      name: 'daftka_compaction_removed_records_total',
      help: 'Records removed by key compaction on this replica, by reason (superseded, tombstone)',
      labelNames: ['topic', 'partition', 'reason'] as const,
    }),
    compactionPasses: counter(reg, {
      name: 'daftka_compaction_passes_total',
      help: 'Key compaction passes run on this replica, by result (done, partial: the dedupe buffer filled and the rest waits for the next pass, aborted)',
      labelNames: ['topic', 'partition', 'result'] as const,
    }),
    compactionDuration: histogram(reg, {
      name: 'daftka_compaction_pass_duration_seconds',
      help: 'Duration of one key compaction pass (map the dirty stretch, rewrite the log below its end)',
      labelNames: tp,
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
    }),
    compactionRequests: counter(reg, {
      name: 'daftka_compaction_requests_total',
      help: 'Key compaction requests this replica proposed as leader',
      labelNames: tp,
    }),
    snapshotsSent: counter(reg, {
      name: 'daftka_raft_snapshots_total',
      help: 'Snapshots built (leader) or installed (follower)',
      labelNames: ['topic', 'partition', 'action'] as const,
    }),
    snapshotTransferBytes: counter(reg, {
      name: 'daftka_raft_snapshot_transfer_bytes_total',
      help: 'Snapshot state moved in chunks between replicas: sent by a leader, received by a follower',
      labelNames: ['topic', 'partition', 'action'] as const,
    }),
    snapshotTransfersAborted: counter(reg, {
      name: 'daftka_raft_snapshot_transfers_aborted_total',
      help: 'Snapshot transfers a follower gave up (export_gone, timeout, replaced, stage_failed); the leader sends the snapshot again',
      labelNames: ['topic', 'partition', 'reason'] as const,
    }),
    membershipChanges: counter(reg, {
      name: 'daftka_raft_membership_changes_total',
      help: 'Membership changes proposed by this leader',
      labelNames: ['topic', 'partition', 'action'] as const,
    }),
    natsConnected: gauge(reg, { name: 'daftka_nats_connected', help: '1 while connected to NATS', labelNames: tp }),
    shed: counter(reg, {
      name: 'daftka_replica_shed_requests_total',
      help: 'Requests refused by a bound (OVERLOADED)',
      labelNames: ['topic', 'partition', 'reason'] as const,
    }),
    storageWaits: counter(reg, {
      name: 'daftka_replica_storage_waits_total',
      help: 'Appends the Raft loop sent again after storage refused them as over its queue bound (backpressure)',
      labelNames: tp,
    }),
    storageFreeBytes: gauge(reg, {
      name: 'daftka_storage_free_bytes',
      help: 'Free bytes on the filesystem of the data directory (statfs, every diskCheckIntervalMs)',
      labelNames: tp,
    }),
    storageCapacityBytes: gauge(reg, {
      name: 'daftka_storage_capacity_bytes',
      help: 'Size in bytes of the filesystem of the data directory (statfs)',
      labelNames: tp,
    }),
    storageDiskFull: gauge(reg, {
      name: 'daftka_storage_disk_full',
      help: '1 while the disk is full: free space below storageMinFreeBytes, or a write held after ENOSPC; produce is refused STORAGE_FULL',
      labelNames: tp,
    }),
    restarts: gauge(reg, {
      name: 'daftka_replica_start_time_seconds',
      help: 'Process start time (changes on restart)',
      labelNames: tp,
    }),
  };
}
export type ReplicaMetrics = ReturnType<typeof replicaMetrics>;
