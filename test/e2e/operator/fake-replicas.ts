/**
 * Scripted replicas for the operator e2e tests. kwok pods run no process, so this stands in for
 * the replica side of the NATS control channel, driven by what really exists in the cluster:
 * every scheduled, running pod of a partition "is" a replica and publishes status reports (and the
 * leader its announcements) on a real nats-server; it answers control requests (leadership
 * transfer, member removal) the way the replica does; and it models the replica's membership as
 * the leader keeps it (replica/membership/membership.ts): every configured slot (the StatefulSet's
 * RF + 1 ordinals) whose pod runs and is not a member joins as a learner, is promoted once caught
 * up (catchUpMs), and then replaces any older incarnation of its ordinal; a member the operator
 * removed is never added back. A pod with a new volume is a new incarnation.
 *
 * It also watches the operator's promises: the fewest live voters a partition ever had, the fewest
 * caught-up members (live voters: the model's voters are caught up, its learners are not), how many
 * partitions were disrupted at once, and whether a leader's pod was ever deleted while it led.
 */
import { connect, type NatsConnection } from 'nats';
import {
  SUBJECTS,
  type ControlReply,
  type LeaderAnnouncement,
  type StatusReport,
} from '../../../common/control-subjects';
import { RESOURCES, resourcePath, type KubeClient } from '../../../common/kube';
import { ControlVerifier, reportSig } from '../../../common/control-auth';
import { parseControlRequest } from '../../../common/control-subjects';
import { topicAdminSecret } from '../../../common/topic-credentials';
import { adminKeyOf, clientKeyOf, leaderSig } from '../../../protocol/rpc-auth';
import { LABELS } from '../../../operator/names';
import type { Obj } from './harness';

interface Member {
  incarnation: string;
  /** When this incarnation was first seen up as a learner (undefined: a voter). */
  learnerSinceMs?: number;
}

interface PartitionModel {
  topic: string;
  index: number;
  rf: number;
  term: number;
  leader: number | null;
  /** Voters by ordinal (an ordinal may also have a learner incarnation in `learners`). */
  voters: Map<number, Member>;
  learners: Map<number, Member>;
  /** Ids removed on the operator's request: never added back (ids are never reused). */
  removed: Set<string>;
  hw: number;
}

export interface TransferRequest {
  topic: string;
  partition: number;
  to: string;
  fromLeader: string | null;
  atMs: number;
  ok: boolean;
}

export class FakeReplicas {
  private nc: NatsConnection | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  readonly parts = new Map<string, PartitionModel>();
  readonly transfers: TransferRequest[] = [];
  /** Partition key → fewest live voters seen since tracking started. */
  readonly minLiveVoters = new Map<string, number>();
  /** Moments a tracked partition had fewer caught-up members (live voters) than its replication factor. */
  readonly belowRf: string[] = [];
  /** Member removals the operator asked for, with what the group was when it asked. */
  readonly removals: Array<{ key: string; id: string; ok: boolean; liveVotersBefore: number }> = [];
  /** Moments a tracked partition had fewer live voters than a majority of its voters. */
  readonly belowQuorum: string[] = [];
  /** Most partitions with a replica down or catching up at the same time, since tracking started. */
  maxDisrupted = 0;
  /** Ticks with more than one partition disrupted: what each was missing (diagnosis). */
  readonly overlaps: Array<{ atMs: number; partitions: string[] }> = [];
  /** Pods deleted while they led their partition (the operator moves leadership first). */
  readonly leaderPodsDeleted: string[] = [];
  private tracking = false;
  private trackedTopics: ReadonlySet<string> = new Set();
  private podsUp = new Map<string, { uid: string; node: string; incarnation: string }>();
  /** Chooses the first leader of a new partition among its live ordinals (default: the lowest). */
  chooseLeader: (key: string, live: Array<{ ordinal: number; node: string }>) => number = (_k, live) =>
    Math.min(...live.map((l) => l.ordinal));
  /** When false, nothing is published (reports go stale). */
  publishing = true;
  /** Control requests refused as a real replica would (unsigned or badly signed): why. */
  readonly refusedControls: string[] = [];
  private readonly verifiers = new Map<string, ControlVerifier>();
  private readonly lastReports = new Map<string, StatusReport>();
  /** The last status report published for a partition (`topic/index`), signed as sent. */
  lastReport(key: string): StatusReport | undefined {
    return this.lastReports.get(key);
  }
  /** Each topic's client key, from its peer Secret (as real replicas derive it): reports are signed with it. */
  private readonly clientKeys = new Map<string, Buffer>();

  constructor(
    private readonly o: {
      kube: KubeClient;
      natsUrl: string;
      namespace: string;
      intervalMs?: number;
      catchUpMs?: number;
      /** The installation's admin secret: control requests must be signed with each topic's admin key. */
      adminSecret?: string;
    },
  ) {}

  async start(): Promise<void> {
    this.nc = await connect({ servers: this.o.natsUrl, name: 'fake-replicas' });
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    this.nc.subscribe('daftka.v1.ctl.>', {
      callback: (_err, msg) => {
        const [, , , topic, partition] = msg.subject.split('.');
        const req = JSON.parse(dec.decode(msg.data)) as { op: string; to?: string };
        // As a real replica's announcer (replica/control/announcer.ts): the signature is checked first.
        if (this.o.adminSecret !== undefined) {
          const parsed = parseControlRequest(req);
          const key = `${topic}/${partition}`;
          if (!this.verifiers.has(key))
            this.verifiers.set(key, new ControlVerifier(adminKeyOf(topicAdminSecret(this.o.adminSecret, topic))));
          const why =
            typeof parsed === 'string'
              ? parsed
              : this.verifiers.get(key)!.check(topic, Number(partition), parsed, Date.now());
          if (why !== null) {
            this.refusedControls.push(`${key} ${req.op}: ${why}`);
            msg.respond(enc.encode(JSON.stringify({ v: 1, ok: false, code: 'FORBIDDEN', detail: why })));
            return;
          }
        }
        const reply = this.control(topic, Number(partition), req);
        if (reply) msg.respond(enc.encode(JSON.stringify(reply)));
      },
    });
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs ?? 300);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    while (this.ticking) await new Promise((r) => setTimeout(r, 20));
    await this.nc?.close();
  }

  /** Start (again) recording minLiveVoters / belowQuorum / maxDisrupted / leaderPodsDeleted for these topics. */
  track(topics: string[]): void {
    this.tracking = true;
    this.trackedTopics = new Set(topics);
    this.belowQuorum.length = 0;
    this.belowRf.length = 0;
    this.removals.length = 0;
    this.minLiveVoters.clear();
    this.maxDisrupted = 0;
    this.overlaps.length = 0;
    this.leaderPodsDeleted.length = 0;
  }

  id(p: PartitionModel, ordinal: number, m: Member): string {
    return `${ordinal}.${m.incarnation}`;
  }

  leaderId(key: string): string | null {
    const p = this.parts.get(key);
    if (!p || p.leader === null) return null;
    return this.id(p, p.leader, p.voters.get(p.leader)!);
  }

  /** The voters of a partition with the node of each one's pod (undefined: not running). */
  votersOf(key: string): Array<{ id: string; node: string | undefined }> {
    const p = this.parts.get(key);
    if (!p) return [];
    return [...p.voters].map(([o, m]) => ({
      id: this.id(p, o, m),
      node: this.podsUp.get(`${p.topic}-${p.index}-${o}`)?.node,
    }));
  }

  /** Node of the pod of each partition's leader. */
  leaderNodes(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [key, p] of this.parts)
      if (p.leader !== null) {
        const up = this.podsUp.get(`${p.topic}-${p.index}-${p.leader}`);
        if (up) out.set(key, up.node);
      }
    return out;
  }

  /** Elections won on `node`: each partition of `topics` with a live voter there gets it as leader, in a new term. */
  leadOn(node: string, topics: string[]): void {
    for (const p of this.parts.values()) {
      if (!topics.includes(p.topic)) continue;
      for (const o of p.voters.keys())
        if (this.podsUp.get(`${p.topic}-${p.index}-${o}`)?.node === node && p.leader !== o) {
          p.leader = o;
          p.term++;
        }
    }
  }

  private control(
    topic: string,
    partition: number,
    req: { op: string; to?: string; id?: string },
  ): ControlReply | null {
    const p = this.parts.get(`${topic}/${partition}`);
    if (!p || p.leader === null) return null; // no leader: nobody answers (the operator times out)
    if (req.op === 'removeMember' && req.id) return this.removeMember(p, req.id);
    if (req.op !== 'transferLeadership' || !req.to)
      return { v: 1, ok: false, code: 'INVALID_REQUEST', detail: `unsupported ${req.op}` };
    const ordinal = Number(req.to.split('.')[0]);
    const m = p.voters.get(ordinal);
    const live = m !== undefined && this.podsUp.has(`${topic}-${partition}-${ordinal}`);
    const ok = live && this.id(p, ordinal, m!) === req.to;
    this.transfers.push({
      topic,
      partition,
      to: req.to,
      fromLeader: this.leaderId(`${topic}/${partition}`),
      atMs: Date.now(),
      ok,
    });
    if (!ok) return { v: 1, ok: false, code: 'CONFLICT', detail: `${req.to} is not a live voter` };
    if (p.leader !== ordinal) {
      p.leader = ordinal;
      p.term++;
    }
    return { v: 1, ok: true };
  }

  /** The leader removes a member (voter or learner); a removed leader steps down. */
  private removeMember(p: PartitionModel, id: string): ControlReply {
    const key = `${p.topic}/${p.index}`;
    const ordinal = Number(id.split('.')[0]);
    const liveVotersBefore = [...p.voters].filter(([o, m]) => {
      const up = this.podsUp.get(`${p.topic}-${p.index}-${o}`);
      return up !== undefined && up.incarnation === m.incarnation;
    }).length;
    let found = false;
    for (const map of [p.voters, p.learners]) {
      const m = map.get(ordinal);
      if (m && this.id(p, ordinal, m) === id) {
        map.delete(ordinal);
        found = true;
      }
    }
    this.removals.push({ key, id, ok: found, liveVotersBefore });
    if (!found) return { v: 1, ok: false, code: 'CONFLICT', detail: `${id} is not a member` };
    p.removed.add(id);
    if (p.leader === ordinal && !p.voters.has(ordinal)) p.leader = null;
    return { v: 1, ok: true };
  }

  /** One step: read pods and claims, update the membership model, publish reports. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const selector = `${LABELS.managedBy}=daftka-operator`;
      const [pods, pvcs, partitions] = await Promise.all([
        this.o.kube.list<Obj>(resourcePath(RESOURCES.pods, { namespace: this.o.namespace }), {
          labelSelector: selector,
        }),
        this.o.kube.list<Obj>(resourcePath(RESOURCES.pvcs, { namespace: this.o.namespace }), {
          labelSelector: selector,
        }),
        this.o.kube.list<Obj>(resourcePath(RESOURCES.partitions, { namespace: this.o.namespace })),
      ]);
      // The replication factor of each partition (its spec): the first RF ordinals found the group.
      const rfOf = new Map<string, number>(
        partitions.items.map((p: Obj) => [`${p.spec.topic}/${p.spec.index}`, p.spec.replicas]),
      );
      const claimUid = new Map<string, string>(pvcs.items.map((c: Obj) => [c.metadata.name, c.metadata.uid]));
      const up = new Map<string, { uid: string; node: string; incarnation: string }>();
      for (const pod of pods.items) {
        if (pod.metadata.deletionTimestamp || pod.status?.phase !== 'Running' || !pod.spec?.nodeName) continue;
        const claim = claimUid.get(`data-${pod.metadata.name}`);
        if (!claim) continue;
        up.set(pod.metadata.name, { uid: pod.metadata.uid, node: pod.spec.nodeName, incarnation: claim.slice(0, 8) });
      }
      // A leader's pod that vanished or is being deleted while it led.
      for (const p of this.parts.values()) {
        if (p.leader === null) continue;
        const name = `${p.topic}-${p.index}-${p.leader}`;
        if (this.podsUp.has(name) && !up.has(name) && this.tracking && this.trackedTopics.has(p.topic))
          this.leaderPodsDeleted.push(name);
      }
      this.podsUp = up;
      // Real replicas sign status reports and announcements with the topic's client key.
      for (const topic of new Set([...this.parts.values()].map((p) => p.topic)))
        if (!this.clientKeys.has(topic)) {
          const secret = await this.o.kube.get<Obj>(
            resourcePath(RESOURCES.secrets, { namespace: this.o.namespace, name: `${topic}-peer-auth` }),
          );
          if (secret?.data?.secret)
            this.clientKeys.set(topic, clientKeyOf(Buffer.from(secret.data.secret, 'base64').toString(), topic));
        }

      const now = Date.now();
      const byPartition = new Map<string, Array<{ ordinal: number; node: string; incarnation: string }>>();
      for (const pod of pods.items) {
        const u = up.get(pod.metadata.name);
        if (!u) continue;
        const key = `${pod.metadata.labels[LABELS.topic]}/${pod.metadata.labels[LABELS.partition]}`;
        const list = byPartition.get(key) ?? [];
        list.push({
          ordinal: Number(pod.metadata.labels['apps.kubernetes.io/pod-index']),
          node: u.node,
          incarnation: u.incarnation,
        });
        byPartition.set(key, list);
      }
      const disrupted: string[] = [];
      for (const pod of pods.items) {
        const key = `${pod.metadata.labels[LABELS.topic]}/${pod.metadata.labels[LABELS.partition]}`;
        if (!this.parts.has(key))
          this.parts.set(key, {
            topic: pod.metadata.labels[LABELS.topic],
            index: Number(pod.metadata.labels[LABELS.partition]),
            rf: 0,
            term: 0,
            leader: null,
            voters: new Map(),
            learners: new Map(),
            removed: new Set(),
            hw: 0,
          });
      }
      // Partitions with no pod at all are gone (their topic was deleted).
      const withPods = new Set(
        pods.items.map((pod: Obj) => `${pod.metadata.labels[LABELS.topic]}/${pod.metadata.labels[LABELS.partition]}`),
      );
      for (const key of [...this.parts.keys()]) if (!withPods.has(key)) this.parts.delete(key);
      // A topic made again under the same name has a new peer Secret.
      const topics = new Set([...this.parts.values()].map((p) => p.topic));
      for (const t of [...this.clientKeys.keys()]) if (!topics.has(t)) this.clientKeys.delete(t);
      for (const [key, p] of this.parts) {
        const live = byPartition.get(key) ?? [];
        p.rf = rfOf.get(key) ?? p.rf;
        // Bootstrap: the first time the first RF ordinals are up, they form the group (the spare
        // slot's pod is held by its gate and never runs then).
        if (p.voters.size === 0) {
          const founders = live.filter((l) => l.ordinal < p.rf);
          if (founders.length < p.rf || p.rf === 0) continue;
          for (const l of founders) p.voters.set(l.ordinal, { incarnation: l.incarnation });
        }
        // A new incarnation of an ordinal joins as a learner; promoted after catchUpMs; the old one removed.
        for (const l of live) {
          const v = p.voters.get(l.ordinal);
          if (v?.incarnation === l.incarnation) continue;
          if (p.removed.has(`${l.ordinal}.${l.incarnation}`)) continue;
          const learner = p.learners.get(l.ordinal);
          if (!learner || learner.incarnation !== l.incarnation)
            p.learners.set(l.ordinal, { incarnation: l.incarnation, learnerSinceMs: now });
          else if (now - learner.learnerSinceMs! >= (this.o.catchUpMs ?? 1000) && p.leader !== null) {
            p.voters.set(l.ordinal, { incarnation: l.incarnation });
            p.learners.delete(l.ordinal);
          }
        }
        const liveVoters = [...p.voters].filter(([o, m]) =>
          live.some((l) => l.ordinal === o && l.incarnation === m.incarnation),
        );
        const quorum = Math.floor(p.voters.size / 2) + 1;
        if (p.leader !== null && !liveVoters.some(([o]) => o === p.leader)) {
          p.leader = null;
        }
        if (p.leader === null && liveVoters.length >= quorum) {
          const candidates = liveVoters.map(([o]) => ({ ordinal: o, node: live.find((l) => l.ordinal === o)!.node }));
          const chosen =
            p.term === 0 ? this.chooseLeader(key, candidates) : Math.min(...candidates.map((c) => c.ordinal));
          p.leader = candidates.some((c) => c.ordinal === chosen) ? chosen : candidates[0].ordinal;
          p.term++;
        }
        if (this.tracking && this.trackedTopics.has(p.topic)) {
          this.minLiveVoters.set(key, Math.min(this.minLiveVoters.get(key) ?? Infinity, liveVoters.length));
          if (liveVoters.length < p.rf)
            this.belowRf.push(
              `${key}: ${liveVoters.length} caught-up members of RF ${p.rf} at ${now} (voters [${[...p.voters].map(([o, m]) => `${o}.${m.incarnation}`).join(',')}], learners [${[...p.learners.keys()].join(',')}], live [${live.map((l) => `${l.ordinal}.${l.incarnation}`).join(',')}])`,
            );
          if (liveVoters.length < quorum)
            this.belowQuorum.push(`${key}: ${liveVoters.length}/${p.voters.size} live at ${now}`);
          if (liveVoters.length < p.voters.size || p.learners.size > 0)
            disrupted.push(
              `${key}: ${liveVoters.length}/${p.voters.size} voters live, learners [${[...p.learners.keys()].join(',')}], live ordinals [${live.map((l) => `${l.ordinal}.${l.incarnation}`).join(',')}], voters [${[...p.voters].map(([o, m]) => `${o}.${m.incarnation}`).join(',')}]`,
            );
        }
        if (this.publishing)
          this.publish(
            p,
            live,
            liveVoters.map(([o]) => o),
          );
      }
      if (this.tracking) {
        this.maxDisrupted = Math.max(this.maxDisrupted, disrupted.length);
        if (disrupted.length > 1 && this.overlaps.length < 20) this.overlaps.push({ atMs: now, partitions: disrupted });
      }
    } catch {
      // The apiserver being briefly busy only delays the next report.
    } finally {
      this.ticking = false;
    }
  }

  private publish(
    p: PartitionModel,
    live: Array<{ ordinal: number; incarnation: string }>,
    liveVoters: number[],
  ): void {
    const nc = this.nc;
    if (!nc) return;
    const enc = new TextEncoder();
    p.hw += 3;
    const voters = [...p.voters].map(([o, m]) => this.id(p, o, m));
    const learners = [...p.learners].map(([o, m]) => this.id(p, o, m));
    const leaderId = p.leader !== null ? this.id(p, p.leader, p.voters.get(p.leader)!) : null;
    for (const l of live) {
      const voter = p.voters.get(l.ordinal)?.incarnation === l.incarnation;
      const learner = p.learners.get(l.ordinal)?.incarnation === l.incarnation;
      if (!voter && !learner) continue;
      const id = `${l.ordinal}.${l.incarnation}`;
      const isLeader = id === leaderId;
      const lag: Record<string, number> = {};
      if (isLeader) {
        for (const [o, m] of p.voters) if (o !== p.leader) lag[this.id(p, o, m)] = liveVoters.includes(o) ? 0 : 50_000;
        for (const [o, m] of p.learners) lag[this.id(p, o, m)] = 500;
      }
      const report: StatusReport = {
        v: 1,
        topic: p.topic,
        partition: p.index,
        replicaId: id,
        incarnation: l.incarnation,
        role: isLeader ? 'leader' : voter ? 'follower' : 'learner',
        term: p.term,
        leaderId,
        lastIndex: p.hw + 10,
        commitIndex: p.hw + 10,
        appliedIndex: p.hw + 10,
        highWatermark: p.hw,
        logStartOffset: 0,
        logBytes: p.hw * 100,
        ...(isLeader ? { lag } : {}),
        voters: isLeader ? voters : [],
        learners: isLeader ? learners : [],
        ready: leaderId !== null,
        ts: Date.now(),
      };
      const key = this.clientKeys.get(p.topic);
      if (key) report.sig = reportSig(key, report);
      this.lastReports.set(`${p.topic}/${p.index}`, report);
      nc.publish(SUBJECTS.status(p.topic, p.index, id), enc.encode(JSON.stringify(report)));
      if (isLeader) {
        const a: LeaderAnnouncement = {
          v: 1,
          topic: p.topic,
          partition: p.index,
          term: p.term,
          leaderId: id,
          endpoint: `${p.topic}-${p.index}-${l.ordinal}:9092`,
          highWatermark: p.hw,
          ts: Date.now(),
        };
        if (key) a.sig = leaderSig(key, a);
        nc.publish(SUBJECTS.leader(p.topic, p.index), enc.encode(JSON.stringify(a)));
      }
    }
  }
}
