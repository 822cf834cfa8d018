import { DaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { AddLearnerRequest, MemberRequest, TransferLeadershipRequest } from '../../common/partition-api';
import type { PartitionAdmin } from '../../protocol/methods';
import { RemotePartitionClient } from '../../protocol/partition-client';
import { RpcClient } from '../../protocol/rpc-client';
import { clientKeyOf } from '../../protocol/rpc-auth';
import { clientTlsOf } from '../../common/tls';
import { ordinalOf, type ResolvedReplicaConfig } from '../config';
import type { RaftDriver } from '../driver/raft-driver';
import { checkTarget } from '../partition/service';

/**
 * Who belongs to the partition's Raft group, and who leads it:
 *  - the admin methods of the client port (the operator's calls: transfer leadership, add a
 *    learner, promote it, remove a member), checked and handed to the driver;
 *  - founding a group, only when every configured replica's data directory is new;
 *  - the leader's reconcile loop that makes the membership match the configured replicas
 *    (a new incarnation joins as a learner, is promoted once caught up, then the old one goes),
 *    one change at a time so the group never drops below quorum;
 *  - a follower's poll of its leader's commit index, which readiness measures lag against.
 * Peers are asked over their client ports (`status`), never trusted beyond their answers.
 */

export interface MembershipOptions {
  rc: ResolvedReplicaConfig;
  driver: RaftDriver;
  logger: Logger;
  /** This replica's disk-full state (storage/disk-guard.ts): a full leader hands leadership on. */
  diskFull?: () => { reason: string } | null;
  /** Measure the free space now (before a handoff: the periodic value may be a second old). */
  recheckDisk?: () => Promise<void>;
  /**
   * Whether a new member may be added now. Key compaction: not while this leader's passes have a
   * tombstone drop to do — a member catching up meanwhile could receive an old value of a key from
   * this leader, and its tombstone already dropped (docs/compaction.md).
   */
  mayAddMember?: () => boolean;
}

/** A leader with a full disk hands leadership on at most this often (no ping-pong between full replicas). */
const DISK_HANDOFF_INTERVAL_MS = 30_000;

export class Membership implements PartitionAdmin {
  private readonly peerClients = new Map<number, { client: RemotePartitionClient; rpc: RpcClient }>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  /** The leader (and term) whose commit index we last asked for: readiness needs a fresh answer. */
  private polled: { leader: string; term: number } | null = null;
  private readonly rc: ResolvedReplicaConfig;
  private readonly driver: RaftDriver;
  private readonly logger: Logger;
  /**
   * Ids this leader removed on the operator's request (a move's old replica). The reconcile never
   * adds them back while their pod lingers: ids are never reused, so a removed id has no business
   * in the group again. Bounded: the oldest are forgotten first.
   */
  private readonly removed = new Set<string>();
  private static readonly REMOVED_MAX = 64;
  /** Leader: what each member said of its disk in its last status answer (id → full?, when). */
  private readonly memberDisk = new Map<string, { full: boolean; atMs: number }>();
  private lastDiskHandoffMs = 0;
  private readonly diskFull: () => { reason: string } | null;
  private readonly recheckDisk: () => Promise<void>;
  private readonly mayAddMember: () => boolean;

  constructor(o: MembershipOptions) {
    this.rc = o.rc;
    this.driver = o.driver;
    this.logger = o.logger;
    this.diskFull = o.diskFull ?? (() => null);
    this.recheckDisk = o.recheckDisk ?? (() => Promise.resolve());
    this.mayAddMember = o.mayAddMember ?? (() => true);
  }

  /** The leader and term of the last commit index a follower learned from its leader. */
  get leaderPolled(): { leader: string; term: number } | null {
    return this.polled;
  }

  start(): void {
    this.timer = setInterval(() => {
      void this.reconcile().then(() => this.handOffIfDiskFull());
      void this.pollLeaderCommit();
    }, this.rc.cfg.membershipCheckMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.peerClients.values()) c.rpc.close();
  }

  // ---- the operator's calls ----

  async transferLeadership(req: TransferLeadershipRequest): Promise<void> {
    checkTarget(this.rc, req.topic, req.partition);
    this.driver.transferLeadership(req.to);
  }

  async addLearner(req: AddLearnerRequest): Promise<void> {
    checkTarget(this.rc, req.topic, req.partition);
    if (!this.mayAddMember())
      throw new DaftkaError('UNAVAILABLE', 'a key-compaction pass with a tombstone drop is pending here; retry', {
        retryAfterMs: 1000,
      });
    this.driver.changeMembership('addLearner', req.id);
  }

  async promote(req: MemberRequest): Promise<void> {
    checkTarget(this.rc, req.topic, req.partition);
    const node = this.driver.requireLeader();
    const pr = node.status().progress?.[req.id];
    if (!pr || pr.match < node.commit)
      throw new DaftkaError(
        'CONFLICT',
        `${req.id} is not caught up (match ${pr?.match ?? 'unknown'}, commit ${node.commit}); promote it once it is`,
      );
    this.driver.changeMembership('promote', req.id);
  }

  async removeMember(req: MemberRequest): Promise<void> {
    checkTarget(this.rc, req.topic, req.partition);
    this.driver.changeMembership('remove', req.id);
    this.removed.add(req.id);
    if (this.removed.size > Membership.REMOVED_MAX) this.removed.delete(this.removed.values().next().value!);
  }

  // ---- founding ----

  /**
   * Found a new group (conf = {self}) only when every other configured replica answers that its
   * own data directory is new. A wiped ordinal 0 therefore never founds a second group next to
   * an existing one: its peers have state and it waits to be added back as a new incarnation.
   */
  async foundWhenPeersAreEmpty(isStopping: () => boolean): Promise<void> {
    // The first RF ordinals found a group; ordinals beyond them are the operator's spare slot,
    // whose pod does not run until a move needs it (docs/operator.md, "Replica moves").
    const others = this.rc.endpoints.filter(
      (e) => e.ordinal !== this.rc.self.ordinal && e.ordinal < this.rc.cfg.replicationFactor,
    );
    for (;;) {
      if (isStopping()) return;
      const answers = await Promise.all(others.map((e) => this.askStatus(e.ordinal, `bootstrap-${this.driver.id}`)));
      if (answers.every((a) => a !== null && a.voters.length === 0 && a.learners.length === 0 && a.lastIndex === 0))
        break;
      if (answers.some((a) => a !== null && (a.voters.length > 0 || a.learners.length > 0))) {
        this.logger.warn('bootstrap_skipped_group_exists', { replica: this.driver.id });
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await this.driver.found();
  }

  // ---- the leader's reconcile loop ----

  /**
   * Leader: make the membership match the configured replicas. Each configured ordinal is asked
   * for its id; a new id (a new replica, or a wiped one back as a new incarnation) is added as a
   * learner, promoted once caught up, and then the old incarnation of that ordinal is removed —
   * one change at a time, so the group never drops below quorum.
   */
  private async reconcile(): Promise<void> {
    const node = this.driver.raft;
    if (node === null || !this.driver.isLeader) return;
    const conf = this.driver.membership;
    const members = [...conf.voters, ...conf.learners];
    for (const id of this.memberDisk.keys()) if (!members.includes(id)) this.memberDisk.delete(id);
    try {
      for (const ep of this.rc.endpoints) {
        if (ep.ordinal === this.rc.self.ordinal) continue;
        const st = await this.askStatus(ep.ordinal, `members-${this.driver.id}`);
        if (st === null || node.role !== 'leader') continue;
        const id = st.replicaId;
        if (st.diskFull !== undefined) this.memberDisk.set(id, { full: st.diskFull, atMs: Date.now() });
        if (this.removed.has(id)) continue;
        if (!members.includes(id)) {
          // Asked again at the next check (a compaction pass takes seconds).
          if (!this.mayAddMember()) continue;
          this.driver.changeMembership('addLearner', id);
          return;
        }
        if (conf.learners.includes(id)) {
          const pr = node.status().progress?.[id];
          if (pr && pr.match >= node.commit) {
            this.driver.changeMembership('promote', id);
            return;
          }
          continue;
        }
        const stale = members.filter((m) => m !== id && ordinalOf(m) === ep.ordinal);
        if (stale.length > 0 && conf.voters.includes(id)) {
          this.driver.changeMembership('remove', stale[0]);
          return;
        }
      }
    } catch (err) {
      if (err instanceof DaftkaError && (err.code === 'CONFLICT' || err.code === 'NOT_LEADER')) return;
      this.logger.warn('membership_reconcile_failed', { replica: this.driver.id, error: (err as Error).message });
    }
  }

  /**
   * Leader with a full disk (below its reserve: it refuses produce STORAGE_FULL, but Raft still
   * runs): hand leadership to a caught-up voter that said, in its status answer of the last few
   * checks, that it has room — the partition stays writable while this volume is dealt with. At
   * most once per DISK_HANDOFF_INTERVAL_MS; if no voter has room (replicas fill alike), it stays.
   * After a real ENOSPC the Raft loop is held at the failed write, so a transfer's TimeoutNow could
   * not leave: the leader goes quiet instead (RaftDriver.goQuietForHandoff) and the others elect.
   */
  private async handOffIfDiskFull(): Promise<void> {
    if (this.driver.raft === null || !this.driver.isLeader || this.diskFull() === null) return;
    if (Date.now() - this.lastDiskHandoffMs < DISK_HANDOFF_INTERVAL_MS) return;
    // Space may have come back since the last periodic check: never hand off on a stale reading.
    await this.recheckDisk();
    const node = this.driver.raft;
    if (node === null || !this.driver.isLeader || this.diskFull() === null) return;
    const now = Date.now();
    const fresh = 2 * this.rc.cfg.membershipCheckMs + 500;
    const progress = node.status().progress ?? {};
    const candidates = this.driver.membership.voters
      .filter((id) => id !== this.driver.id)
      .filter((id) => {
        const d = this.memberDisk.get(id);
        return d !== undefined && !d.full && now - d.atMs <= fresh && (progress[id]?.match ?? 0) >= node.commit;
      })
      .sort((a, b) => (progress[b]?.match ?? 0) - (progress[a]?.match ?? 0));
    if (candidates.length === 0) return;
    this.lastDiskHandoffMs = now;
    if (this.diskFull()?.reason === 'enospc') {
      // Held at a failed write: a transfer's TimeoutNow would wait behind it. Go quiet instead.
      this.driver.goQuietForHandoff();
      this.logger.warn('disk_full_leadership_handoff', { replica: this.driver.id, to: null, by: 'quiet' });
      return;
    }
    try {
      this.driver.transferLeadership(candidates[0]);
      this.logger.warn('disk_full_leadership_handoff', { replica: this.driver.id, to: candidates[0] });
    } catch (err) {
      this.logger.warn('disk_full_leadership_handoff_failed', {
        replica: this.driver.id,
        to: candidates[0],
        error: (err as Error).message,
      });
    }
  }

  /** Follower: ask the leader for its commit index (readiness measures our lag against it). */
  private async pollLeaderCommit(): Promise<void> {
    const n = this.driver.raft;
    if (n === null || n.role === 'leader' || n.leader === null || this.polling || this.driver.isStopping) return;
    const o = ordinalOf(n.leader);
    if (o === undefined || o >= this.rc.endpoints.length) return;
    const asked = { leader: n.leader, term: n.term };
    this.polling = true;
    try {
      const st = await this.askStatus(o, `lag-${this.driver.id}`);
      if (st === null || st.replicaId !== asked.leader || st.term !== asked.term || st.role !== 'leader') return;
      this.driver.noteLeaderCommit(st.commitIndex);
      this.polled = asked;
    } finally {
      this.polling = false;
    }
  }

  private askStatus(ordinal: number, requestId: string) {
    const { topic, partition } = this.rc.cfg;
    return this.peerClient(ordinal)
      .status({ topic, partition, requestId })
      .catch(() => null);
  }

  private peerClient(ordinal: number): RemotePartitionClient {
    let c = this.peerClients.get(ordinal);
    if (!c) {
      const ep = this.rc.endpoints[ordinal];
      const { peerSecret, topic } = this.rc.cfg;
      // A replica asks its peers with the topic's client key (status only; never admin methods).
      const auth =
        peerSecret !== ''
          ? { auth: { keyFor: (t: string) => (t === topic ? clientKeyOf(peerSecret, t) : undefined) } }
          : {};
      const tls = this.rc.tls ? { tls: clientTlsOf(this.rc.tls, this.rc.cfg.tlsServerName || undefined) } : {};
      const rpc = new RpcClient({ host: ep.host, port: ep.clientPort, connectTimeoutMs: 500, ...auth, ...tls });
      c = { rpc, client: new RemotePartitionClient(rpc, { defaultTimeoutMs: 1000 }) };
      this.peerClients.set(ordinal, c);
    }
    return c.client;
  }
}
