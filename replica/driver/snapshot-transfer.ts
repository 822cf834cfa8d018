import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/log';
import { BufReader, BufWriter } from '../../protocol/bytes';
import type { ReplicaMetrics } from '../metrics';
import type { Message } from '../raft';
import { encodePairsBlock } from '../storage/codec';
import type { ReplicaStorage, StoredSnapshotMeta } from '../storage/storage';
import { encodeStateIndex, K_STATE_INDEX } from './snapshots';

/**
 * Snapshots of a large state, moved in chunks (issue 20). A snapshot of a retention-compacted
 * log carries the state machine — the offset index above all, ~57 B a batch — which past
 * ~290,000 retained batches no longer fitted one peer frame, and which the leader held whole in
 * memory to send. Now, as in KRaft's FetchSnapshot, the Snap message carries only a descriptor
 * (snapshots.ts) and the follower pulls the state from the leader a chunk at a time:
 *
 *  - Leader (source): `open` takes a RocksDB view of the state (an iterator: fixed however the
 *    state moves on) and names it by an export key unique to this process. Each chunk request
 *    is answered from that view: pairs after the asked key, up to `chunkBytes`. While a
 *    follower pulls, retention does not compact the log past the snapshot (`pinnedIndex`): the
 *    snapshot stays the one the leader sends, and every entry after it is still there to follow
 *    it. An export no follower asked for in `idleMs` is closed (the pin goes with it) and the
 *    next snapshot is built afresh.
 *  - Follower (sink): a Snap message whose descriptor names an export is held back from the
 *    Raft core while the state is pulled into a staged keyspace (storage), one request in
 *    flight, retried after `requestTimeoutMs`; when the last chunk is staged the held message is
 *    stepped, and if the core installs it, `installStaged` swaps the staged state in (crash-safe,
 *    engine.ts). One transfer at a time; a Snap of a higher term replaces a transfer in progress.
 *
 * Transfer frames ride the peer connections as PEER_MESSAGE payloads whose first byte is
 * TRANSFER_TAG (a Raft message starts with its codec version, 1). A replica before this change
 * counts them as malformed and drops them; it also cannot decode the descriptor (see
 * docs/operator.md, Upgrades).
 *
 *   request   u8 TAG · u8 1 · str16 exportKey · u32 seq · u8 hasAfter · [bytes32 after] · u32 maxBytes
 *   response  u8 TAG · u8 2 · str16 exportKey · u32 seq · u8 status (0 ok, 1 gone) · u8 done
 *             · u32 count · bytes32 lastKey · block (the rest: storage/codec.ts encodePairsBlock)
 *
 * The block is made by the leader's storage worker and written by the follower's: neither main
 * thread (both also serve produces) makes an object per pair; the follower's worker validates it.
 */

export const TRANSFER_TAG = 0xf5;
const KIND_REQUEST = 1;
const KIND_RESPONSE = 2;

export const SNAPSHOT_TRANSFER_DEFAULTS = {
  /** State bytes per chunk: well under a peer frame (16 MiB), big enough to keep the link busy. */
  chunkBytes: 1024 * 1024,
  /** A chunk request not answered in this long is sent again (frames can be dropped). */
  requestTimeoutMs: 5_000,
  /** Requests sent again without progress before the transfer is given up (the leader retries). */
  maxRetries: 6,
  /** An export nobody pulled from for this long is closed, and retention may compact again. */
  idleMs: 30_000,
};

export type TransferSettings = typeof SNAPSHOT_TRANSFER_DEFAULTS;

interface ChunkRequest {
  exportKey: string;
  seq: number;
  after: Uint8Array | null;
  maxBytes: number;
}

interface ChunkResponse {
  exportKey: string;
  seq: number;
  gone: boolean;
  done: boolean;
  count: number;
  lastKey: Uint8Array;
  block: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const NOTHING = { gone: false, done: false, count: 0, lastKey: EMPTY, block: EMPTY };

export function isTransferFrame(payload: Uint8Array): boolean {
  return payload.byteLength > 0 && payload[0] === TRANSFER_TAG;
}

function encodeRequest(r: ChunkRequest): Buffer {
  const w = new BufWriter(64 + (r.after?.byteLength ?? 0));
  w.u8(TRANSFER_TAG)
    .u8(KIND_REQUEST)
    .str16(r.exportKey)
    .u32(r.seq)
    .u8(r.after === null ? 0 : 1);
  if (r.after !== null) w.bytes32(r.after);
  return w.u32(r.maxBytes).finish();
}

function encodeResponse(r: ChunkResponse): Buffer {
  const w = new BufWriter(64 + r.exportKey.length + r.lastKey.byteLength);
  w.u8(TRANSFER_TAG)
    .u8(KIND_RESPONSE)
    .str16(r.exportKey)
    .u32(r.seq)
    .u8(r.gone ? 1 : 0)
    .u8(r.done ? 1 : 0);
  w.u32(r.count).bytes32(r.lastKey);
  return Buffer.concat([w.finish(), r.block]);
}

/** A transfer frame, validated (throws CodecError on anything malformed). */
export function decodeTransferFrame(
  payload: Buffer,
): { kind: 'request'; req: ChunkRequest } | { kind: 'response'; res: ChunkResponse } {
  const rd = new BufReader(payload);
  if (rd.u8('transfer.tag') !== TRANSFER_TAG) throw new RangeError('not a transfer frame');
  const kind = rd.u8('transfer.kind');
  const exportKey = rd.str16('transfer.exportKey');
  const seq = rd.u32('transfer.seq');
  if (kind === KIND_REQUEST) {
    const after = rd.u8('transfer.hasAfter') === 1 ? rd.bytes32('transfer.after') : null;
    const maxBytes = rd.u32('transfer.maxBytes');
    rd.end('transfer request');
    return { kind: 'request', req: { exportKey, seq, after, maxBytes } };
  }
  if (kind !== KIND_RESPONSE) throw new RangeError(`unknown transfer frame kind ${kind}`);
  const gone = rd.u8('transfer.status') === 1;
  const done = rd.u8('transfer.done') === 1;
  const count = rd.u32('transfer.count');
  const lastKey = rd.bytes32('transfer.lastKey');
  if (count > 0 && lastKey.byteLength === 0) throw new RangeError('transfer response: pairs without a last key');
  const block = rd.rest();
  return { kind: 'response', res: { exportKey, seq, gone, done, count, lastKey, block } };
}

export interface SnapshotTransferOptions {
  id: string;
  storage: ReplicaStorage;
  metrics: ReplicaMetrics;
  lbl: { topic: string; partition: string };
  logger: Logger;
  settings: TransferSettings;
  /** Send a transfer frame to a peer (dropped like any peer message when its queue is full). */
  send: (to: string, payload: Buffer) => void;
  /** Step a held Snap message into the Raft core now that its state is staged. */
  deliver: (msg: Message) => void;
  /** The open export was closed: the snapshot naming it must not be sent again. */
  exportClosed: () => void;
}

interface Download {
  exportKey: string;
  from: string;
  term: number;
  stateIndex: number;
  /** The newest Snap message naming this export: stepped when the state is staged. */
  msg: Message;
  after: Uint8Array | null;
  seq: number;
  sentMs: number;
  retries: number;
  chunks: number;
  bytes: number;
  startedMs: number;
  /** Every chunk staged: the held message was delivered; the core may install it. */
  staged: boolean;
  stagedMs: number;
  /** A stage write in progress (responses that arrive meanwhile are duplicates). */
  writing: boolean;
}

export class SnapshotTransfer {
  /** Unique to this process: an export key never names another process's export. */
  private readonly nonce = randomBytes(6).toString('hex');
  private current: { exportKey: string; exportId: number; index: number; lastUsedMs: number } | null = null;
  private download: Download | null = null;
  /**
   * The export installed last: a retry of its Snap that arrives after the install is stepped
   * at once (the core ignores a snapshot at or below its commit) instead of pulled again.
   */
  private installedExport: string | null = null;

  constructor(private readonly o: SnapshotTransferOptions) {}

  // ---- leader: the source ----

  /**
   * A view of the state for the snapshot at log index `index` (the compaction point); replaces
   * (closes) the previous one. Returns its export key and the applied index the view is at.
   */
  async open(index: number): Promise<{ exportKey: string; meta: StoredSnapshotMeta }> {
    const { exportId, meta } = await this.o.storage.exportOpen();
    if (this.current !== null) void this.o.storage.exportClose(this.current.exportId).catch(() => undefined);
    const exportKey = `${this.o.id}/${this.nonce}/${exportId}`;
    this.current = { exportKey, exportId, index, lastUsedMs: Date.now() };
    this.o.logger.info('snapshot_export_opened', { replica: this.o.id, export: exportKey, index, applied: meta.index });
    return { exportKey, meta };
  }

  /**
   * Retention must not compact the log past this index while a follower may still pull the
   * snapshot positioned there (undefined when nothing is being pulled).
   */
  pinnedIndex(): number | undefined {
    return this.current?.index;
  }

  private async serve(from: string, req: ChunkRequest): Promise<void> {
    const cur = this.current;
    let res: ChunkResponse;
    if (cur === null || cur.exportKey !== req.exportKey) {
      res = { ...NOTHING, exportKey: req.exportKey, seq: req.seq, gone: true };
    } else {
      cur.lastUsedMs = Date.now();
      const maxBytes = Math.max(1, Math.min(req.maxBytes, this.o.settings.chunkBytes));
      const c = await this.o.storage.exportChunk(cur.exportId, req.after, maxBytes);
      res = {
        exportKey: req.exportKey,
        seq: req.seq,
        gone: c.gone,
        done: c.done,
        count: c.count,
        lastKey: c.lastKey ?? EMPTY,
        block: c.block,
      };
    }
    const frame = encodeResponse(res);
    this.o.metrics.snapshotTransferBytes.inc({ ...this.o.lbl, action: 'sent' }, frame.byteLength);
    this.o.send(from, frame);
  }

  // ---- follower: the sink ----

  /**
   * A Snap message whose state is to be pulled. Returns true when the core may have it now (its
   * state is staged), false while it is held (the transfer starts or goes on).
   */
  offer(msg: Message, exportKey: string, stateIndex: number): boolean {
    if (exportKey === this.installedExport) return true;
    const d = this.download;
    if (d !== null && d.exportKey === exportKey) {
      if (d.staged) return true;
      d.msg = msg;
      return false;
    }
    const now = Date.now();
    // One transfer at a time: a newer leader's snapshot replaces one in progress; a retry from an
    // older term, or from the same term with another export, waits for it.
    if (d !== null && !d.staged && msg.term <= d.term) return false;
    // A staged state whose message was delivered may be about to be installed (the core took it
    // and the loop has not reached it yet — milliseconds, unless a write is stuck): it is not
    // replaced for two request timeouts, by when the core has had its say. (Its Snap may also
    // have been stale — a leader that lost its term meanwhile — and then the new leader's waits
    // that long.) Installing a snapshot whose state was replaced meanwhile is fatal (applier.ts):
    // crash-only, the restarted replica still holds its old state and gets a snapshot again.
    if (d !== null && d.staged && now - d.stagedMs < 2 * this.o.settings.requestTimeoutMs) return false;
    if (d !== null && !d.staged) this.abort('replaced');
    this.download = {
      exportKey,
      from: msg.from,
      term: msg.term,
      stateIndex,
      msg,
      after: null,
      seq: 0,
      sentMs: now,
      retries: 0,
      chunks: 0,
      bytes: 0,
      startedMs: now,
      staged: false,
      stagedMs: 0,
      writing: true,
    };
    const started = this.download;
    this.o.logger.info('snapshot_transfer_started', { replica: this.o.id, from: msg.from, export: exportKey });
    this.o.storage.stageBegin().then(
      () => {
        if (this.download !== started) return;
        started.writing = false;
        this.request(started);
      },
      (err) => this.failed(started, err),
    );
    return false;
  }

  /** The export whose state is staged and may be installed (null when none). */
  stagedExport(): string | null {
    return this.download?.staged ? this.download.exportKey : null;
  }

  /** The staged state was installed (or the core declined it): the transfer is over. */
  finished(exportKey: string): void {
    if (this.download?.exportKey === exportKey) this.download = null;
    this.installedExport = exportKey;
  }

  private request(d: Download): void {
    d.seq++;
    d.sentMs = Date.now();
    this.o.send(
      d.from,
      encodeRequest({ exportKey: d.exportKey, seq: d.seq, after: d.after, maxBytes: this.o.settings.chunkBytes }),
    );
  }

  private received(from: string, res: ChunkResponse, frameBytes: number): void {
    const d = this.download;
    // A late answer to an earlier request, or to a transfer given up: nothing to do.
    if (d === null || d.staged || d.writing || d.exportKey !== res.exportKey || d.seq !== res.seq || d.from !== from)
      return;
    this.o.metrics.snapshotTransferBytes.inc({ ...this.o.lbl, action: 'received' }, frameBytes);
    if (res.gone) {
      this.abort('export_gone');
      return;
    }
    const last = res.count > 0 ? Buffer.from(res.lastKey) : d.after;
    d.writing = true;
    this.o.storage
      .stageBlock(res.block)
      // The state index written with the exported state may be older than the one the snapshot
      // was made at: the descriptor's wins (staged last, so it is what lands).
      .then(() =>
        res.done
          ? this.o.storage.stageBlock(encodePairsBlock([[K_STATE_INDEX, encodeStateIndex(d.stateIndex)]]))
          : undefined,
      )
      .then(
        () => {
          if (this.download !== d) return;
          d.writing = false;
          d.retries = 0;
          d.chunks++;
          d.bytes += frameBytes;
          d.after = last;
          if (!res.done) {
            this.request(d);
            return;
          }
          d.staged = true;
          d.stagedMs = Date.now();
          this.o.metrics.snapshotsSent.inc({ ...this.o.lbl, action: 'transferred' });
          this.o.logger.info('snapshot_transfer_staged', {
            replica: this.o.id,
            from: d.from,
            export: d.exportKey,
            chunks: d.chunks,
            bytes: d.bytes,
            duration_ms: Date.now() - d.startedMs,
          });
          this.o.deliver(d.msg);
        },
        (err: unknown) => this.failed(d, err),
      );
  }

  private failed(d: Download, err: unknown): void {
    if (this.download !== d) return;
    this.o.logger.warn('snapshot_transfer_stage_failed', {
      replica: this.o.id,
      export: d.exportKey,
      error: (err as Error).message,
    });
    this.abort('stage_failed');
  }

  private abort(reason: string): void {
    const d = this.download;
    if (d === null) return;
    this.download = null;
    this.o.metrics.snapshotTransfersAborted.inc({ ...this.o.lbl, reason });
    this.o.logger.warn('snapshot_transfer_aborted', {
      replica: this.o.id,
      from: d.from,
      export: d.exportKey,
      reason,
      chunks: d.chunks,
      bytes: d.bytes,
    });
  }

  // ---- both ----

  /** A transfer frame from a peer; malformed input is logged and dropped, never thrown. */
  onFrame(from: string, payload: Buffer): void {
    let f: ReturnType<typeof decodeTransferFrame>;
    try {
      f = decodeTransferFrame(payload);
    } catch (err) {
      this.o.logger.warn('snapshot_transfer_frame_malformed', { from, error: (err as Error).message });
      return;
    }
    if (f.kind === 'request')
      this.serve(from, f.req).catch((err) =>
        this.o.logger.warn('snapshot_export_read_failed', { replica: this.o.id, from, error: (err as Error).message }),
      );
    else this.received(from, f.res, payload.byteLength);
  }

  /** Every driver tick: resend an unanswered request, close an export nobody pulls from. */
  tick(now: number): void {
    const d = this.download;
    if (d !== null && !d.staged && !d.writing && now - d.sentMs >= this.o.settings.requestTimeoutMs) {
      if (++d.retries > this.o.settings.maxRetries) this.abort('timeout');
      else this.request(d);
    }
    const cur = this.current;
    if (cur !== null && now - cur.lastUsedMs >= this.o.settings.idleMs) {
      this.current = null;
      void this.o.storage.exportClose(cur.exportId).catch(() => undefined);
      this.o.logger.info('snapshot_export_closed', { replica: this.o.id, export: cur.exportKey, reason: 'idle' });
      this.o.exportClosed();
    }
  }

  /** Shutdown: nothing is pulled or served any more. */
  close(): void {
    this.download = null;
    this.current = null;
  }
}
