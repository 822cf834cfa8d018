/**
 * The pod runner (test/helpers/pod-runner.ts) playing kubelet for one Node of a real control plane:
 * a StatefulSet's replica pod runs the real image with its Secret-sourced environment, its own
 * loopback address and a claim's directory, turns Ready through its readiness probe, is reachable
 * by its stable DNS name from another pod, and on deletion gets SIGTERM, exits 0, comes back with
 * the same volume. Pods of a Deployment-like shape: each binds the same port on the wildcard
 * address and gets it on its own address, a startup probe holds readiness back, a claim without a
 * storage class is provisioned, the service account volume lets an in-cluster client authenticate,
 * and a Service's port leads to a ready pod's target port.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KubeClient, RESOURCES, resourcePath } from '../../common/kube';
import { buildAndExportImage, type ExportedImage } from '../helpers/k8s-image';
import { startK8sEnv, type K8sEnv } from '../helpers/k8s-env';
import { PodRunner } from '../helpers/pod-runner';

jest.setTimeout(120_000);

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = any;
const NS = 'runner-e2e';
const WORK = path.join(os.tmpdir(), 'daftka-image-e2e'); // shared with image.test.ts: one build
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: K8sEnv;
let kube: KubeClient;
let image: ExportedImage;
let runner: PodRunner;

async function eventually<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${(err as Error).message}\nrunner: ${runner?.errors.join('\n')}`);
      await sleep(300);
    }
  }
}

const pod = (name: string) => kube.get<Obj>(resourcePath(RESOURCES.pods, { namespace: NS, name }));
const logOf = (p: string, c: string) => {
  const f = runner.logPath(NS, p, c);
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
};

beforeAll(async () => {
  image = buildAndExportImage(WORK);
  env = await startK8sEnv({ controlPlane: true });
  kube = new KubeClient({ kubeConfig: env.kc, qps: 100, burst: 200 });
  fs.rmSync(path.join(WORK, 'runner'), { recursive: true, force: true }); // logs and volumes of an earlier run
  runner = await PodRunner.start({
    kube,
    nodes: ['runner-0'],
    image,
    workDir: path.join(WORK, 'runner'),
    apiServer: env.server,
  });
  await eventually(async () => {
    const n = await kube.get<Obj>(resourcePath(RESOURCES.nodes, { name: 'runner-0' }));
    expect((n.spec?.taints ?? []).filter((t: Obj) => t.key.startsWith('node.kubernetes.io/'))).toEqual([]);
  });
  const apply = (r: (typeof RESOURCES)[keyof typeof RESOURCES], obj: Obj) =>
    kube.apply(resourcePath(r, { namespace: NS, name: obj.metadata.name }), obj, 'e2e');
  await kube.apply(
    resourcePath(RESOURCES.namespaces, { name: NS }),
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    'e2e',
  );
  await eventually(() => kube.list(resourcePath(RESOURCES.secrets, { namespace: NS })));
  await kube.apply(
    '/api/v1/persistentvolumes/runner-pv-0',
    {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'runner-pv-0' },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        storageClassName: 'runner',
        persistentVolumeReclaimPolicy: 'Retain',
        hostPath: { path: '/nonexistent' },
      },
    },
    'e2e',
  );
  await apply(RESOURCES.secrets, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'demo-peer-auth' },
    data: { secret: Buffer.from('runner-test-peer-secret-0123456789abcdef').toString('base64') },
  });
  await apply(RESOURCES.services, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'demo' },
    spec: { clusterIP: 'None', selector: { app: 'demo' }, ports: [{ name: 'http', port: 9100 }] },
  });
  await kube.apply(
    resourcePath(RESOURCES.statefulsets, { namespace: NS, name: 'demo' }),
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'demo' },
      spec: {
        serviceName: 'demo',
        replicas: 1,
        selector: { matchLabels: { app: 'demo' } },
        template: {
          metadata: { labels: { app: 'demo' } },
          spec: {
            securityContext: { runAsUser: 10001, fsGroup: 10001 },
            terminationGracePeriodSeconds: 15,
            containers: [
              {
                name: 'replica',
                image: 'daftka:e2e',
                ports: [{ name: 'http', containerPort: 9100 }],
                env: [
                  { name: 'DAFTKA_TOPIC', value: 'demo' },
                  { name: 'DAFTKA_PARTITION', value: '0' },
                  { name: 'DAFTKA_ORDINAL', value: '0' },
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'DAFTKA_REPLICAS', value: `$(POD_NAME).demo.${NS}.svc.cluster.local:9093:9092` },
                  { name: 'DAFTKA_REPLICATION_FACTOR', value: '1' },
                  { name: 'DAFTKA_DATA_DIR', value: '/var/lib/daftka' },
                  { name: 'DAFTKA_LISTEN_HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                  { name: 'DAFTKA_HTTP_PORT', value: '9100' },
                  {
                    name: 'DAFTKA_PEER_SECRET',
                    valueFrom: { secretKeyRef: { name: 'demo-peer-auth', key: 'secret' } },
                  },
                ],
                readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 1 },
                livenessProbe: {
                  httpGet: { path: '/healthz', port: 'http' },
                  initialDelaySeconds: 5,
                  periodSeconds: 2,
                },
                volumeMounts: [{ name: 'data', mountPath: '/var/lib/daftka' }],
              },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data' },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: 'runner',
              resources: { requests: { storage: '1Gi' } },
            },
          },
        ],
      },
    },
    'e2e',
  );
}, 25 * 60_000);

afterAll(async () => {
  await runner?.stop();
  kube?.close();
  await env?.stop();
}, 60_000);

describe('pod runner', () => {
  let firstUid = '';

  it("runs a StatefulSet's replica from the image: own address, Secret in its env, Ready by its probe", async () => {
    const p = await eventually(async () => {
      const got = await pod('demo-0');
      expect(got?.status?.conditions?.find((c: Obj) => c.type === 'Ready')?.status).toBe('True');
      return got;
    }, 90_000);
    firstUid = p.metadata.uid;
    expect(p.spec.nodeName).toBe('runner-0');
    expect(p.status.podIP).toMatch(/^127\.64\./);
    expect(p.status.containerStatuses[0]).toMatchObject({ name: 'replica', ready: true, restartCount: 0 });
    const r = await fetch(`http://${p.status.podIP}:9100/readyz`);
    expect(r.status).toBe(200);
    expect(logOf('demo-0', 'replica')).toContain('"peer_auth":true'); // the Secret reached the env
  });

  it('another pod reaches it by its stable DNS name', async () => {
    await kube.apply(
      resourcePath(RESOURCES.pods, { namespace: NS, name: 'client' }),
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'client' },
        spec: {
          nodeName: 'runner-0',
          restartPolicy: 'Never',
          containers: [
            {
              name: 'fetch',
              image: 'daftka:e2e',
              command: ['node'],
              args: [
                '-e',
                `fetch('http://demo-0.demo.${NS}.svc.cluster.local:9100/readyz').then((r) => console.log('status', r.status), (e) => console.log('error', e.cause?.code ?? e.message))`,
              ],
            },
          ],
        },
      },
      'e2e',
    );
    await eventually(async () => expect(logOf('client', 'fetch')).toContain('status 200'), 30_000);
  });

  it('deletion: SIGTERM, the replica exits 0 within its grace period, and comes back with the same volume', async () => {
    const before = await pod('demo-0');
    const dataDir = fs.readdirSync(path.join(WORK, 'runner', 'pvc', NS));
    await kube.delete(resourcePath(RESOURCES.pods, { namespace: NS, name: 'demo-0' }));
    const back = await eventually(async () => {
      const got = await pod('demo-0');
      expect(got?.metadata.uid).not.toBe(firstUid);
      expect(got?.status?.conditions?.find((c: Obj) => c.type === 'Ready')?.status).toBe('True');
      return got;
    }, 90_000);
    expect(back.metadata.uid).not.toBe(before.metadata.uid);
    expect(runner.exits.filter((e) => e.uid === before.metadata.uid)).toEqual([
      { pod: `${NS}/demo-0`, uid: before.metadata.uid, container: 'replica', code: 0, signal: null },
    ]);
    // The same claim, so the same directory: nothing new under pvc/.
    expect(fs.readdirSync(path.join(WORK, 'runner', 'pvc', NS))).toEqual(dataDir);
    expect(logOf('demo-0', 'replica')).toMatch(
      /"message":"replica_stopping"[^\n]*"signal":"SIGTERM"|"signal":"SIGTERM"[^\n]*"message":"replica_stopping"/,
    );
  });

  it("wildcard binds get the pod's address; startup probe; provisioned claim; service account; Service endpoint", async () => {
    // Listens on 0.0.0.0:7070 after 3 s (the startup probe waits for it), answers with its pod
    // name, the data it wrote to its claim and who the apiserver says its service account is.
    const program = `
      const fs = require('fs'), https = require('https'), http = require('http');
      const dir = '/var/run/secrets/kubernetes.io/serviceaccount';
      fs.writeFileSync('/data/mark', process.env.POD);
      const review = () => new Promise((resolve, reject) => {
        const body = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
        const req = https.request({ host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT,
          path: '/apis/authentication.k8s.io/v1/selfsubjectreviews', method: 'POST', ca: fs.readFileSync(dir + '/ca.crt'),
          headers: { authorization: 'Bearer ' + fs.readFileSync(dir + '/token', 'utf8'), 'content-type': 'application/json' } },
          (res) => { let t = ''; res.on('data', (d) => (t += d)); res.on('end', () => resolve(JSON.parse(t).status.userInfo.username)); });
        req.on('error', reject); req.end(body);
      });
      setTimeout(() => http.createServer(async (q, r) => r.end(JSON.stringify({ pod: process.env.POD,
        mark: fs.readFileSync('/data/mark', 'utf8'), ns: fs.readFileSync(dir + '/namespace', 'utf8'), user: await review() })))
        .listen(7070, '0.0.0.0'), 3000);`;
    for (const name of ['web-0', 'web-1']) {
      await kube.apply(
        resourcePath(RESOURCES.pvcs, { namespace: NS, name: `${name}-data` }),
        {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: `${name}-data` },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
        'e2e',
      );
      await kube.apply(
        resourcePath(RESOURCES.pods, { namespace: NS, name }),
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name, labels: { app: 'web' } },
          spec: {
            securityContext: { runAsUser: 10001, fsGroup: 10001 },
            containers: [
              {
                name: 'web',
                image: 'daftka:e2e',
                command: ['node', '-e', program],
                env: [{ name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                ports: [{ name: 'web', containerPort: 7070 }],
                startupProbe: { tcpSocket: { port: 'web' }, periodSeconds: 1, failureThreshold: 30 },
                readinessProbe: { httpGet: { path: '/', port: 'web' }, periodSeconds: 1 },
                volumeMounts: [{ name: 'data', mountPath: '/data' }],
              },
            ],
            volumes: [{ name: 'data', persistentVolumeClaim: { claimName: `${name}-data` } }],
          },
        },
        'e2e',
      );
    }
    const seenRunningNotStarted = new Set<string>();
    const ready = await Promise.all(
      ['web-0', 'web-1'].map((name) =>
        eventually(async () => {
          const got = await pod(name);
          const cs = got?.status?.containerStatuses?.[0];
          if (cs?.state?.running && cs.started === false) seenRunningNotStarted.add(name);
          expect(got?.status?.conditions?.find((c: Obj) => c.type === 'Ready')?.status).toBe('True');
          return got;
        }, 90_000),
      ),
    );
    // Running but not started (the startup probe waiting for the port) before it turned Ready.
    expect([...seenRunningNotStarted].sort()).toEqual(['web-0', 'web-1']);
    for (const p of ready) {
      expect(p.status.containerStatuses[0]).toMatchObject({ started: true, ready: true, restartCount: 0 });
      const r = await fetch(`http://${p.status.podIP}:7070/`);
      expect(await r.json()).toEqual({
        pod: p.metadata.name,
        mark: p.metadata.name,
        ns: NS,
        user: `system:serviceaccount:${NS}:default`,
      });
    }
    // Each claim bound to a volume the runner made for it.
    for (const name of ['web-0', 'web-1']) {
      const claim = await kube.get<Obj>(resourcePath(RESOURCES.pvcs, { namespace: NS, name: `${name}-data` }));
      expect(claim.status.phase).toBe('Bound');
      expect(claim.spec.volumeName).toBe(`pod-runner-${claim.metadata.uid}`);
    }
    await kube.apply(
      resourcePath(RESOURCES.services, { namespace: NS, name: 'web' }),
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'web' }] },
      },
      'e2e',
    );
    const ep = await runner.serviceEndpoint(NS, 'web', 80);
    expect(ep?.port).toBe(7070);
    expect(ready.map((p: Obj) => p.status.podIP)).toContain(ep?.host);
  });
});
