/**
 * The README's "Install on Kubernetes", step by step, on the real test apiserver (issue 17 item 6):
 * the image built and exported (test/helpers/k8s-image.ts, the image test's cache), `helm install`
 * of the chart with the README's command (the operator and gateway Deployments and the bundled
 * NATS run under the pod runner, NATS as the machine's nats-server), `kubectl apply -f
 * examples/topic.yaml` (the file's objects applied server-side, as kubectl does), the Topic's
 * status reporting every partition ready (operator → StatefulSets → replica processes from the
 * image forming Raft groups → reports on NATS), then the README's produce and consume through the
 * gateway Service (reached as `kubectl port-forward svc/daftka-gateway 8080:80` would reach it).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import { KubeClient, RESOURCES, resourcePath } from '../../common/kube';
import { buildAndExportImage, type ExportedImage } from '../helpers/k8s-image';
import { startK8sEnv, type K8sEnv } from '../helpers/k8s-env';
import { REPO_ROOT, requireTool } from '../helpers/k8s-tools';
import { natsLauncher, runCommand } from '../helpers/k8s-install';
import { PodRunner } from '../helpers/pod-runner';

jest.setTimeout(180_000);

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = any;
const NS = 'daftka'; // the README's namespace and release name
const WORK = path.join(os.tmpdir(), 'daftka-image-e2e'); // shared with image.test.ts: one build
const RUNNER_DIR = path.join(WORK, 'install-runner');
const README = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: K8sEnv;
let kube: KubeClient;
let image: ExportedImage;
let runner: PodRunner;

async function eventually<T>(what: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what}: ${(err as Error).message}\nrunner: ${runner?.errors.slice(-20).join('\n')}`);
      await sleep(500);
    }
  }
}

/** One shell command of the README's "Install on Kubernetes" section (so the test follows the text). */
function readmeCommand(startsWith: string): string {
  const section = README.split('## Install on Kubernetes')[1]?.split('\n## ')[0] ?? '';
  const lines = section.split('\n');
  const i = lines.findIndex((l) => l.trimStart().startsWith(startsWith));
  if (i < 0) throw new Error(`README's Install on Kubernetes has no command starting with ${startsWith}`);
  let cmd = lines[i].trim();
  for (let j = i + 1; cmd.endsWith('\\'); j++) cmd = `${cmd.slice(0, -1).trim()} ${lines[j].trim()}`;
  return cmd.replace(/\s+#.*$/, '');
}

beforeAll(async () => {
  image = buildAndExportImage(WORK);
  env = await startK8sEnv({ controlPlane: true });
  kube = new KubeClient({ kubeConfig: env.kc, qps: 100, burst: 200 });
  fs.rmSync(RUNNER_DIR, { recursive: true, force: true }); // logs and volumes of an earlier run
  const values = yaml.load(fs.readFileSync(path.join(REPO_ROOT, 'helm/daftka/values.yaml'), 'utf8')) as Obj;
  const natsImage = `${values.nats.bundled.image.repository}:${values.nats.bundled.image.tag}`;
  runner = await PodRunner.start({
    kube,
    nodes: ['node-a', 'node-b', 'node-c'], // RF 3 with required anti-affinity: three nodes
    image,
    workDir: RUNNER_DIR,
    apiServer: env.server,
    launchers: { [natsImage]: natsLauncher },
  });
  await eventually(
    'nodes untainted',
    async () => {
      const nodes = (await kube.list<Obj>(resourcePath(RESOURCES.nodes))).items;
      for (const n of nodes)
        expect((n.spec?.taints ?? []).filter((t: Obj) => t.key.startsWith('node.kubernetes.io/'))).toEqual([]);
      expect(nodes).toHaveLength(3);
    },
    60_000,
  );
}, 25 * 60_000);

afterAll(async () => {
  await runner?.stop();
  kube?.close();
  await env?.stop();
}, 60_000);

describe("the README's Install on Kubernetes", () => {
  const deployment = (name: string) => kube.get<Obj>(`/apis/apps/v1/namespaces/${NS}/deployments/${name}`);

  it('helm install: the operator, the gateway and NATS run under the pod runner and turn Ready', async () => {
    const cmd = readmeCommand('helm install');
    expect(cmd).toMatch(/^helm install daftka helm\/daftka -n daftka --create-namespace/);
    // The README's command with the test's image (the runner runs the exported image whatever its name).
    const args = cmd
      .split(/\s+/)
      .slice(1)
      .map((a) =>
        a
          .replace(/^image\.repository=.*/, 'image.repository=localhost/daftka')
          .replace(/^image\.tag=.*/, 'image.tag=e2e'),
      );
    await runCommand(requireTool('helm'), [...args, '--kubeconfig', env.kubeconfigPath]);
    for (const d of ['daftka-operator', 'daftka-gateway'])
      await eventually(
        `Deployment ${d} ready`,
        async () => {
          const got = await deployment(d);
          expect(got?.status?.readyReplicas).toBe(got?.spec?.replicas);
        },
        90_000,
      );
    const nats = await kube.get<Obj>(resourcePath(RESOURCES.statefulsets, { namespace: NS, name: 'daftka-nats' }));
    expect(nats.status.readyReplicas).toBe(nats.spec.replicas);
  });

  it('kubectl apply -f examples/topic.yaml: the Topic reports every partition ready', async () => {
    expect(readmeCommand('kubectl apply')).toBe('kubectl apply -n daftka -f examples/topic.yaml');
    const docs = yaml.loadAll(fs.readFileSync(path.join(REPO_ROOT, 'examples/topic.yaml'), 'utf8')) as Obj[];
    expect(docs.map((d) => d.kind)).toEqual(['Topic']);
    const topic = docs[0];
    await kube.apply(
      resourcePath(RESOURCES.topics, { namespace: NS, name: topic.metadata.name }),
      { ...topic, metadata: { ...topic.metadata, namespace: NS } },
      'kubectl',
    );
    const started = Date.now();
    const status = await eventually(
      'Topic events ready',
      async () => {
        const got = await kube.get<Obj>(resourcePath(RESOURCES.topics, { namespace: NS, name: 'events' }));
        expect(got?.status?.readyPartitions).toBe(topic.spec.partitions);
        return got.status;
      },
      150_000,
    );
    process.stdout.write(`install: Topic events ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    expect(status).toMatchObject({ partitions: topic.spec.partitions, leaderlessPartitions: 0 });
    // Real replicas: RF pods per partition ran from the image (the spare slot stays gated, unscheduled).
    const pods = (await kube.list<Obj>(resourcePath(RESOURCES.pods, { namespace: NS }))).items.filter(
      (p: Obj) => p.metadata.labels?.['app.kubernetes.io/component'] === 'replica',
    );
    const running = pods.filter((p: Obj) => p.spec.nodeName);
    expect(running).toHaveLength(topic.spec.partitions * topic.spec.replicationFactor);
    expect(pods.length - running.length).toBe(topic.spec.partitions); // one gated spare per partition
  });

  it("produces and consumes through the gateway Service exactly as the README's curl commands do", async () => {
    const ep = await eventually(
      'gateway endpoint',
      async () => {
        const got = await runner.serviceEndpoint(NS, 'daftka-gateway', 80);
        if (!got) throw new Error('no ready gateway pod');
        return got;
      },
      30_000,
    );
    const base = `http://${ep.host}:${ep.port}`; // kubectl port-forward svc/daftka-gateway 8080:80
    // TOKEN=$(kubectl get secret … daftka-gateway-tokens … | sed …): the admin token the chart made.
    expect(readmeCommand('TOKEN=')).toContain('daftka-gateway-tokens');
    const secret = await kube.get<Obj>(
      resourcePath(RESOURCES.secrets, { namespace: NS, name: 'daftka-gateway-tokens' }),
    );
    const tokens = JSON.parse(Buffer.from(secret.data['tokens.json'], 'base64').toString()).tokens as Record<
      string,
      string
    >;
    const token = Object.entries(tokens).find(([, who]) => who === 'admin')![0];
    const produceCmd = readmeCommand('curl -s -X POST');
    const body = /-d '([^']+)'/.exec(produceCmd)![1];
    const idempotencyKey = /Idempotency-Key: ([^']+)'/.exec(produceCmd)![1];
    expect(produceCmd).toContain('localhost:8080/v1/topics/events/records');
    // The catalog reaches the gateway within a watch event of the Topic's readiness; a retry
    // under the same Idempotency-Key is safe (503/404 meanwhile).
    const produced = await eventually(
      'produce',
      async () => {
        const r = await fetch(`${base}/v1/topics/events/records`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'idempotency-key': idempotencyKey,
          },
          body,
        });
        const text = await r.text();
        if (r.status !== 200) throw new Error(`produce: HTTP ${r.status} ${text}`);
        return JSON.parse(text) as { results: Array<{ partition: number; offset: number; status: string }> };
      },
      30_000,
    );
    expect(produced.results).toEqual([{ partition: expect.any(Number), offset: 0, status: 'written' }]);
    // The README shows the answer it gets.
    expect(README).toContain(JSON.stringify(produced));
    const p = produced.results[0].partition;
    const fetchCmd = readmeCommand('curl -s "localhost:8080/v1/topics/events/partitions/');
    const url = /"localhost:8080([^"]+)"/.exec(fetchCmd)![1];
    expect(url).toBe(`/v1/topics/events/partitions/${p}/records?offset=0&encoding=utf8`);
    const r = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    const fetched = (await r.json()) as Obj;
    process.stdout.write(`install: fetched ${JSON.stringify(fetched)}\n`);
    expect(fetched).toMatchObject({ next_offset: 1, high_watermark: 1 });
    expect(fetched.records).toEqual([expect.objectContaining({ offset: 0, key: 'user-1', value: 'hello' })]);
    // The README shows the answer (but for its timestamp).
    expect(README).toContain(`# ${JSON.stringify(fetched).replace(/"timestamp":\d+/, '"timestamp":…')}`);
  });
});
