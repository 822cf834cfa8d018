/**
 * Smoke test of the Kubernetes test environment (DESIGN.md §12, tier 4): a real etcd + kube-apiserver
 * + kube-controller-manager + kube-scheduler and kwok with three fake Nodes in three zones, all built
 * from source by scripts/k8s-tools/build.sh, plus the helm, kubeconform and promtool the later tiers use.
 */
import * as k8s from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startK8sEnv, type K8sEnv } from '../helpers/k8s-env';
import { ensureKubeconformSchemas, fetchOpenApiV2 } from '../helpers/k8s-schemas';
import { readToolVersions, REPO_ROOT, runTool, runToolResult } from '../helpers/k8s-tools';

const FIELD_MANAGER = 'daftka-smoke';
const NAMESPACE = 'smoke';
const versions = readToolVersions();

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Retries fn until it stops throwing (new API groups take a moment to be served), or throws its last error. */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

/** The ApiException a call is expected to fail with. */
async function apiError(call: Promise<unknown>): Promise<k8s.ApiException<unknown>> {
  try {
    await call;
  } catch (err) {
    if (err instanceof k8s.ApiException) return err;
    throw err;
  }
  throw new Error('the API call was expected to fail, and succeeded');
}

const widgetCrd: k8s.V1CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.smoke.daftka.test' },
  spec: {
    group: 'smoke.daftka.test',
    scope: 'Namespaced',
    names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['minReplicas', 'maxReplicas'],
                properties: { minReplicas: { type: 'integer' }, maxReplicas: { type: 'integer' } },
                x_kubernetes_validations: [
                  { rule: 'self.minReplicas <= self.maxReplicas', message: 'minReplicas must not exceed maxReplicas' },
                ],
              },
            },
          },
        },
      },
    ],
  },
};

function widget(name: string, minReplicas: number, maxReplicas: number): k8s.KubernetesObject & { spec: object } {
  return {
    apiVersion: 'smoke.daftka.test/v1',
    kind: 'Widget',
    metadata: { name, namespace: NAMESPACE },
    spec: { minReplicas, maxReplicas },
  };
}

function statefulSet(replicas: number): k8s.V1StatefulSet {
  const labels = { app: 'smoke' };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'smoke', namespace: NAMESPACE },
    spec: {
      serviceName: 'smoke',
      replicas,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          // One replica per Node: the scheduler must spread them over the fake Nodes.
          affinity: {
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [
                { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: labels } },
              ],
            },
          },
          containers: [{ name: 'replica', image: 'daftka/replica:smoke', ports: [{ containerPort: 9092 }] }],
        },
      },
    },
  };
}

describe('Kubernetes test environment', () => {
  let env: K8sEnv;
  let objects: k8s.KubernetesObjectApi;

  beforeAll(async () => {
    env = await startK8sEnv({ nodes: 3, zones: ['zone-a', 'zone-b', 'zone-c'] });
    objects = k8s.KubernetesObjectApi.makeApiClient(env.kc);
    await env.kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
  }, 300_000);

  afterAll(async () => {
    await env?.stop();
  }, 60_000);

  test('the apiserver reports the pinned Kubernetes version and listens on loopback only', async () => {
    const info = await env.kc.makeApiClient(k8s.VersionApi).getCode();
    expect(info.gitVersion).toBe(versions.KUBERNETES_VERSION);
    expect(info.major).toBe('1');
    expect(new URL(env.server).hostname).toBe('127.0.0.1');
    expect(fs.existsSync(env.kubeconfigPath)).toBe(true);
  });

  test('a CRD with a CEL rule refuses an invalid object with the rule message', async () => {
    const ext = env.kc.makeApiClient(k8s.ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: widgetCrd });
    await eventually(async () => {
      const crd = await ext.readCustomResourceDefinition({ name: widgetCrd.metadata!.name! });
      if (!crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) {
        throw new Error('CRD not established yet');
      }
    });
    const custom = env.kc.makeApiClient(k8s.CustomObjectsApi);
    const create = (body: object): Promise<unknown> =>
      custom.createNamespacedCustomObject({
        group: 'smoke.daftka.test',
        version: 'v1',
        namespace: NAMESPACE,
        plural: 'widgets',
        body,
      });
    await eventually(() => create(widget('valid', 1, 3)));

    const err = await apiError(create(widget('invalid', 5, 3)));
    expect(err.code).toBe(422);
    expect(JSON.stringify(err.body)).toContain('minReplicas must not exceed maxReplicas');
  });

  test('a ValidatingAdmissionPolicy is enforced (the admission plugin is on)', async () => {
    const admission = env.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission.createValidatingAdmissionPolicy({
      body: {
        metadata: { name: 'smoke-no-forbidden-configmaps' },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] },
            ],
          },
          validations: [
            {
              expression: "!has(object.metadata.labels) || !('forbidden' in object.metadata.labels)",
              message: 'forbidden ConfigMaps are refused',
            },
          ],
        },
      },
    });
    await admission.createValidatingAdmissionPolicyBinding({
      body: {
        metadata: { name: 'smoke-no-forbidden-configmaps' },
        spec: { policyName: 'smoke-no-forbidden-configmaps', validationActions: ['Deny'] },
      },
    });
    const core = env.kc.makeApiClient(k8s.CoreV1Api);
    let n = 0;
    // The policy takes effect once the apiserver's informers have seen it.
    const err = await eventually(async () => {
      const name = `forbidden-${n++}`;
      const e = await apiError(
        core.createNamespacedConfigMap({
          namespace: NAMESPACE,
          body: { metadata: { name, labels: { forbidden: 'yes' } } },
        }),
      );
      return e;
    });
    expect(err.code).toBe(422);
    expect(JSON.stringify(err.body)).toContain('forbidden ConfigMaps are refused');
    await core.createNamespacedConfigMap({ namespace: NAMESPACE, body: { metadata: { name: 'allowed' } } });
  });

  test('a server-side-applied StatefulSet is watched until its pods run on three different fake Nodes', async () => {
    const replicas = 3;
    let lastSeen: k8s.V1StatefulSet | undefined;
    const phases: string[] = [];
    let settle!: (err?: Error) => void;
    const ready = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    // Watch first, so that the ADDED event of the apply below is seen too.
    const watch = await new k8s.Watch(env.kc).watch(
      `/apis/apps/v1/namespaces/${NAMESPACE}/statefulsets`,
      { fieldSelector: 'metadata.name=smoke' },
      (phase: string, obj: k8s.V1StatefulSet) => {
        phases.push(phase);
        lastSeen = obj;
        if ((obj.status?.readyReplicas ?? 0) === replicas) settle();
      },
      (err: unknown) => settle(err ? new Error(`watch ended: ${String(err)}`) : new Error('watch ended')),
    );
    const timer = setTimeout(() => settle(new Error(`not ready: ${JSON.stringify(lastSeen?.status)}`)), 120_000);

    await objects.patch(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'smoke', namespace: NAMESPACE },
        spec: { clusterIP: 'None', selector: { app: 'smoke' }, ports: [{ port: 9092 }] },
      } as k8s.V1Service,
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      k8s.PatchStrategy.ServerSideApply,
    );
    const applied = await objects.patch(
      statefulSet(replicas),
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      k8s.PatchStrategy.ServerSideApply,
    );
    expect(applied.metadata?.managedFields?.some((f) => f.manager === FIELD_MANAGER && f.operation === 'Apply')).toBe(
      true,
    );

    try {
      await ready;
    } finally {
      clearTimeout(timer);
      watch.abort();
    }
    expect(phases[0]).toBe('ADDED');
    expect(phases).toContain('MODIFIED');

    const core = env.kc.makeApiClient(k8s.CoreV1Api);
    const pods = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'app=smoke' })).items;
    expect(pods.map((p) => p.metadata?.name).sort()).toEqual(['smoke-0', 'smoke-1', 'smoke-2']);
    for (const pod of pods) {
      expect(pod.status?.phase).toBe('Running');
      expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    }
    const nodeNames = pods.map((p) => p.spec?.nodeName ?? '');
    expect(new Set(nodeNames).size).toBe(replicas);
    for (const name of nodeNames) expect(env.nodeNames).toContain(name);
    const zones = await Promise.all(
      nodeNames.map(async (name) => (await core.readNode({ name })).metadata?.labels?.['topology.kubernetes.io/zone']),
    );
    expect(zones.sort()).toEqual(['zone-a', 'zone-b', 'zone-c']);
  }, 180_000);

  test('kubeconform validates manifests with schemas generated from this apiserver and a CRD directory', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'daftka-kubeconform-'));
    try {
      const crdDir = path.join(work, 'crds');
      fs.mkdirSync(crdDir);
      fs.writeFileSync(path.join(crdDir, 'widget.yaml'), k8s.dumpYaml(widgetCrd));
      const { schemaLocation, fileNames } = await ensureKubeconformSchemas({
        outDir: path.join(work, 'schemas'),
        crdDir,
        openapi: await fetchOpenApiV2(env.kc),
      });
      expect(fileNames).toEqual(
        expect.arrayContaining(['statefulset-apps-v1.json', 'configmap-v1.json', 'widget-smoke-v1.json']),
      );

      const good = path.join(work, 'good.yaml');
      fs.writeFileSync(
        good,
        [
          statefulSet(3),
          widget('w', 1, 2),
          { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { a: 'b' } },
        ]
          .map((o) => k8s.dumpYaml(o))
          .join('---\n'),
      );
      const ok = runToolResult('kubeconform', ['-strict', '-summary', '-schema-location', schemaLocation, good]);
      expect(ok.stderr + ok.stdout).toMatch(/Valid: 3, Invalid: 0, Errors: 0, Skipped: 0/);
      expect(ok.status).toBe(0);

      const bad = path.join(work, 'bad.yaml');
      const badSet = statefulSet(3) as unknown as { spec: Record<string, unknown> };
      badSet.spec.replicas = 'three';
      badSet.spec.replica = 3; // unknown field: refused under -strict
      const badWidget = widget('w', 1, 2) as unknown as { spec: Record<string, unknown> };
      badWidget.spec.maxReplicas = 'two';
      fs.writeFileSync(bad, [badSet, badWidget].map((o) => k8s.dumpYaml(o)).join('---\n'));
      const refused = runToolResult('kubeconform', ['-strict', '-summary', '-schema-location', schemaLocation, bad]);
      expect(refused.status).not.toBe(0);
      const out = refused.stdout + refused.stderr;
      expect(out).toMatch(/Invalid: 2/);
      expect(out).toContain('replicas');
      expect(out).toContain('maxReplicas');
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('cached Kubernetes tools', () => {
  test('helm version is the pinned v3 release', () => {
    expect(runTool('helm', ['version', '--short'])).toContain(versions.HELM_VERSION);
  });

  test('kubeconform -v is the pinned release', () => {
    expect(runTool('kubeconform', ['-v']).trim()).toBe(versions.KUBECONFORM_VERSION);
  });

  test('promtool --version answers', () => {
    const res = runToolResult('promtool', ['--version']);
    expect(res.status).toBe(0);
    expect(res.stdout + res.stderr).toMatch(/promtool, version \d+\.\d+\.\d+/);
  });
});

describe('Kubernetes test environment clean-up', () => {
  /** Whether a process still runs (a killed one may linger as a zombie until its new parent reaps it). */
  const alive = (pid: number): boolean => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false;
    }
  };

  test('stop() leaves no process and no temp dir behind', async () => {
    const env = await startK8sEnv();
    const pgids = fs
      .readFileSync(path.join(env.dir, 'pids'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => Number(line.split(' ')[0]));
    expect(pgids.length).toBe(2); // etcd, kube-apiserver
    expect(pgids.every(alive)).toBe(true);
    await env.stop();
    expect(pgids.filter(alive)).toEqual([]);
    expect(fs.existsSync(env.dir)).toBe(false);
  }, 180_000);

  test('when the test process is SIGKILLed, its components are killed and its temp dir removed', async () => {
    // node itself (tsx as a loader, not the tsx CLI, which would run the script in a grandchild).
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, 'fixtures', 'start-env-and-hang.ts')],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.once('exit', (code) => reject(new Error(`fixture exited with ${code} before starting`)));
      });
      const { dir, pgids } = JSON.parse(line) as { dir: string; pgids: number[] };
      expect(pgids.every(alive)).toBe(true);

      child.kill('SIGKILL'); // no exit handler runs: the watchdog must do the work
      const deadline = Date.now() + 20_000;
      while ((pgids.some(alive) || fs.existsSync(dir)) && Date.now() < deadline) await sleep(200);
      expect(pgids.filter(alive)).toEqual([]);
      expect(fs.existsSync(dir)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      child.stdout!.destroy();
    }
  }, 180_000);
});
