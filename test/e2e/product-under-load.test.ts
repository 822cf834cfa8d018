/**
 * The whole product on the real test apiserver, under produce load, with a checker (issue 17
 * item 3): the chart installed with helm (operator, gateway and NATS under the pod runner), a
 * Topic of 2 partitions × 3 replicas running the image's replica processes on four runner nodes,
 * and then, each while writers produce through the gateway with an Idempotency-Key on every write
 * (retried until acknowledged), one disruption after another:
 *
 *   1. an operator-driven roll of every partition (a Topic spec change of the pod template),
 *   2. a replica process killed (SIGKILL: the runner restarts it, it catches up),
 *   3. a replica's volume wiped (its data gone, the pod deleted: a new incarnation joins as a learner),
 *   4. a node drained (labelled daftka.io/drain=true and cordoned: replicas move off it, add then remove),
 *   5. partitions 2 → 3 (the new partition forms a group, the gateway produces to it),
 *   6. Topic deletion under deletionPolicy Retain (PVCs kept) and Delete (PVCs removed).
 *
 * After each, the load stops, every replica's whole log is read over its client port once they
 * agree on the high watermark, and the history checker (test/helpers/history.ts) runs over the
 * partition's acknowledged writes and those logs: no acknowledged write lost, none written twice,
 * offsets dense, all replicas equal. The write outage per partition (the longest time between two
 * acknowledgements while the disruption ran) is printed; docs/operator.md ("Measured on the e2e
 * tier") has the figures. Assertions are on correctness and state, never on speed: deadlines are
 * generous limits for convergence.
 *
 * The operator's pace is set for a test (rebalance pass every second, status every 2 s, transfer
 * cool-down 2 s): the same decisions as in production, taken sooner.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KubeClient, RESOURCES, resourcePath } from '../../common/kube';
import type { FinalLog } from '../helpers/history';
import { buildAndExportImage, type ExportedImage } from '../helpers/k8s-image';
import { startK8sEnv, type K8sEnv } from '../helpers/k8s-env';
import { GatewayLoad, readWholeLog, replicaClient } from '../helpers/k8s-gateway-load';
import { REPO_ROOT, requireTool } from '../helpers/k8s-tools';
import { natsLauncher, runCommand } from '../helpers/k8s-install';
import { PodRunner } from '../helpers/pod-runner';

jest.setTimeout(150_000);

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = any;
const NS = 'daftka';
const TOPIC = 'events';
const WORK = path.join(os.tmpdir(), 'daftka-image-e2e'); // shared with image.test.ts: one build
const RUNNER_DIR = path.join(WORK, 'load-runner');
const NODES = ['node-a', 'node-b', 'node-c', 'node-d']; // RF 3 + one free node for moves
const CLIENT_PORT = 9092;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started = Date.now();
const progress = (msg: string) =>
  process.stderr.write(`[under-load +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);

let env: K8sEnv;
let kube: KubeClient;
let image: ExportedImage;
let runner: PodRunner;
let load: GatewayLoad;
let clientKey: Buffer;
/** Printed at the end and in the report: what each disruption cost in writes. */
const outages: string[] = [];

async function eventually<T>(what: string, fn: () => Promise<T>, timeoutMs: number, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what}: ${(err as Error).message}\nrunner: ${runner?.errors.slice(-10).join('\n')}`);
      await sleep(everyMs);
    }
  }
}

const topicPath = (name = TOPIC) => resourcePath(RESOURCES.topics, { namespace: NS, name });
const getTopic = (name = TOPIC) => kube.get<Obj>(topicPath(name));
const getPartition = (p: number, topic = TOPIC) =>
  kube.get<Obj>(resourcePath(RESOURCES.partitions, { namespace: NS, name: `${topic}-${p}` }));
const getSts = (p: number) =>
  kube.get<Obj>(resourcePath(RESOURCES.statefulsets, { namespace: NS, name: `${TOPIC}-${p}` }));
const listPvcs = async (topic: string) =>
  (await kube.list<Obj>(resourcePath(RESOURCES.pvcs, { namespace: NS }), { labelSelector: `daftka.io/topic=${topic}` }))
    .items;

/** The replica containers of partition p the runner plays now (running or not, pods being deleted included). */
function replicaContainers(p: number, topic = TOPIC) {
  return runner
    .containers(NS)
    .filter(
      (c) =>
        c.container === 'replica' &&
        c.labels['daftka.io/topic'] === topic &&
        c.labels['daftka.io/partition'] === String(p),
    );
}

/** Replica processes of partition p that run and whose pod is not being deleted. */
const liveReplicas = (p: number, topic = TOPIC) => replicaContainers(p, topic).filter((c) => c.running && !c.stopping);

/** Every partition ready, every replica healthy, no operation in progress. */
async function waitSteady(partitions: number, timeoutMs: number): Promise<void> {
  await eventually(
    'topic steady',
    async () => {
      const t = await getTopic();
      expect(t?.status).toMatchObject({
        readyPartitions: partitions,
        underReplicatedPartitions: 0,
        leaderlessPartitions: 0,
      });
      for (let p = 0; p < partitions; p++) {
        const part = await getPartition(p);
        expect(part?.status?.operation).toBeUndefined();
        const healthy = (part?.status?.replicas ?? []).filter((r: Obj) => r.healthy && r.role !== 'learner');
        expect(healthy).toHaveLength(3);
        expect(liveReplicas(p)).toHaveLength(3);
      }
    },
    timeoutMs,
    1000,
  );
}

/**
 * The fewest live replica processes each partition had while `fn` ran (sampled every 100 ms), and
 * the write outage per partition over that time.
 */
async function underWatch<T>(
  what: string,
  partitions: number[],
  fn: () => Promise<T>,
): Promise<{ value: T; minLive: Map<number, number>; outageMs: Map<number, number> }> {
  const minLive = new Map(partitions.map((p) => [p, liveReplicas(p).length]));
  const timer = setInterval(() => {
    for (const p of partitions) minLive.set(p, Math.min(minLive.get(p)!, liveReplicas(p).length));
  }, 100);
  const from = Date.now();
  try {
    const value = await fn();
    const to = Date.now();
    const outageMs = new Map(partitions.map((p) => [p, load.outageMs(p, from, to)]));
    const line = `${what}: write outage per partition ${partitions
      .map((p) => `p${p} ${(outageMs.get(p)! / 1000).toFixed(2)} s`)
      .join(', ')} over ${((to - from) / 1000).toFixed(1)} s; fewest live replicas ${partitions
      .map((p) => `p${p} ${minLive.get(p)}`)
      .join(', ')}`;
    outages.push(line);
    process.stdout.write(`${line}\n`);
    return { value, minLive, outageMs };
  } finally {
    clearInterval(timer);
  }
}

/** Each live replica's whole log, read once they agree on the high watermark and one of them leads. */
async function replicaLogs(p: number): Promise<FinalLog[]> {
  return eventually(
    `partition ${p}: replicas caught up`,
    async () => {
      const live = liveReplicas(p);
      expect(live).toHaveLength(3);
      const clients = live.map((c) => ({ c, rc: replicaClient(c.podIP, CLIENT_PORT, clientKey) }));
      try {
        const sts = await Promise.all(
          clients.map(({ rc }) => rc.client.status({ topic: TOPIC, partition: p, requestId: 'catch-up' })),
        );
        expect(sts.filter((s) => s.role === 'leader')).toHaveLength(1);
        expect(new Set(sts.map((s) => s.highWatermark)).size).toBe(1);
        return await Promise.all(
          clients.map(({ c, rc }) => readWholeLog(rc.client, TOPIC, p, `${c.pod}@${c.pid ?? '?'}`)),
        );
      } finally {
        for (const { rc } of clients) rc.close();
      }
    },
    30_000,
  );
}

/** Stops the load and checks every partition's history against its replicas' logs. */
async function stopAndCheck(label: string, partitions: number[]): Promise<void> {
  await load.stop(30_000);
  for (const p of partitions) {
    const logs = await replicaLogs(p);
    const report = load.check(p, logs);
    process.stdout.write(
      `${label}: p${p} checked — ${report.stats.acked}/${report.stats.writes} writes acknowledged, ${report.stats.unknown} unknown, high watermark ${report.stats.finalHighWatermark}, ${logs.length} replica logs equal\n`,
    );
    expect(report.violations).toEqual([]);
    expect(report.stats.acked).toBeGreaterThan(0);
  }
  if (load.errors.size > 0) process.stdout.write(`${label}: failed attempts ${JSON.stringify([...load.errors])}\n`);
  load.errors.clear();
}

/** The operator's JSON log lines (its container log under the runner). */
async function operatorLog(): Promise<Obj[]> {
  const pods = (
    await kube.list<Obj>(resourcePath(RESOURCES.pods, { namespace: NS }), {
      labelSelector: 'app.kubernetes.io/component=operator',
    })
  ).items;
  return pods.flatMap((pod) => {
    const file = runner.logPath(NS, pod.metadata.name, 'operator');
    if (!fs.existsSync(file)) return [];
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Obj);
  });
}

/** The JSON log lines of every replica pod of partition p since `fromMs` (all incarnations: the files are appended). */
function replicaLogLines(p: number, fromMs = 0): Obj[] {
  const dir = path.join(RUNNER_DIR, 'logs');
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${NS}_${TOPIC}-${p}-`) && f.endsWith('_replica.log'))
    .flatMap((f) =>
      fs
        .readFileSync(path.join(dir, f), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => ({ ...(JSON.parse(l) as Obj), logFile: f }))
        .filter((l) => Date.parse(l.timestamp) >= fromMs),
    );
}

/** Which replica pod of partition p leads now, asked of the replicas themselves (highest term wins). */
async function leaderPodOf(p: number): Promise<string> {
  return eventually(
    `partition ${p}: a leader`,
    async () => {
      let best: { pod: string; term: number } | null = null;
      for (const c of liveReplicas(p)) {
        const rc = replicaClient(c.podIP, CLIENT_PORT, clientKey);
        try {
          const st = await rc.client.status({ topic: TOPIC, partition: p, requestId: 'who-leads' });
          if (st.role === 'leader' && (best === null || st.term > best.term)) best = { pod: c.pod, term: st.term };
        } catch {
          // restarting
        } finally {
          rc.close();
        }
      }
      if (best === null) throw new Error('no replica answers as leader');
      return best.pod;
    },
    30_000,
  );
}

beforeAll(async () => {
  image = buildAndExportImage(WORK);
  env = await startK8sEnv({ controlPlane: true });
  kube = new KubeClient({ kubeConfig: env.kc, qps: 100, burst: 200 });
  fs.rmSync(RUNNER_DIR, { recursive: true, force: true }); // logs and volumes of an earlier run
  const values = (await import('js-yaml')).load(
    fs.readFileSync(path.join(REPO_ROOT, 'helm/daftka/values.yaml'), 'utf8'),
  ) as Obj;
  const natsImage = `${values.nats.bundled.image.repository}:${values.nats.bundled.image.tag}`;
  runner = await PodRunner.start({
    kube,
    nodes: NODES,
    // A zone per node: replicas on distinct nodes are in distinct zones, so the rebalancer never
    // starts a zone co-location move of its own in the middle of a scenario.
    zones: NODES.map((n) => n.replace('node', 'zone')),
    image,
    workDir: RUNNER_DIR,
    apiServer: env.server,
    launchers: { [natsImage]: natsLauncher },
  });
  await runCommand(requireTool('helm'), [
    'install',
    'daftka',
    'helm/daftka',
    '-n',
    NS,
    '--create-namespace',
    '--set',
    'image.repository=localhost/daftka',
    '--set',
    'image.tag=e2e',
    // One operator and one gateway: the 2-core test machine runs everything.
    '--set',
    'operator.replicas=1',
    '--set',
    'gateway.replicas=1',
    // SIGTERM hands leadership over and flushes within grace − 5 s (the chart's default is 30 s).
    '--set',
    'replica.terminationGracePeriodSeconds=15',
    '--kubeconfig',
    env.kubeconfigPath,
  ]);
  // The operator's pace for a test (see the file comment); the Deployment rolls its pod once.
  await kube.patch(
    `/apis/apps/v1/namespaces/${NS}/deployments/daftka-operator`,
    {
      spec: {
        template: {
          spec: {
            containers: [
              {
                name: 'operator',
                env: [
                  { name: 'DAFTKA_OPERATOR_REBALANCE_INTERVAL_SECONDS', value: '1' },
                  { name: 'DAFTKA_OPERATOR_STATUS_INTERVAL_SECONDS', value: '2' },
                  { name: 'DAFTKA_OPERATOR_TRANSFER_COOLDOWN_SECONDS', value: '2' },
                ],
              },
            ],
          },
        },
      },
    },
    'strategic',
  );
  for (const d of ['daftka-operator', 'daftka-gateway'])
    await eventually(
      `Deployment ${d} rolled out`,
      async () => {
        const got = await kube.get<Obj>(`/apis/apps/v1/namespaces/${NS}/deployments/${d}`);
        expect(got?.status?.observedGeneration).toBe(got?.metadata?.generation);
        expect(got?.status).toMatchObject({ updatedReplicas: 1, readyReplicas: 1, replicas: 1 });
      },
      120_000,
    );
  await kube.apply(
    topicPath(),
    {
      apiVersion: 'daftka.io/v1alpha1',
      kind: 'Topic',
      metadata: { name: TOPIC, namespace: NS },
      spec: {
        partitions: 2,
        replicationFactor: 3,
        deletionPolicy: 'Retain',
        access: { producers: ['*'], consumers: ['*'], admins: ['admin'] },
      },
    },
    'kubectl',
  );
  await waitSteady(2, 120_000);
  const keys = await kube.get<Obj>(
    resourcePath(RESOURCES.secrets, { namespace: NS, name: 'daftka-gateway-client-keys' }),
  );
  clientKey = Buffer.from(Buffer.from(keys.data[TOPIC], 'base64').toString(), 'hex');
  const gw = await eventually(
    'gateway endpoint',
    async () => {
      const got = await runner.serviceEndpoint(NS, 'daftka-gateway', 80);
      if (!got) throw new Error('no ready gateway pod');
      return got;
    },
    30_000,
  );
  const secret = await kube.get<Obj>(resourcePath(RESOURCES.secrets, { namespace: NS, name: 'daftka-gateway-tokens' }));
  const tokens = JSON.parse(Buffer.from(secret.data['tokens.json'], 'base64').toString()).tokens as Record<
    string,
    string
  >;
  load = new GatewayLoad({
    baseUrl: `http://${gw.host}:${gw.port}`,
    token: Object.entries(tokens).find(([, who]) => who === 'admin')![0],
    topic: TOPIC,
  });
  // The gateway learns the topic from the catalog: wait for the first acknowledgements.
  load.start([0, 1]);
  await eventually(
    'first writes acknowledged',
    async () => {
      expect(load.acked(0)).toBeGreaterThan(20);
      expect(load.acked(1)).toBeGreaterThan(20);
    },
    60_000,
  );
  await stopAndCheck('baseline', [0, 1]);
  progress('installed, topic ready, baseline checked');
}, 10 * 60_000);

afterAll(async () => {
  await load?.stop(0);
  process.stdout.write(`--- write outages ---\n${outages.join('\n')}\n`);
  await runner?.stop();
  kube?.close();
  await env?.stop();
}, 60_000);

beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

describe('the product under produce load', () => {
  it('roll: a template change restarts every replica one at a time per partition, leader last, volumes kept', async () => {
    const revisions = await Promise.all([0, 1].map(async (p) => (await getSts(p)).status.updateRevision as string));
    const claims = new Map((await listPvcs(TOPIC)).map((c: Obj) => [c.metadata.name, c.metadata.uid]));
    const incarnations = async () =>
      new Map(
        (await Promise.all([0, 1].map((p) => getPartition(p)))).flatMap((part: Obj) =>
          (part.status.replicas as Obj[]).map((r) => [`${part.spec.index}/${r.ordinal}`, r.incarnation] as const),
        ),
      );
    const before = await incarnations();
    const linesBefore = (await operatorLog()).length;
    load.start([0, 1]);
    await sleep(1000);
    const rollStartedMs = Date.now();
    const { minLive } = await underWatch('roll', [0, 1], async () => {
      await kube.patch(topicPath(), { spec: { resources: { requests: { cpu: '100m', memory: '256Mi' } } } });
      await eventually(
        'every replica on the new template',
        async () => {
          for (const p of [0, 1]) {
            const sts = await getSts(p);
            expect(sts.status.updateRevision).not.toBe(revisions[p]);
            const pods = (
              await kube.list<Obj>(resourcePath(RESOURCES.pods, { namespace: NS }), {
                labelSelector: `daftka.io/topic=${TOPIC},daftka.io/partition=${p}`,
              })
            ).items.filter((x: Obj) => x.spec.nodeName);
            expect(pods).toHaveLength(3);
            for (const x of pods) expect(x.metadata.labels['controller-revision-hash']).toBe(sts.status.updateRevision);
          }
          await waitSteady(2, 0);
        },
        120_000,
        1000,
      );
    });
    await stopAndCheck('roll', [0, 1]);
    // Never below quorum: at most one replica process of a partition was down at any time.
    for (const p of [0, 1]) expect(minLive.get(p)).toBeGreaterThanOrEqual(2);
    // Volumes kept: the same claims, the same incarnations.
    expect(new Map((await listPvcs(TOPIC)).map((c: Obj) => [c.metadata.name, c.metadata.uid]))).toEqual(claims);
    expect(await incarnations()).toEqual(before);
    // The operator's own record: three restarts per partition, one operation at a time, and the
    // leader's pod deleted only after its leadership was handed over.
    const steps = (await operatorLog()).slice(linesBefore);
    for (const p of [0, 1]) {
      const key = `${TOPIC}/${p}`;
      const mine = steps.filter((l) => l.partition === key);
      const deleted = mine.filter((l) => l.message === 'rebalance_pod_deleted');
      expect(deleted.map((l) => `${l.pod} ${l.reason} volume_deleted=${l.volume_deleted}`).sort()).toEqual(
        [0, 1, 2].map((o) => `${TOPIC}-${p}-${o} revision volume_deleted=false`),
      );
      let open = 0;
      for (const l of mine) {
        if (l.message === 'rebalance_operation_started') expect(++open).toBe(1);
        if (l.message === 'rebalance_operation_finished') open--;
      }
      // No replica was stopped while it led: a leader stopped by SIGTERM hands over by itself and
      // says so; here the operator had moved leadership off before deleting the pod.
      expect(replicaLogLines(p, rollStartedMs).filter((l) => l.message === 'shutdown_transferring_leadership')).toEqual(
        [],
      );
      const transfers = mine.filter(
        (l) => l.message === 'rebalance_transfer_leadership' && l.reason === 'before-roll' && l.outcome === 'ok',
      );
      for (const t of transfers) {
        const pod = `${TOPIC}-${p}-${String(t.from).split('.')[0]}`;
        const at = mine.indexOf(t);
        expect(
          mine.findIndex((l, i) => i > at && l.message === 'rebalance_pod_deleted' && l.pod === pod),
        ).toBeGreaterThan(at);
      }
    }
  });

  it('a replica process killed (SIGKILL, the leader of partition 0) comes back and catches up', async () => {
    const part = await getPartition(0);
    const leaderPod = await leaderPodOf(0);
    const ordinal = Number(leaderPod.split('-').pop());
    const incarnation = (part.status.replicas as Obj[]).find((r) => r.ordinal === ordinal).incarnation;
    const restarts = replicaContainers(0).find((c) => c.pod === leaderPod)!.restartCount;
    load.start([0, 1]);
    await sleep(1000);
    const { minLive } = await underWatch('kill', [0], async () => {
      expect(runner.signalContainer(NS, leaderPod, 'replica', 'SIGKILL')).toBe(true);
      await eventually(
        'the killed replica back and healthy',
        async () => {
          const c = replicaContainers(0).find((x) => x.pod === leaderPod)!;
          expect(c.restartCount).toBe(restarts + 1);
          expect(c.running).toBe(true);
          await waitSteady(2, 0);
        },
        90_000,
        500,
      );
    });
    await stopAndCheck('kill', [0, 1]);
    expect(minLive.get(0)).toBe(2); // it was down, the other two kept the group
    // The same volume: the same incarnation, a healthy voter again.
    await eventually(
      'the same incarnation a healthy voter',
      async () => {
        const after = ((await getPartition(0)).status.replicas as Obj[]).find((r) => r.ordinal === ordinal);
        expect(after).toMatchObject({ incarnation, healthy: true });
        expect(after.role).not.toBe('learner');
      },
      30_000,
    );
  });

  it("a replica's volume wiped: it returns as a new incarnation, joins as a learner, catches up", async () => {
    const part = await getPartition(1);
    const follower = (part.status.replicas as Obj[]).find((r) => r.role === 'follower' && r.healthy);
    const pod = follower.pod as string;
    const oldId = follower.id as string;
    runner.wipeClaimBeforeNextStart(NS, `data-${pod}`);
    load.start([0, 1]);
    await sleep(1000);
    let newId = '';
    const { minLive } = await underWatch('volume wiped', [1], async () => {
      await kube.delete(resourcePath(RESOURCES.pods, { namespace: NS, name: pod }));
      await eventually(
        'a new incarnation healthy in the group',
        async () => {
          expect(runner.wipedClaims).toContain(`${NS}/data-${pod}`);
          const r = ((await getPartition(1)).status.replicas as Obj[]).find((x) => x.pod === pod);
          expect(r.id).not.toBe(oldId);
          expect(r).toMatchObject({ healthy: true });
          expect(r.role).not.toBe('learner');
          newId = r.id;
          await waitSteady(2, 0);
        },
        90_000,
        500,
      );
    });
    await stopAndCheck('volume wiped', [0, 1]);
    expect(minLive.get(1)).toBe(2);
    // The leader added the new incarnation as a learner and promoted it only after that (a learner
    // never votes: the wiped replica cannot vote again in a term its old self voted in), and the old
    // incarnation left the voters.
    const proposed = replicaLogLines(1).filter((l) => l.message === 'membership_change_proposed' && l.member === newId);
    expect(proposed.map((l) => l.action)).toEqual(['addLearner', 'promote']);
    const leaderPod = await leaderPodOf(1);
    const leader = liveReplicas(1).find((c) => c.pod === leaderPod)!;
    const rc = replicaClient(leader.podIP, CLIENT_PORT, clientKey);
    try {
      const st = await eventually(
        'voters',
        async () => {
          const s = await rc.client.status({ topic: TOPIC, partition: 1, requestId: 'voters' });
          expect(s.voters).toHaveLength(3);
          return s;
        },
        20_000,
      );
      expect(st.voters).toContain(newId);
      expect(st.voters).not.toContain(oldId);
    } finally {
      rc.close();
    }
    // Never a second vote in a term: every vote any replica pod cast (its old and new incarnation
    // alike, read from the pod's log across restarts) names one candidate per term.
    for (const p of [0, 1]) {
      const votes = replicaLogLines(p).filter((l) => l.message === 'vote_cast');
      expect(votes.length).toBeGreaterThan(0);
      const byPodTerm = new Map<string, Set<string>>();
      for (const v of votes) {
        const k = `${v.logFile} term ${v.term}`;
        byPodTerm.set(k, (byPodTerm.get(k) ?? new Set()).add(String(v.vote)));
      }
      const twice = [...byPodTerm].filter(([, c]) => c.size > 1).map(([k, c]) => `${k}: ${[...c].join(', ')}`);
      expect(twice).toEqual([]);
    }
  });

  it('drain: replicas leave a labelled, cordoned node one at a time, added elsewhere before removed', async () => {
    // The node with the most replicas of the topic.
    const byNode = new Map<string, string[]>();
    for (const p of [0, 1]) for (const c of liveReplicas(p)) byNode.set(c.node, [...(byNode.get(c.node) ?? []), c.pod]);
    const [node, leaving] = [...byNode].sort((a, b) => b[1].length - a[1].length)[0];
    const claims = new Map((await listPvcs(TOPIC)).map((c: Obj) => [c.metadata.name, c.metadata.uid]));
    const linesBefore = (await operatorLog()).length;
    const nodePath = resourcePath(RESOURCES.nodes, { name: node });
    load.start([0, 1]);
    await sleep(1000);
    const drainStartedMs = Date.now();
    try {
      const { minLive } = await underWatch(`drain of ${node} (${leaving.join(', ')})`, [0, 1], async () => {
        await kube.patch(nodePath, {
          metadata: { labels: { 'daftka.io/drain': 'true' } },
          spec: { unschedulable: true },
        });
        await eventually(
          'no replica left on the node',
          async () => {
            for (const p of [0, 1]) expect(liveReplicas(p).filter((c) => c.node === node)).toEqual([]);
            await waitSteady(2, 0);
          },
          120_000,
          1000,
        );
      });
      // Add, then remove: every partition kept RF replica processes running throughout.
      for (const p of [0, 1]) expect(minLive.get(p)).toBeGreaterThanOrEqual(3);
    } finally {
      await kube.patch(nodePath, { metadata: { labels: { 'daftka.io/drain': null } }, spec: { unschedulable: null } });
    }
    await stopAndCheck('drain', [0, 1]);
    // Each replica on the node was moved: removed from its group, then its pod and volume deleted;
    // one operation at a time per partition and across the topic (maxConcurrentMoves 1).
    const steps = (await operatorLog()).slice(linesBefore);
    const moved = steps.filter((l) => l.message === 'rebalance_pod_deleted' && l.reason === 'drain');
    expect(moved.map((l) => l.pod).sort()).toEqual([...leaving].sort());
    expect(moved.every((l) => l.volume_deleted === true && l.volume === 'deleted')).toBe(true);
    for (const pod of leaving) {
      const removed = steps.findIndex(
        (l) => l.message === 'rebalance_remove_member' && l.pod === pod && l.outcome === 'ok',
      );
      expect(removed).toBeGreaterThanOrEqual(0);
      expect(steps.findIndex((l) => l.message === 'rebalance_pod_deleted' && l.pod === pod)).toBeGreaterThan(removed);
      expect((await listPvcs(TOPIC)).find((c: Obj) => c.metadata.name === `data-${pod}`)?.metadata.uid).not.toBe(
        claims.get(`data-${pod}`),
      );
    }
    let open = 0;
    for (const l of steps) {
      if (l.message === 'rebalance_operation_started') expect(++open).toBe(1);
      if (l.message === 'rebalance_operation_finished') open--;
    }
    // RF voters per partition on nodes of their own, none on the drained node; no replica left
    // while it led (leadership was moved off first).
    for (const p of [0, 1]) {
      expect(
        replicaLogLines(p, drainStartedMs).filter((l) => l.message === 'shutdown_transferring_leadership'),
      ).toEqual([]);
      const nodes = liveReplicas(p).map((c) => c.node);
      expect(new Set(nodes).size).toBe(3);
      expect(nodes).not.toContain(node);
    }
  });

  it('partitions 2 → 3: the new partition forms a group and the gateway produces to it', async () => {
    load.start([0, 1]);
    await sleep(1000);
    await underWatch('partitions 2 → 3', [0, 1], async () => {
      await kube.patch(topicPath(), { spec: { partitions: 3 } });
      await waitSteady(3, 120_000);
    });
    load.add([2]);
    await eventually(
      'writes acknowledged on partition 2',
      async () => expect(load.acked(2)).toBeGreaterThan(20),
      60_000,
    );
    await stopAndCheck('partitions 2 → 3', [0, 1, 2]);
    const part = await getPartition(2);
    expect(part.status.leader).toBeTruthy();
    expect(new Set(liveReplicas(2).map((c) => c.node)).size).toBe(3);
  });

  it('Topic deletion: Retain keeps the PVCs, Delete removes them (and the finalizer waits for it)', async () => {
    // Retain, on a second topic, while the first one takes writes.
    const kept = 'kept';
    await kube.apply(
      topicPath(kept),
      {
        apiVersion: 'daftka.io/v1alpha1',
        kind: 'Topic',
        metadata: { name: kept, namespace: NS },
        spec: { partitions: 1, replicationFactor: 1, deletionPolicy: 'Retain' },
      },
      'kubectl',
    );
    await eventually(
      `Topic ${kept} ready`,
      async () => expect((await getTopic(kept))?.status?.readyPartitions).toBe(1),
      90_000,
      1000,
    );
    const keptClaims = (await listPvcs(kept)).map((c: Obj) => c.metadata.name).sort();
    expect(keptClaims).toEqual([`data-${kept}-0-0`, `data-${kept}-0-1`]); // RF 1 and the spare slot
    load.start([0, 1, 2]);
    await underWatch(`deletion of ${kept} (Retain)`, [0, 1, 2], async () => {
      await kube.delete(topicPath(kept));
      await eventually(
        `Topic ${kept} gone`,
        async () => {
          expect(await getTopic(kept)).toBeNull();
          expect(await kube.get(resourcePath(RESOURCES.statefulsets, { namespace: NS, name: `${kept}-0` }))).toBeNull();
          expect(liveReplicas(0, kept)).toEqual([]);
        },
        60_000,
        1000,
      );
    });
    await stopAndCheck(`deletion of ${kept}`, [0, 1, 2]);
    const left = await listPvcs(kept);
    expect(left.map((c: Obj) => c.metadata.name).sort()).toEqual(keptClaims);
    expect(left.every((c: Obj) => !c.metadata.deletionTimestamp)).toBe(true);

    // Delete: the topic under test itself, its load stopped and checked above.
    expect((await listPvcs(TOPIC)).length).toBeGreaterThan(0);
    await kube.patch(topicPath(), { spec: { deletionPolicy: 'Delete' } });
    await kube.delete(topicPath());
    await eventually(
      `Topic ${TOPIC} and its PVCs gone`,
      async () => {
        expect(await getTopic()).toBeNull();
        expect(await listPvcs(TOPIC)).toEqual([]);
        for (const p of [0, 1, 2]) expect(replicaContainers(p)).toEqual([]);
      },
      90_000,
      1000,
    );
  });
});
