/**
 * The shapes of the gateway answers the CLI reads (gateway/api-spec.ts, gateway/leased-spec.ts,
 * docs/api/openapi.json). Written out here rather than imported: the CLI depends on the HTTP API,
 * never on the gateway's code.
 */

export interface PartitionError {
  code: string;
  detail: string;
}

export interface TopicsAnswer {
  topics: Array<{ name: string; partition_count: number }>;
}

export interface TopicPartition {
  partition: number;
  leader?: string | null;
  term?: number;
  high_watermark?: number;
  log_start_offset?: number;
  error?: PartitionError;
}

export interface TopicAnswer {
  name: string;
  partition_count: number;
  max_record_bytes: number;
  quotas: Record<string, number>;
  rights: string[];
  partitions: TopicPartition[];
}

export interface ProduceRecord {
  key?: string | null;
  key_b64?: string;
  /** Text, any other JSON value (stored as its JSON text), or null: a null value (tombstone). */
  value?: unknown;
  value_b64?: string;
  headers?: Record<string, string> | Array<{ name: string; value?: string; value_b64?: string }>;
  partition?: number;
  timestamp?: number;
  deliver_after_ms?: number;
  deliver_at?: number;
  ttl_ms?: number;
  expires_at?: number;
}

export interface ProduceAnswer {
  results: Array<{ partition: number; offset: number; status: 'written' | 'duplicate' }>;
}

export interface FetchAnswer<R> {
  records: R[];
  next_offset: number;
  high_watermark: number;
  log_start_offset: number;
}

export interface GroupPartition {
  partition: number;
  offset?: number | null;
  metadata?: string;
  high_watermark?: number;
  log_start_offset?: number;
  lag?: number;
  error?: PartitionError;
}

export interface GroupOffsetsAnswer {
  group: string;
  topic: string;
  lag: number;
  partitions: GroupPartition[];
}

export interface GroupAnswer {
  group: string;
  lag: number;
  topics: Array<{ topic: string; lag: number; partitions: GroupPartition[] }>;
}

export interface ResetAnswer {
  group: string;
  topic: string;
  to: string;
  dry_run: boolean;
  partitions: Array<{
    partition: number;
    previous_offset: number | null;
    new_offset: number;
    high_watermark: number;
    log_start_offset: number;
  }>;
}

export interface PolicyAnswer {
  group: string;
  topic: string;
  policy: Record<string, unknown>;
  override: Record<string, unknown>;
  partitions: Array<{
    partition: number;
    committed_offset?: number | null;
    high_watermark?: number;
    leased?: number;
    waiting?: number;
    done?: number;
    error?: PartitionError;
  }>;
}

export interface AckAnswer {
  results: Array<{ status: 'ok' | 'lease_expired' | 'stale_attempt' | 'invalid_token'; detail?: string }>;
}

export interface DeadLetter {
  id: string;
  topic: string;
  partition: number;
  offset: number;
  group: string;
  timestamp?: number;
  key?: string | null;
  key_b64?: string;
  value?: string;
  value_b64?: string;
  headers?: Array<{ name: string; value?: string; value_b64?: string }>;
  attempts: number;
  last_error?: string;
  error_class?: string;
  first_delivery_at?: number;
  last_delivery_at?: number;
  dead_lettered_at: number;
  state: 'active' | 'archived' | 'replayed';
  replay?: { job_id?: string; offset?: number; at?: number; topic?: string; partition?: number };
}

export interface DeadLettersAnswer {
  deadletters: DeadLetter[];
  next_cursor: string | null;
}

export interface JobAnswer {
  job_id: string;
  topic: string;
  state: 'running' | 'done' | 'incomplete';
  dry_run?: boolean;
  target?: string;
  last_error?: string;
  rate_per_sec?: number;
  matched: number;
  written: number;
  skipped: number;
  created_at?: number | null;
  finished_at?: number | null;
  partitions: Array<Record<string, unknown>>;
}
