/**
 * Raft core micro-benchmark: three in-process RaftNodes over MemoryStorage, a synchronous
 * driver (persist → send → apply → advance, no fsync, no network), the leader proposing batches
 * as fast as the group commits them. Measures committed entries per second — the cost of the
 * consensus logic itself, the ceiling the replica's storage and transport then lower.
 *
 *   matrix: batch (entries per propose) 1 | 10 | 100 | 1000  ×  codec off | on (every message
 *           round-trips through encodeMessage/decodeMessage, as it would on the wire)
 *   payload: 64-byte entries; up to 8 batches in flight (pipelining); logs compacted as they grow.
 *   reports: committed entries/s, MB/s of payload, Readies per second, CPU µs per entry.
 *
 * Run: npx tsx bench/raft-core.bench.ts [--quick]   (--quick: 0.5 s per cell)
 * Env: BENCH_SECONDS (per cell, default 3), BENCH_FILTER (substring of the cell name).
 */
import {
  MemoryStorage,
  RaftNode,
  decodeMessage,
  encodeMessage,
  type Message,
  type RaftConfig,
  type Ready,
} from '../raft';

const QUICK = process.argv.includes('--quick');
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 0.5 : 3));
const FILTER = process.env.BENCH_FILTER ?? '';
const PAYLOAD_BYTES = 64;
const MAX_BATCHES_IN_FLIGHT = 8;
const COMPACT_EVERY = 200_000;

interface Cell {
  batch: number;
  codec: boolean;
}

interface Result extends Cell {
  entriesPerSec: number;
  mbPerSec: number;
  readiesPerSec: number;
  cpuUsPerEntry: number;
}

class Group {
  readonly ids = ['n1.1', 'n2.1', 'n3.1'];
  readonly stores = new Map<string, MemoryStorage>();
  readonly nodes = new Map<string, RaftNode>();
  readonly applied = new Map<string, number>();
  queue: Message[] = [];
  readies = 0;

  constructor(private readonly codec: boolean) {
    let seed = 1;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (const id of this.ids) {
      const storage = MemoryStorage.bootstrap(this.ids);
      const config: RaftConfig = {
        id,
        storage,
        electionTicks: 10,
        heartbeatTicks: 1,
        random,
        preVote: true,
        checkQuorum: true,
        maxSizePerMsgBytes: 1 << 20,
        maxInflightMsgs: 256,
        maxInflightBytes: 64 << 20,
        maxUncommittedBytes: 256 << 20,
      };
      this.stores.set(id, storage);
      this.nodes.set(id, new RaftNode(config));
      this.applied.set(id, 1);
    }
  }

  /** One driver pass: every node processes its Ready (if any), then messages are delivered. */
  pump(): boolean {
    let busy = false;
    for (const [id, n] of this.nodes) {
      if (!n.hasReady()) continue;
      busy = true;
      this.process(id, n, n.ready());
    }
    if (this.queue.length > 0) {
      busy = true;
      const q = this.queue;
      this.queue = [];
      for (let m of q) {
        if (this.codec) m = decodeMessage(encodeMessage(m));
        this.nodes.get(m.to)!.step(m);
      }
    }
    return busy;
  }

  private process(id: string, n: RaftNode, rd: Ready): void {
    this.readies++;
    const st = this.stores.get(id)!;
    if (rd.snapshot !== undefined) st.applySnapshot(rd.snapshot);
    st.append(rd.entries);
    if (rd.hardState !== undefined) st.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(m);
    let applied = this.applied.get(id)!;
    if (rd.committed.length > 0) applied = rd.committed[rd.committed.length - 1].index;
    this.applied.set(id, applied);
    n.advance(rd);
    if (applied - (st.firstIndex() - 1) > COMPACT_EVERY) {
      st.createSnapshot(applied, n.conf, new Uint8Array(0));
      st.compact(applied);
      n.compact(applied);
    }
  }

  elect(): RaftNode {
    const leader = this.nodes.get(this.ids[0])!;
    for (let i = 0; i < 100 && leader.role !== 'leader'; i++) {
      leader.tick();
      while (this.pump());
    }
    if (leader.role !== 'leader') throw new Error('no leader');
    while (this.pump());
    return leader;
  }
}

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function runCell(cell: Cell): Result {
  const g = new Group(cell.codec);
  const leader = g.elect();
  const batch = new Array<Uint8Array>(cell.batch);
  for (let i = 0; i < cell.batch; i++) batch[i] = new Uint8Array(PAYLOAD_BYTES).fill(i & 0xff);
  const commit0 = leader.commit;
  const readies0 = g.readies;
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;
  let ticks = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 64; i++) {
      // Keep a bounded number of batches in flight: the leader's pipeline, not an unbounded queue.
      if (leader.lastIndex - leader.commit < MAX_BATCHES_IN_FLIGHT * cell.batch) leader.propose(batch);
      g.pump();
    }
    // Time passes (heartbeats, check-quorum) at a nominal rate: one tick per 64 passes.
    if (++ticks % 4 === 0) for (const n of g.nodes.values()) n.tick();
  }
  while (g.pump());
  const secs = (performance.now() - t0) / 1000;
  const entries = leader.commit - commit0;
  return {
    ...cell,
    entriesPerSec: entries / secs,
    mbPerSec: (entries * PAYLOAD_BYTES) / secs / 1e6,
    readiesPerSec: (g.readies - readies0) / secs,
    cpuUsPerEntry: (cpuMicros() - cpu0) / entries,
  };
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function main(): void {
  const cells: Cell[] = [];
  for (const codec of [false, true]) for (const batch of [1, 10, 100, 1000]) cells.push({ batch, codec });
  const selected = cells.filter((c) => `b${c.batch}/${c.codec ? 'codec' : 'direct'}`.includes(FILTER));
  console.log(
    `raft core: 3 in-process nodes, MemoryStorage, ${PAYLOAD_BYTES}-byte entries, ${SECONDS}s per cell, node ${process.version}`,
  );
  console.log('| batch | messages | committed entries/s | payload MB/s | Readies/s | CPU µs/entry |');
  console.log('| ----: | :------- | ------------------: | -----------: | --------: | -----------: |');
  for (const cell of selected) {
    const r = runCell(cell);
    console.log(
      `| ${r.batch} | ${r.codec ? 'encoded' : 'objects'} | ${fmt(r.entriesPerSec)} | ${fmt(r.mbPerSec, 1)} | ${fmt(r.readiesPerSec)} | ${fmt(r.cpuUsPerEntry, 2)} |`,
    );
  }
}

main();
