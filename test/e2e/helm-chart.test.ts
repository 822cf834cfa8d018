/**
 * The Helm chart (helm/daftka), checked the way a cluster would: `helm lint`; `helm template` with
 * the default values and with everything enabled; kubeconform -strict against schemas generated
 * from a real kube-apiserver's OpenAPI, our CRDs and minimal Prometheus-operator CRDs; a
 * server-side dry-run apply of every rendered object against that apiserver; values.schema.json
 * refusing bad values with a message naming them; least-privilege RBAC; and the bundled NATS
 * config run by a real nats-server, where only the operator may publish control requests.
 */
import * as k8s from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAll } from 'js-yaml';
import { connect, StringCodec, type NatsConnection } from 'nats';
import { natsServerOptions } from '../../common/nats-servers';
import { gatewaySchema, loadGatewayConfig } from '../../gateway/config';
import { REPLICA_INBOX_PREFIX } from '../../replica/control/announcer';
import { KubeClient } from '../../common/kube';
import { createLogger } from '../../common/log';
import { ConfigMapCatalog } from '../../gateway/kube-catalog';
import { SecretKeyring } from '../../gateway/kube-keyring';
import { PassThrough } from 'node:stream';
import { loadOperatorConfig, loadReplicaSettings, operatorSchema } from '../../operator/config';
import { startOperator } from '../../operator/operator';
import { startNatsServer } from '../helpers/nats-server';
import { ALERT_NAMES } from '../../sre/alerts';
import { freePort } from '../helpers/free-port';
import { startK8sEnv, type K8sEnv } from '../helpers/k8s-env';
import { ensureKubeconformSchemas, fetchOpenApiV2 } from '../helpers/k8s-schemas';
import { REPO_ROOT, runTool, runToolResult } from '../helpers/k8s-tools';

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
};

const CHART = path.join(REPO_ROOT, 'helm', 'daftka');
const KUBE_VERSION = '1.34.4';
const NS = 'daftka';
const FIELD_MANAGER = 'daftka-helm-test';

/** Every switch on: monitoring, HPA, clustered NATS, namespaced operator. */
const ALL_ENABLED = {
  operator: { watchNamespaces: ['team-a', 'team-b'] },
  replica: {
    extraEnv: { DAFTKA_MAX_RECORD_BYTES: 2097152, DAFTKA_ELECTION_TIMEOUT_MS: '300' },
    natsUrlFromSecret: true,
    tls: { secretName: 'daftka-replica-tls', serverName: 'replica.daftka.internal' },
  },
  gateway: {
    hpa: { enabled: true },
    tls: { secretName: 'daftka-gateway-tls' },
    auth: { mode: 'tokens', tokensSecret: 'my-tokens' },
    extraEnv: { DAFTKA_GATEWAY_FETCH_MAX_BYTES: 16777216 },
  },
  nats: { bundled: { replicas: 3 } },
  networkPolicy: {
    gatewayFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'clients' } } }],
  },
  monitoring: {
    podMonitors: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
    prometheusRule: {
      enabled: true,
      disabledAlerts: ['DaftkaThrottlingSustained'],
      extraAlertLabels: { team: 'platform' },
    },
    grafanaDashboards: { enabled: true },
  },
};

/**
 * Minimal stand-ins for the Prometheus-operator CRDs (the real ones are large and not vendored):
 * only the fields this chart sets, with the real field names and types. kubeconform validates our
 * PodMonitors and PrometheusRule against them, and the apiserver serves them for the dry-run.
 */
const PROMETHEUS_OPERATOR_CRDS = [
  {
    kind: 'PodMonitor',
    plural: 'podmonitors',
    spec: {
      type: 'object',
      required: ['selector', 'podMetricsEndpoints'],
      properties: {
        selector: {
          type: 'object',
          properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } } },
        },
        namespaceSelector: {
          type: 'object',
          properties: { any: { type: 'boolean' }, matchNames: { type: 'array', items: { type: 'string' } } },
        },
        podMetricsEndpoints: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              port: { type: 'string' },
              path: { type: 'string' },
              interval: {
                type: 'string',
                pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$',
              },
              relabelings: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    action: { type: 'string', enum: ['replace', 'keep', 'drop', 'labelmap', 'labeldrop', 'labelkeep'] },
                    targetLabel: { type: 'string' },
                    replacement: { type: 'string' },
                    sourceLabels: { type: 'array', items: { type: 'string' } },
                    regex: { type: 'string' },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
  {
    kind: 'PrometheusRule',
    plural: 'prometheusrules',
    spec: {
      type: 'object',
      properties: {
        groups: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'rules'],
            properties: {
              name: { type: 'string', minLength: 1 },
              interval: { type: 'string' },
              rules: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['expr'],
                  properties: {
                    record: { type: 'string' },
                    alert: { type: 'string' },
                    expr: { 'x-kubernetes-int-or-string': true },
                    for: { type: 'string' },
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    annotations: { type: 'object', additionalProperties: { type: 'string' } },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
].map(({ kind, plural, spec }) => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `${plural}.monitoring.coreos.com` },
  spec: {
    group: 'monitoring.coreos.com',
    scope: 'Namespaced',
    names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: 'object', properties: { spec } } },
      },
    ],
  },
}));

let work: string;

function writeValues(name: string, values: unknown): string {
  const file = path.join(work, `${name}.values.json`);
  fs.writeFileSync(file, JSON.stringify(values));
  return file;
}

function helmTemplate(valuesFile?: string, extra: string[] = []): string {
  return runTool('helm', [
    'template',
    'daftka',
    CHART,
    '--namespace',
    NS,
    '--kube-version',
    KUBE_VERSION,
    ...(valuesFile ? ['-f', valuesFile] : []),
    ...extra,
  ]);
}

const parse = (yaml: string): Obj[] =>
  (loadAll(yaml) as Array<Obj | null>).filter((o): o is Obj => o !== null && typeof o === 'object');
const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
};
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

/**
 * Server-side apply of raw JSON with fieldValidation=Strict (unknown or duplicate fields are errors).
 * Not through KubernetesObjectApi: its serializer drops fields its models do not know before
 * sending, which would hide exactly the mistakes this test is for.
 */
class RawApplier {
  private readonly plurals = new Map<string, { plural: string; namespaced: boolean }>();
  constructor(private readonly kc: k8s.KubeConfig) {}

  private async request(method: string, urlPath: string, body?: string): Promise<{ status: number; body: string }> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster');
    const options: https.RequestOptions = {
      method,
      headers: { Accept: 'application/json', ...(body ? { 'Content-Type': 'application/apply-patch+yaml' } : {}) },
    };
    await this.kc.applyToHTTPSOptions(options);
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(urlPath, cluster.server), options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  private async resource(apiVersion: string, kind: string) {
    const key = `${apiVersion}/${kind}`;
    if (!this.plurals.has(key)) {
      const res = await this.request('GET', apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`);
      if (res.status !== 200) throw new Error(`discovery of ${apiVersion}: ${res.status}`);
      for (const r of (
        JSON.parse(res.body) as { resources: Array<{ name: string; kind: string; namespaced: boolean }> }
      ).resources)
        if (!r.name.includes('/'))
          this.plurals.set(`${apiVersion}/${r.kind}`, { plural: r.name, namespaced: r.namespaced });
    }
    const r = this.plurals.get(key);
    if (!r) throw new Error(`${key} is not served`);
    return r;
  }

  /** Applies obj (dry run unless dryRun is false); resolves to the error text, or null when accepted. */
  async apply(obj: Obj, dryRun = true): Promise<string | null> {
    const { plural, namespaced } = await this.resource(obj.apiVersion, obj.kind);
    const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
    const ns = namespaced ? `/namespaces/${obj.metadata.namespace ?? NS}` : '';
    const query = `fieldManager=${FIELD_MANAGER}&force=true&fieldValidation=Strict${dryRun ? '&dryRun=All' : ''}`;
    const res = await this.request(
      'PATCH',
      `${base}${ns}/${plural}/${obj.metadata.name}?${query}`,
      JSON.stringify(obj),
    );
    if (res.status >= 200 && res.status < 300) return null;
    return `${res.status} ${(JSON.parse(res.body) as { message?: string }).message ?? res.body}`;
  }
}

describe('Helm chart helm/daftka', () => {
  let defaults: Obj[];
  let allEnabled: Obj[];
  let defaultYaml: string;
  let allEnabledYaml: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'daftka-helm-'));
    defaultYaml = helmTemplate();
    allEnabledYaml = helmTemplate(writeValues('all', ALL_ENABLED));
    defaults = parse(defaultYaml);
    allEnabled = parse(allEnabledYaml);
    fs.writeFileSync(path.join(work, 'default.yaml'), defaultYaml);
    fs.writeFileSync(path.join(work, 'all.yaml'), allEnabledYaml);
  }, 60_000);
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  test('helm lint passes with the default values and with everything enabled', () => {
    for (const args of [[], ['-f', writeValues('lint-all', ALL_ENABLED)]]) {
      const res = runToolResult('helm', ['lint', CHART, '--strict', '--kube-version', KUBE_VERSION, ...args]);
      expect(res.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
      expect(res.status).toBe(0);
    }
  });

  test('default values render the operator, gateway, NATS, RBAC, NetworkPolicies and CRDs, and no monitoring objects', () => {
    const kinds = new Set(defaults.map((o) => o.kind));
    for (const k of [
      'CustomResourceDefinition',
      'ValidatingAdmissionPolicy',
      'Deployment',
      'StatefulSet',
      'Service',
      'PodDisruptionBudget',
      'NetworkPolicy',
      'ClusterRole',
      'Role',
      'Secret',
      'ConfigMap',
    ])
      expect(kinds).toContain(k);
    for (const k of ['PodMonitor', 'PrometheusRule', 'HorizontalPodAutoscaler']) expect(kinds).not.toContain(k);
    expect(defaults.filter((o) => o.kind === 'ConfigMap' && /dashboard/.test(o.metadata.name))).toEqual([]);

    const operator = find(defaults, 'Deployment', 'daftka-operator') as Any;
    expect(operator.spec.replicas).toBe(2);
    const env = Object.fromEntries(
      operator.spec.template.spec.containers[0].env.map((e: Any) => [e.name, e.value ?? e.valueFrom]),
    );
    expect(env.DAFTKA_OPERATOR_LEASE_NAME).toBe('daftka-operator');
    expect(env.DAFTKA_OPERATOR_POD_NAME).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.DAFTKA_NATS_URL).toEqual({ secretKeyRef: { name: 'daftka-nats-clients', key: 'operator-url' } });
    // The installation's admin secret: from a chart-made Secret, never a plain value.
    expect(env.DAFTKA_ADMIN_SECRET).toEqual({ secretKeyRef: { name: 'daftka-admin', key: 'admin-secret' } });
    expect((find(defaults, 'Secret', 'daftka-admin') as Any).stringData['admin-secret']).toMatch(/^[A-Za-z0-9]{48}$/);
    // Namespaced by default: the release namespace only.
    expect(env.DAFTKA_OPERATOR_WATCH_NAMESPACES).toBe(NS);
    expect(env.DAFTKA_OPERATOR_GATEWAY_CLIENT_KEYS_SECRET).toBe('daftka-gateway-client-keys');
    // The client keys Secret is made empty; the operator fills it.
    const keys = find(defaults, 'Secret', 'daftka-gateway-client-keys') as Any;
    expect([keys.data, keys.stringData]).toEqual([undefined, undefined]);

    const settings = JSON.parse((find(defaults, 'ConfigMap', 'daftka-operator') as Any).data['replica-settings.json']);
    expect(settings).toMatchObject({
      image: 'ghcr.io/daftka/daftka:0.1.0',
      storage: { size: '10Gi' },
      antiAffinity: 'required',
      runAsUser: 10001,
      extraEnv: { DAFTKA_FSYNC: 'always', DAFTKA_LOG_LEVEL: 'info' },
    });
  });

  test('every pod runs as non-root with a read-only root filesystem, no capabilities and RuntimeDefault seccomp', () => {
    const workloads = [...defaults, ...allEnabled].filter((o) =>
      ['Deployment', 'StatefulSet'].includes(o.kind),
    ) as Any[];
    expect(workloads.length).toBeGreaterThanOrEqual(6);
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      for (const c of pod.containers) {
        expect(c.securityContext).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          runAsNonRoot: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.resources?.requests).toBeDefined();
      }
    }
  });

  test('the chart ships the CRDs of crds/ (files/crds is a symlink) unchanged, plus Helm labels and the keep policy', () => {
    const strip = (o: Any) => {
      const c = JSON.parse(JSON.stringify(o));
      delete c.metadata.annotations?.['helm.sh/resource-policy'];
      if (c.metadata.annotations && Object.keys(c.metadata.annotations).length === 0) delete c.metadata.annotations;
      delete c.metadata.labels['helm.sh/chart'];
      delete c.metadata.labels['app.kubernetes.io/managed-by'];
      return c;
    };
    const fromRepo = fs
      .readdirSync(path.join(REPO_ROOT, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => parse(fs.readFileSync(path.join(REPO_ROOT, 'crds', f), 'utf8')));
    expect(fromRepo.length).toBeGreaterThanOrEqual(3);
    for (const want of fromRepo) {
      const got = find(defaults, want.kind, want.metadata.name) as Any;
      expect(got.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
      expect(strip(got)).toEqual(want);
    }
  });

  test('RBAC is least privilege: no wildcards; the operator namespaced by default; Secrets by name except the per-topic ones; the gateway reads two objects by name', () => {
    const clusterScoped = parse(helmTemplate(writeValues('cluster', { operator: { clusterScope: true } })));
    for (const objs of [defaults, allEnabled, clusterScoped])
      for (const role of objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role') as Any[])
        for (const rule of role.rules) {
          expect(rule.verbs).not.toContain('*');
          expect(rule.resources).not.toContain('*');
          if (!rule.resources.includes('secrets')) continue;
          // The per-topic peer-auth and admin-auth Secrets (operator/reconcile.ts): looked up by name,
          // created when absent, deleted with the Topic. Never list, watch or patch: that would read
          // or change every Secret in scope.
          if (!rule.resourceNames) {
            expect(role.metadata.name).toBe('daftka-operator');
            expect(rule).toEqual({ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'delete'] });
          } else if (role.metadata.name === 'daftka-operator') {
            // Each Topic namespace's client keys Secret (replay within the namespace), by name.
            expect(rule).toEqual({
              apiGroups: [''],
              resources: ['secrets'],
              resourceNames: ['daftka-client-keys'],
              verbs: ['get', 'update', 'patch'],
            });
          } else {
            // Everything else on Secrets is one object by name: the gateway client keys Secret.
            expect(rule.resourceNames).toEqual(['daftka-gateway-client-keys']);
            expect(rule.verbs).not.toContain('create');
            expect(role.kind).toBe('Role');
            expect(role.metadata.namespace).toBe(NS);
          }
        }

    // Default: no cluster-wide access to workloads or Secrets; a Role in the release namespace.
    expect(defaults.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name)).toEqual([
      'daftka-operator-nodes',
    ]);
    const operator = find(defaults, 'Role', 'daftka-operator') as Any;
    expect(operator.metadata.namespace).toBe(NS);
    expect(find(defaults, 'RoleBinding', 'daftka-operator')).toMatchObject({
      metadata: { namespace: NS },
      roleRef: { kind: 'Role', name: 'daftka-operator' },
      subjects: [{ kind: 'ServiceAccount', name: 'daftka-operator', namespace: NS }],
    });
    const can = (role: Any, res: string, verb: string) =>
      role.rules.some((r: Any) => r.resources.includes(res) && r.verbs.includes(verb));
    for (const res of ['topics', 'partitions', 'statefulsets', 'services', 'poddisruptionbudgets'])
      expect(can(operator, res, 'patch')).toBe(true);
    for (const res of ['topics/status', 'partitions/status']) expect(can(operator, res, 'update')).toBe(true);
    for (const res of ['pods', 'persistentvolumeclaims']) {
      expect(can(operator, res, 'delete')).toBe(true);
      expect(can(operator, res, 'create')).toBe(false);
    }
    // Retain: the operator detaches PVCs from a StatefulSet before deleting it (operator/reconcile.ts).
    expect(can(operator, 'persistentvolumeclaims', 'patch')).toBe(true);
    // Replica pods start held by the spare-slot scheduling gate; the operator admits them by
    // removing it (operator/pod-gates.ts), the only change it makes to a pod.
    expect(can(operator, 'pods', 'patch')).toBe(true);
    expect(can(operator, 'events', 'create')).toBe(true);

    // clusterScope: the same rules as one ClusterRole, and no namespaced copy; it watches every namespace.
    const cluster = find(clusterScoped, 'ClusterRole', 'daftka-operator') as Any;
    expect(cluster.rules).toEqual(operator.rules);
    expect(clusterScoped.filter((o) => o.kind === 'Role' && o.metadata.name === 'daftka-operator')).toEqual([]);
    const clusterEnv = (find(clusterScoped, 'Deployment', 'daftka-operator') as Any).spec.template.spec.containers[0]
      .env;
    expect(clusterEnv).toContainEqual({ name: 'DAFTKA_OPERATOR_WATCH_NAMESPACES', value: '' });

    const lease = find(defaults, 'Role', 'daftka-operator-election') as Any;
    expect(lease.metadata.namespace).toBe(NS);
    expect(lease.rules.find((r: Any) => r.resources.includes('leases') && r.resourceNames)).toMatchObject({
      resourceNames: ['daftka-operator'],
    });
    expect(lease.rules.find((r: Any) => r.resources.includes('secrets'))).toEqual({
      apiGroups: [''],
      resources: ['secrets'],
      resourceNames: ['daftka-gateway-client-keys'],
      verbs: ['get', 'update', 'patch'],
    });
    // The gateway: its catalog ConfigMap and its client keys Secret, by name, in the release
    // namespace only; nothing cluster-wide (it never reads Topics or Partitions).
    for (const objs of [defaults, allEnabled, clusterScoped]) {
      expect(
        objs.filter((o) => /Role/.test(o.kind) && o.metadata.name.startsWith('daftka-gateway')).map((o) => o.kind),
      ).toEqual(['Role', 'RoleBinding']);
      expect((find(objs, 'Role', 'daftka-gateway-catalog') as Any).rules).toEqual([
        {
          apiGroups: [''],
          resources: ['configmaps'],
          resourceNames: ['daftka-gateway-topics'],
          verbs: ['get', 'list', 'watch'],
        },
        {
          apiGroups: [''],
          resources: ['secrets'],
          resourceNames: ['daftka-gateway-client-keys'],
          verbs: ['get', 'list', 'watch'],
        },
      ]);
    }

    // Listed namespaces: a Role in each and no cluster-wide access to Daftka objects.
    expect(
      allEnabled
        .filter((o) => o.kind === 'Role' && o.metadata.name === 'daftka-operator')
        .map((o) => o.metadata.namespace),
    ).toEqual(['team-a', 'team-b']);
    for (const role of allEnabled.filter((o) => o.kind === 'Role' && o.metadata.name === 'daftka-operator') as Any[])
      expect(role.rules.some((r: Any) => r.resources.includes('secrets'))).toBe(true);
    expect(allEnabled.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name)).toEqual([
      'daftka-operator-nodes',
    ]);
  });

  test('NetworkPolicies: replica client port from gateways and peers, Raft port from peers only', () => {
    const np = find(defaults, 'NetworkPolicy', 'daftka-replicas') as Any;
    expect(np.spec.podSelector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'daftka',
      'app.kubernetes.io/component': 'replica',
    });
    const rule = (port: string) => np.spec.ingress.find((r: Any) => r.ports[0].port === port);
    expect(rule('client').from.map((f: Any) => f.podSelector.matchLabels['app.kubernetes.io/component'])).toEqual([
      'gateway',
      'replica',
    ]);
    expect(rule('peer').from).toEqual([
      {
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'daftka', 'app.kubernetes.io/component': 'replica' } },
      },
    ]);
    expect(
      allEnabled
        .filter((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'daftka-replicas')
        .map((o) => o.metadata.namespace),
    ).toEqual(['team-a', 'team-b']);
  });

  test("the gateway's /metrics has a port of its own that only networkPolicy.metricsFrom reaches; the Service carries the API alone", () => {
    const monitoring = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
    const scoped = parse(helmTemplate(writeValues('metrics-from', { networkPolicy: { metricsFrom: monitoring } })));
    for (const [objs, clients] of [
      [scoped, undefined],
      [allEnabled, ALL_ENABLED.networkPolicy.gatewayFrom],
    ] as const) {
      const np = find(objs, 'NetworkPolicy', 'daftka-gateway') as Any;
      const byPort = Object.fromEntries(np.spec.ingress.map((r: Any) => [r.ports[0].port, r.from]));
      expect(Object.keys(byPort).sort()).toEqual(['http', 'metrics']);
      expect(byPort.http).toEqual(clients);
      expect(byPort.metrics).toEqual(objs === scoped ? monitoring : [{ namespaceSelector: {} }]);
    }
    const gw = (find(defaults, 'Deployment', 'daftka-gateway') as Any).spec.template.spec.containers[0];
    expect(gw.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9464, protocol: 'TCP' },
    ]);
    expect(gw.env).toContainEqual({ name: 'DAFTKA_GATEWAY_METRICS_PORT', value: '9464' });
    expect(gw.env.map((e: Any) => e.name)).not.toContain('DAFTKA_GATEWAY_METRICS_ON_API_PORT');
    // Probes stay on the API port (it serves /healthz and /readyz).
    expect(gw.readinessProbe.httpGet.port).toBe('http');
    const svc = find(defaults, 'Service', 'daftka-gateway') as Any;
    expect(svc.spec.ports.map((p: Any) => p.targetPort)).toEqual(['http']);
  });

  test('everything enabled: PodMonitors with the alert rules job names, the PrometheusRule, five dashboards, HPA', () => {
    const monitors = allEnabled.filter((o) => o.kind === 'PodMonitor') as Any[];
    expect(monitors.map((m) => m.spec.podMetricsEndpoints[0].relabelings[0].replacement).sort()).toEqual([
      'daftka-gateway',
      'daftka-operator',
      'daftka-replica',
    ]);
    expect(monitors.every((m) => m.metadata.labels.release === 'kube-prometheus-stack')).toBe(true);
    // Replicas on their http port; the gateway and the operator on their own metrics ports.
    expect(Object.fromEntries(monitors.map((m) => [m.metadata.name, m.spec.podMetricsEndpoints[0].port]))).toEqual({
      'daftka-replica': 'http',
      'daftka-gateway': 'metrics',
      'daftka-operator': 'metrics',
    });
    // The replicas' monitor looks where the operator watches.
    expect(find(allEnabled, 'PodMonitor', 'daftka-replica')).toMatchObject({
      spec: { namespaceSelector: { matchNames: ['team-a', 'team-b'] } },
    });

    const rule = find(allEnabled, 'PrometheusRule', 'daftka') as Any;
    const alerts = rule.spec.groups.flatMap((g: Any) => g.rules).filter((r: Any) => r.alert);
    expect(alerts.map((a: Any) => a.alert).sort()).toEqual(
      ALERT_NAMES.filter((n) => n !== 'DaftkaThrottlingSustained').sort(),
    );
    for (const a of alerts) {
      expect(a.labels.team).toBe('platform');
      expect(['page', 'ticket']).toContain(a.labels.severity);
      expect(a.annotations.runbook_url).toBe(`https://github.com/daftka/daftka/blob/main/docs/runbooks/${a.alert}.md`);
    }
    expect(rule.spec.groups.flatMap((g: Any) => g.rules).filter((r: Any) => r.record).length).toBeGreaterThanOrEqual(
      21,
    );

    const dashboards = allEnabled.filter(
      (o) => o.kind === 'ConfigMap' && (o as Any).metadata.labels?.grafana_dashboard === '1',
    ) as Any[];
    expect(dashboards).toHaveLength(5);
    for (const d of dashboards)
      for (const json of Object.values(d.data)) expect(JSON.parse(json as string).uid).toMatch(/^daftka-/);

    // Numbers reach the programs as plain integers (Helm reads YAML numbers as floats: 1.6777216e+07).
    const gatewayEnv = (find(allEnabled, 'Deployment', 'daftka-gateway') as Any).spec.template.spec.containers[0].env;
    expect(gatewayEnv).toEqual(
      expect.arrayContaining([
        { name: 'DAFTKA_GATEWAY_FETCH_MAX_BYTES', value: '16777216' },
        { name: 'DAFTKA_GATEWAY_MAX_BODY_BYTES', value: '8388608' },
      ]),
    );
    const settings = JSON.parse(
      (find(allEnabled, 'ConfigMap', 'daftka-operator') as Any).data['replica-settings.json'],
    );
    expect(settings.extraEnv).toEqual({
      DAFTKA_FSYNC: 'always',
      DAFTKA_LOG_LEVEL: 'info',
      DAFTKA_MAX_RECORD_BYTES: '2097152',
      DAFTKA_ELECTION_TIMEOUT_MS: '300',
    });

    expect(find(allEnabled, 'HorizontalPodAutoscaler', 'daftka-gateway')).toBeDefined();
    expect((find(allEnabled, 'Deployment', 'daftka-gateway') as Any).spec.replicas).toBeUndefined();
    expect((find(allEnabled, 'StatefulSet', 'daftka-nats') as Any).spec.replicas).toBe(3);
  });

  /** A container's env as the program would see it; valueFrom entries get a stand-in value. */
  function containerEnv(deployment: string, objs: Obj[]): Record<string, string> {
    const c = (find(objs, 'Deployment', deployment) as Any).spec.template.spec.containers[0];
    return Object.fromEntries(
      c.env.map((e: Any) => [
        e.name,
        e.value ?? (e.valueFrom?.fieldRef ? 'from-downward-api' : 'nats://user:secret@nats.daftka.svc:4222'),
      ]),
    );
  }
  const schemaEnvNames = (schema: Record<string, { env: string }>) => new Set(Object.values(schema).map((f) => f.env));

  test('the gateway accepts the configuration the chart gives it (every variable is one it reads)', () => {
    for (const objs of [defaults, allEnabled]) {
      const env = containerEnv('daftka-gateway', objs);
      const known = schemaEnvNames(gatewaySchema);
      // Unknown DAFTKA_* variables would be ignored silently: each must be a key of gateway/config.ts.
      expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
      const cfg = loadGatewayConfig(env);
      expect(cfg.auth).toBe('tokens');
      // Topics come from the operator's ConfigMap, watched through the API (no volume, no kubelet delay).
      expect(cfg.catalogConfigMap).toBe(`${NS}/daftka-gateway-topics`);
      expect(cfg.topicsFile).toBe('');
      // Client keys from the operator's Secret, watched by name; /metrics on its own port only.
      expect(cfg.clientKeysSecret).toBe(`${NS}/daftka-gateway-client-keys`);
      expect(cfg.clientKeysDir).toBe('');
      expect([cfg.metricsPort, cfg.metricsOnApiPort]).toEqual([9464, false]);
      // TLS (docs/security.md): HTTPS on the API port, TLS to replicas checked against their CA.
      const tls = objs === allEnabled;
      expect([cfg.tlsDir, cfg.replicaCaFile, cfg.replicaTlsServerName]).toEqual(
        tls ? ['/etc/daftka/tls', '/etc/daftka/replica-ca/ca.crt', 'replica.daftka.internal'] : ['', '', ''],
      );
      const pod = (find(objs, 'Deployment', 'daftka-gateway') as Any).spec.template.spec;
      const volumes = pod.volumes.filter((v: Any) => ['tls', 'replica-ca'].includes(v.name));
      // The gateway gets the replicas' CA only, never their key; probes speak HTTPS to an HTTPS port.
      expect(volumes.map((v: Any) => [v.secret.secretName, v.secret.items.map((i: Any) => i.key)])).toEqual(
        tls
          ? [
              ['daftka-gateway-tls', ['tls.crt', 'tls.key']],
              ['daftka-replica-tls', ['ca.crt']],
            ]
          : [],
      );
      expect(pod.containers[0].readinessProbe.httpGet.scheme).toBe(tls ? 'HTTPS' : undefined);
    }
    expect(
      loadGatewayConfig(
        containerEnv('daftka-gateway', parse(helmTemplate(writeValues('off', { gateway: { auth: { mode: false } } })))),
      ).auth,
    ).toBe('off');
  });

  test('the operator accepts the configuration and the replica settings file the chart gives it', () => {
    const op = { operatorSchema, loadOperatorConfig, loadReplicaSettings };
    for (const objs of [defaults, allEnabled]) {
      const env = containerEnv('daftka-operator', objs);
      const known = schemaEnvNames(op.operatorSchema);
      expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
      const cfg = op.loadOperatorConfig(env, []);
      // Replicas get admin-auth Secrets; the gateway gets every topic's client key.
      expect(cfg.adminSecret).not.toBe('');
      expect(cfg.gatewayClientKeysSecret).toBe('daftka-gateway-client-keys');
      expect(cfg.replicaClientKeys).toBe(true);
      const file = (find(objs, 'ConfigMap', 'daftka-operator') as Any).data['replica-settings.json'];
      const settings = op.loadReplicaSettings(cfg, (p: string) => {
        expect(p).toBe('/etc/daftka/operator/replica-settings.json');
        return file;
      });
      expect(settings.image).toBe('ghcr.io/daftka/daftka:0.1.0');
      if (objs === allEnabled)
        expect(settings.natsUrlSecret).toEqual({ name: 'daftka-nats-clients', key: 'replica-url' });
      else expect(settings.natsUrlSecret).toBeUndefined();
      // Replica pods mount the TLS Secret of their namespace when the chart names one.
      expect(settings.tls).toEqual(
        objs === allEnabled ? { secretName: 'daftka-replica-tls', serverName: 'replica.daftka.internal' } : undefined,
      );
      // An empty command: replica pods run the image's default command (dist/replica/main.js).
      expect(settings.command).toEqual([]);
    }
  });

  test.each([
    [{ gateway: { replicas: 'two' } }, "at '/gateway/replicas': got string, want integer"],
    [{ operator: { replicas: 0 } }, "at '/operator/replicas': minimum: got 0, want 1"],
    [{ replica: { fsync: 'sometimes' } }, "at '/replica/fsync': value must be one of 'always', 'interval'"],
    [{ replica: { storage: { size: '10GB' } } }, "at '/replica/storage/size': '10GB' does not match pattern"],
    [
      { replica: { extraEnv: { LOG_LEVEL: 'debug' } } },
      "at '/replica/extraEnv': additional properties 'LOG_LEVEL' not allowed",
    ],
    [
      { replica: { antiAffinity: 'sometimes' } },
      "at '/replica/antiAffinity': value must be one of 'required', 'preferred'",
    ],
    [{ nats: { bundled: { enabled: false } } }, "at '/nats/external/credentialsSecret'"],
    [{ nats: { bundled: { replicas: 2 } } }, "at '/nats/bundled/replicas': value must be one of 1, 3"],
    [
      { monitoring: { prometheusRule: { disabledAlerts: ['DaftkaNoSuchAlert'] } } },
      "at '/monitoring/prometheusRule/disabledAlerts/0': value must be one of",
    ],
    [{ gateway: { auth: { mode: 'basic' } } }, "at '/gateway/auth/mode': value must be one of 'off', 'tokens'"],
    [
      { operator: { watchNamespaces: ['Team_A'] } },
      "at '/operator/watchNamespaces/0': 'Team_A' does not match pattern",
    ],
    [{ gatway: { replicas: 3 } }, "additional properties 'gatway' not allowed"],
  ])('values.schema.json refuses %j', (values, message) => {
    const res = runToolResult('helm', [
      'template',
      'daftka',
      CHART,
      '--kube-version',
      KUBE_VERSION,
      '-f',
      writeValues('bad', values),
    ]);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toContain("values don't meet the specifications of the schema");
    expect(res.stderr).toContain(message);
  });

  describe('against a real kube-apiserver', () => {
    let env: K8sEnv;

    beforeAll(async () => {
      env = await startK8sEnv({ startTimeoutMs: 180_000 });
    }, 240_000);
    afterAll(() => env?.stop());

    test('kubeconform -strict accepts both renders (schemas from this apiserver, crds/, minimal Prometheus-operator CRDs)', async () => {
      const crdDir = path.join(work, 'schema-crds');
      fs.mkdirSync(crdDir, { recursive: true });
      for (const f of fs.readdirSync(path.join(REPO_ROOT, 'crds')))
        fs.copyFileSync(path.join(REPO_ROOT, 'crds', f), path.join(crdDir, f));
      fs.writeFileSync(
        path.join(crdDir, 'prometheus-operator.yaml'),
        PROMETHEUS_OPERATOR_CRDS.map((c) => k8s.dumpYaml(c)).join('---\n'),
      );
      const { schemaLocation } = await ensureKubeconformSchemas({
        outDir: path.join(work, 'schemas'),
        crdDir,
        openapi: await fetchOpenApiV2(env.kc),
      });
      for (const file of ['default.yaml', 'all.yaml']) {
        const res = runToolResult('kubeconform', [
          '-strict',
          '-summary',
          '-schema-location',
          schemaLocation,
          path.join(work, file),
        ]);
        const out = res.stdout + res.stderr;
        expect(out).toMatch(/Invalid: 0, Errors: 0, Skipped: 0/);
        expect(res.status).toBe(0);
      }
    }, 120_000);

    test('server-side dry-run apply (strict field validation) accepts every rendered object', async () => {
      const api = new RawApplier(env.kc);
      // What must exist for real first: namespaces, then our CRDs and the Prometheus-operator ones.
      for (const name of [NS, 'team-a', 'team-b'])
        expect(await api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, false)).toBeNull();
      const crds = [
        ...defaults.filter((o) => o.kind === 'CustomResourceDefinition'),
        ...PROMETHEUS_OPERATOR_CRDS,
      ] as Obj[];
      for (const crd of crds) expect(await api.apply(crd, false)).toBeNull();
      const ext = env.kc.makeApiClient(k8s.ApiextensionsV1Api);
      for (const crd of crds) {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const got = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
          if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
          if (Date.now() > deadline) throw new Error(`CRD ${crd.metadata.name} not established`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const refused: string[] = [];
      for (const [name, objs] of [
        ['default', defaults],
        ['all', allEnabled],
      ] as const)
        for (const obj of objs.filter((o) => o.kind !== 'CustomResourceDefinition')) {
          // A new API group is served a moment after Established: retry "not served" for a while.
          let err: string | null = null;
          for (let attempt = 0; attempt < 20; attempt++) {
            err = await api.apply(obj).catch((e: Error) => e.message);
            if (err === null || !/not served|404/.test(err)) break;
            await new Promise((r) => setTimeout(r, 500));
          }
          if (err !== null) refused.push(`${name}: ${obj.kind}/${obj.metadata.name}: ${err.slice(0, 400)}`);
        }
      expect(refused).toEqual([]);

      // The check has teeth: a field the schema does not know is refused.
      const broken = JSON.parse(JSON.stringify(find(defaults, 'Deployment', 'daftka-gateway'))) as Any;
      broken.spec.template.spec.containers[0].readinessProbes = {};
      expect(await api.apply(broken)).toMatch(/readinessProbes: field not declared in schema/);
    }, 180_000);

    test("the gateway's service account watches its client keys Secret by name, and no other Secret", async () => {
      const api = new RawApplier(env.kc);
      for (const [kind, name] of [
        ['ServiceAccount', 'daftka-gateway'],
        ['Secret', 'daftka-gateway-client-keys'],
        ['Role', 'daftka-gateway-catalog'],
        ['RoleBinding', 'daftka-gateway-catalog'],
      ])
        expect(await api.apply(find(defaults, kind, name) as Obj, false)).toBeNull();
      const peerSecret: Obj = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'orders-peer-auth', namespace: NS },
        stringData: { secret: 'p'.repeat(44) },
      };
      expect(await api.apply(peerSecret, false)).toBeNull();
      const asGateway = new KubeClient({
        kubeConfig: env.kc,
        impersonate: { user: `system:serviceaccount:${NS}:daftka-gateway`, groups: ['system:serviceaccounts'] },
      });
      const changes: number[] = [];
      const keyring = new SecretKeyring({
        kube: asGateway,
        namespace: NS,
        name: 'daftka-gateway-client-keys',
        logger: createLogger('keyring-test', { stream: new PassThrough().resume() }),
        onChange: (n) => changes.push(n),
      });
      keyring.start();
      try {
        await keyring.waitForSync();
        await new Promise((r) => setImmediate(r));
        expect(keyring.ready()).toBe(true);
        expect(keyring.keyFor('orders')).toBeUndefined();
        // The operator publishes a key (the same object desiredGatewayClientKeys makes): the watch delivers it.
        const key = 'ab'.repeat(32);
        const written = {
          ...(find(defaults, 'Secret', 'daftka-gateway-client-keys') as Any),
          data: { orders: Buffer.from(key).toString('base64') },
        };
        expect(await api.apply(written, false)).toBeNull();
        const t0 = Date.now();
        while (keyring.keyFor('orders') === undefined && Date.now() - t0 < 10_000)
          await new Promise((r) => setTimeout(r, 20));
        expect(keyring.keyFor('orders')?.toString('hex')).toBe(key);
        expect(changes).toEqual([1]);
        // Any other Secret — a topic's peer secret included — is forbidden to the same account.
        await expect(asGateway.get(`/api/v1/namespaces/${NS}/secrets/orders-peer-auth`)).rejects.toThrow(
          /403|forbidden/i,
        );
        await expect(asGateway.list(`/api/v1/namespaces/${NS}/secrets`)).rejects.toThrow(/403|forbidden/i);
      } finally {
        await keyring.stop();
        asGateway.close();
      }
    }, 60_000);

    test("the operator's service account is namespaced by default: its namespace's objects, nothing of another's", async () => {
      const api = new RawApplier(env.kc);
      for (const [kind, name] of [
        ['ServiceAccount', 'daftka-operator'],
        ['Role', 'daftka-operator'],
        ['RoleBinding', 'daftka-operator'],
      ])
        expect(await api.apply(find(defaults, kind, name) as Obj, false)).toBeNull();
      const asOperator = new KubeClient({
        kubeConfig: env.kc,
        impersonate: { user: `system:serviceaccount:${NS}:daftka-operator`, groups: ['system:serviceaccounts'] },
      });
      try {
        // Allowed in the release namespace (an absent Secret is null, not 403).
        expect(await asOperator.get(`/api/v1/namespaces/${NS}/secrets/orders-admin-auth`)).toBeNull();
        await expect(asOperator.list(`/apis/apps/v1/namespaces/${NS}/statefulsets`)).resolves.toBeDefined();
        // Another namespace, and cluster-wide lists, are forbidden.
        await expect(asOperator.get('/api/v1/namespaces/team-a/secrets/orders-peer-auth')).rejects.toThrow(
          /403|forbidden/i,
        );
        await expect(asOperator.list('/apis/apps/v1/statefulsets')).rejects.toThrow(/403|forbidden/i);
        await expect(asOperator.list('/api/v1/namespaces/team-a/pods')).rejects.toThrow(/403|forbidden/i);
      } finally {
        asOperator.close();
      }
    }, 60_000);

    test("the operator runs on the chart's namespaced RBAC: it reconciles Topics of its namespace (workloads, Secrets, the gateway's keys) and leaves another namespace's alone", async () => {
      const api = new RawApplier(env.kc);
      const ns = (o: Obj) => o.metadata.namespace;
      for (const o of defaults.filter(
        (x) =>
          (['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].includes(x.kind) &&
            x.metadata.name.startsWith('daftka-operator')) ||
          (x.kind === 'ConfigMap' && x.metadata.name === 'daftka-gateway-topics') ||
          (x.kind === 'Secret' && x.metadata.name === 'daftka-gateway-client-keys'),
      ))
        expect([o.kind, o.metadata.name, ns(o), await api.apply(o, false)]).toEqual([
          o.kind,
          o.metadata.name,
          ns(o),
          null,
        ]);
      const topic = (name: string, namespace: string): Obj => ({
        apiVersion: 'daftka.io/v1alpha1',
        kind: 'Topic',
        metadata: { name, namespace },
        spec: { partitions: 1, replicationFactor: 1 },
      });
      expect(await api.apply(topic('rbac-mine', NS), false)).toBeNull();
      expect(await api.apply(topic('rbac-theirs', 'team-a'), false)).toBeNull();
      const nats = await startNatsServer();
      const chartEnv = containerEnv('daftka-operator', defaults);
      const cfg = loadOperatorConfig(
        {
          DAFTKA_OPERATOR_NAMESPACE: NS,
          DAFTKA_OPERATOR_POD_NAME: 'rbac-test',
          DAFTKA_OPERATOR_LEASE_NAME: chartEnv.DAFTKA_OPERATOR_LEASE_NAME,
          DAFTKA_OPERATOR_WATCH_NAMESPACES: chartEnv.DAFTKA_OPERATOR_WATCH_NAMESPACES,
          DAFTKA_OPERATOR_GATEWAY_CATALOG_CONFIGMAP: chartEnv.DAFTKA_OPERATOR_GATEWAY_CATALOG_CONFIGMAP,
          DAFTKA_OPERATOR_GATEWAY_CLIENT_KEYS_SECRET: chartEnv.DAFTKA_OPERATOR_GATEWAY_CLIENT_KEYS_SECRET,
          DAFTKA_OPERATOR_REPLICA_CLIENT_KEYS: chartEnv.DAFTKA_OPERATOR_REPLICA_CLIENT_KEYS,
          DAFTKA_ADMIN_SECRET: 'a'.repeat(48),
          DAFTKA_NATS_URL: nats.url,
          DAFTKA_OPERATOR_LISTEN_HOST: '127.0.0.1',
          DAFTKA_OPERATOR_METRICS_PORT: '0',
          DAFTKA_LOG_LEVEL: 'error',
        },
        [],
      );
      const file = (find(defaults, 'ConfigMap', 'daftka-operator') as Any).data['replica-settings.json'];
      const op = await startOperator(cfg, {
        kubeConfig: env.kc,
        impersonate: { user: `system:serviceaccount:${NS}:daftka-operator`, groups: ['system:serviceaccounts'] },
        replicaSettings: loadReplicaSettings(cfg, () => file),
        logger: createLogger('operator-rbac-test', { stream: new PassThrough().resume() }),
      });
      const admin = new KubeClient({ kubeConfig: env.kc });
      try {
        const deadline = Date.now() + 60_000;
        const get = (path: string) => admin.get<Any>(path);
        let keys: Any = null;
        for (;;) {
          keys = await get(`/api/v1/namespaces/${NS}/secrets/daftka-gateway-client-keys`);
          const sts = await get(`/apis/apps/v1/namespaces/${NS}/statefulsets/rbac-mine-0`);
          if (sts && keys?.data?.['rbac-mine']) break;
          if (Date.now() > deadline) throw new Error('the operator did not reconcile rbac-mine with the chart RBAC');
          await new Promise((r) => setTimeout(r, 200));
        }
        for (const s of ['rbac-mine-peer-auth', 'rbac-mine-admin-auth'])
          expect(await get(`/api/v1/namespaces/${NS}/secrets/${s}`)).not.toBeNull();
        const catalog = await get(`/api/v1/namespaces/${NS}/configmaps/daftka-gateway-topics`);
        expect(JSON.parse(catalog.data['topics.json']).topics.map((t: Any) => t.name)).toEqual(['rbac-mine']);
        // team-a is not watched (and not allowed): nothing made there, its Topic untouched.
        expect(await get('/apis/apps/v1/namespaces/team-a/statefulsets/rbac-theirs-0')).toBeNull();
        expect(await get('/api/v1/namespaces/team-a/secrets/rbac-theirs-peer-auth')).toBeNull();
        expect(
          (await get('/apis/daftka.io/v1alpha1/namespaces/team-a/topics/rbac-theirs')).metadata.finalizers,
        ).toBeUndefined();
        expect(Object.keys(keys.data)).toEqual(['rbac-mine']);
        // The namespace's own keys Secret (replay within the namespace), written on the chart's RBAC.
        const nsKeys = await get(`/api/v1/namespaces/${NS}/secrets/daftka-client-keys`);
        expect(Object.keys(nsKeys.data)).toEqual(['rbac-mine']);
        expect(await get('/api/v1/namespaces/team-a/secrets/daftka-client-keys')).toBeNull();
      } finally {
        await op.stop();
        admin.close();
        await nats.stop();
      }
    }, 120_000);

    test("the gateway's service account watches its catalog ConfigMap through the chart's RBAC, and nothing else", async () => {
      const api = new RawApplier(env.kc);
      // For real this time: the namespace exists (previous test); the ServiceAccount, the catalog
      // ConfigMap and its Role/RoleBinding as the chart renders them.
      for (const [kind, name] of [
        ['ServiceAccount', 'daftka-gateway'],
        ['ConfigMap', 'daftka-gateway-topics'],
        ['Role', 'daftka-gateway-catalog'],
        ['RoleBinding', 'daftka-gateway-catalog'],
      ])
        expect(await api.apply(find(defaults, kind, name) as Obj, false)).toBeNull();
      const other: Obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'not-the-catalog', namespace: NS } };
      expect(await api.apply(other, false)).toBeNull();
      const asGateway = new KubeClient({
        kubeConfig: env.kc,
        impersonate: { user: `system:serviceaccount:${NS}:daftka-gateway`, groups: ['system:serviceaccounts'] },
      });
      const reloads: number[] = [];
      let catalogErrors: string[] = [];
      const catalog = new ConfigMapCatalog({
        kube: asGateway,
        namespace: NS,
        name: 'daftka-gateway-topics',
        logger: createLogger('catalog-test', { stream: new PassThrough().resume() }),
        onReload: (r) => (r.ok ? reloads.push(r.topics) : catalogErrors.push(r.error)),
      });
      catalog.start();
      try {
        const deadline = Date.now() + 20_000;
        while (!catalog.ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(catalog.ready()).toBe(true);
        expect(catalog.list()).toEqual([]);
        // The operator writes a topic: the watch delivers it.
        const doc = {
          topics: [
            {
              name: 'orders',
              partitions: 2,
              replicaEndpoints: [['orders-0-0.orders-0:7001'], ['orders-1-0.orders-1:7001']],
            },
          ],
        };
        const written = {
          ...(find(defaults, 'ConfigMap', 'daftka-gateway-topics') as Any),
          data: { 'topics.json': JSON.stringify(doc) },
        };
        const t0 = Date.now();
        expect(await api.apply(written, false)).toBeNull();
        while (catalog.get('orders') === undefined && Date.now() - t0 < 10_000)
          await new Promise((r) => setTimeout(r, 20));
        expect(catalog.get('orders')?.partitions).toBe(2);
        expect(reloads).toEqual([0, 1]);
        // A broken document is refused and the last good catalog stays.
        const rejected: string[] = [];
        catalogErrors = rejected;
        expect(
          await api.apply({ ...written, data: { 'topics.json': '{"topics": [{"name": "Bad Name"}]}' } }, false),
        ).toBeNull();
        const t1 = Date.now();
        while (rejected.length === 0 && Date.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 20));
        expect(rejected[0]).toMatch(/ConfigMap daftka\/daftka-gateway-topics key topics.json/);
        expect(catalog.get('orders')?.partitions).toBe(2);
        // Only that ConfigMap: another one is forbidden to the same account.
        await expect(
          asGateway.list(`/api/v1/namespaces/${NS}/configmaps`, { fieldSelector: 'metadata.name=not-the-catalog' }),
        ).rejects.toThrow(/403|forbidden/i);
        await expect(asGateway.list(`/api/v1/namespaces/${NS}/configmaps`)).rejects.toThrow(/403|forbidden/i);
      } finally {
        await catalog.stop();
        asGateway.close();
      }
    }, 60_000);
  });

  describe('bundled NATS permissions (rendered nats.conf run by a real nats-server)', () => {
    let server: ChildProcess;
    let port: number;
    let urls: Record<string, string>;
    const conns: NatsConnection[] = [];

    beforeAll(async () => {
      const secret = find(defaults, 'Secret', 'daftka-nats-config') as Any;
      const conf = path.join(work, 'nats.conf');
      fs.writeFileSync(conf, secret.stringData['nats.conf']);
      const clients = (find(defaults, 'Secret', 'daftka-nats-clients') as Any).stringData;
      port = await freePort();
      const monitor = await freePort();
      // Command-line ports override the config's 4222/8222; POD_NAME fills server_name.
      server = spawn('nats-server', ['-c', conf, '-a', '127.0.0.1', '-p', String(port), '-m', String(monitor)], {
        env: { ...process.env, POD_NAME: 'daftka-nats-0' },
        stdio: 'ignore',
      });
      urls = Object.fromEntries(
        ['operator', 'replica', 'gateway'].map((u) => [
          u,
          clients[`${u}-url`].replace(/@[^@]+$/, `@127.0.0.1:${port}`),
        ]),
      );
      const deadline = Date.now() + 15_000;
      for (;;) {
        try {
          const res = await fetch(`http://127.0.0.1:${monitor}/healthz`);
          if (res.ok) break;
        } catch {
          // not up yet
        }
        if (Date.now() > deadline) throw new Error('nats-server did not start with the rendered config');
        await new Promise((r) => setTimeout(r, 100));
      }
    }, 30_000);
    afterAll(async () => {
      for (const c of conns) await c.close().catch(() => undefined);
      server?.kill('SIGTERM');
    });

    async function as(user: string): Promise<NatsConnection> {
      const nc = await connect({ ...natsServerOptions([urls[user]]), timeout: 5000 });
      conns.push(nc);
      return nc;
    }

    /** Publishes, then reports whether the server refused it (a permissions violation). */
    async function refusedPublish(nc: NatsConnection, subject: string): Promise<boolean> {
      const errors: string[] = [];
      const watcher = (async () => {
        for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.data));
      })();
      nc.publish(subject, new Uint8Array(0));
      await nc.flush();
      await new Promise((r) => setTimeout(r, 300));
      void watcher;
      return errors.some((e) => /PERMISSIONS_VIOLATION/i.test(e));
    }

    test('the operator sends control requests and a replica answers them', async () => {
      const sc = StringCodec();
      const replica = await as('replica');
      replica.subscribe('daftka.v1.ctl.events.0', { callback: (_e, m) => m.respond(sc.encode('{"v":1,"ok":true}')) });
      await replica.flush();
      const operator = await as('operator');
      const reply = await operator.request('daftka.v1.ctl.events.0', sc.encode('{"v":1,"op":"status"}'), {
        timeout: 5000,
      });
      expect(sc.decode(reply.data)).toBe('{"v":1,"ok":true}');
    });

    test('replicas and gateways may not publish control requests; they publish what is theirs', async () => {
      const replica = await as('replica');
      const gateway = await as('gateway');
      expect(await refusedPublish(replica, 'daftka.v1.ctl.events.0')).toBe(true);
      expect(await refusedPublish(gateway, 'daftka.v1.ctl.events.0')).toBe(true);
      expect(await refusedPublish(gateway, 'daftka.v1.leader.events.0')).toBe(true);
      expect(await refusedPublish(replica, 'daftka.v1.leader.events.0')).toBe(false);
      expect(await refusedPublish(gateway, 'daftka.v1.discover.events')).toBe(false);
    });

    test("a replica asks another topic's leaders where they are (replay into another topic), on its own inbox", async () => {
      const sc = StringCodec();
      const leader = await as('replica');
      const answer = '{"v":1,"partitions":[{"partition":0,"leaderId":"0.a","endpoint":"x:1","term":1}]}';
      leader.subscribe('daftka.v1.discover.parked', { callback: (_e, m) => m.respond(sc.encode(answer)) });
      await leader.flush();
      const asker = await connect({
        ...natsServerOptions([urls.replica]),
        timeout: 5000,
        inboxPrefix: REPLICA_INBOX_PREFIX,
      });
      conns.push(asker);
      const reply = await asker.request('daftka.v1.discover.parked', new Uint8Array(0), { timeout: 5000 });
      expect(sc.decode(reply.data)).toBe(answer);
      // Other clients' inboxes stay closed to replicas.
      const snoop = await as('replica');
      const errors: string[] = [];
      void (async () => {
        for await (const s of snoop.status()) if (s.type === 'error') errors.push(String(s.data));
      })();
      snoop.subscribe('_INBOX.>');
      await snoop.flush();
      await new Promise((r) => setTimeout(r, 300));
      expect(errors.some((e) => /PERMISSIONS_VIOLATION/i.test(e))).toBe(true);
    });

    test('the gateway reads leader announcements and status reports (its readiness report), and may not subscribe to control requests', async () => {
      const sc = StringCodec();
      const gateway = await as('gateway');
      const errors: string[] = [];
      void (async () => {
        for await (const s of gateway.status()) if (s.type === 'error') errors.push(String(s.data));
      })();
      const got: string[] = [];
      for (const subject of ['daftka.v1.leader.>', 'daftka.v1.status.>', 'daftka.v1.operator.>'])
        gateway.subscribe(subject, { callback: (_e, m) => got.push(m.subject) });
      await gateway.flush();
      const replica = await as('replica');
      replica.publish('daftka.v1.leader.events.0', sc.encode('{}'));
      replica.publish('daftka.v1.status.events.0.0', sc.encode('{}'));
      await replica.flush();
      // The operator's health report (the readiness report's operator_reconcile check): only it may publish it.
      const operator = await as('operator');
      operator.publish('daftka.v1.operator.health', sc.encode('{}'));
      await operator.flush();
      expect(await refusedPublish(replica, 'daftka.v1.operator.health')).toBe(true);
      const deadline = Date.now() + 5000;
      while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(got.sort()).toEqual([
        'daftka.v1.leader.events.0',
        'daftka.v1.operator.health',
        'daftka.v1.status.events.0.0',
      ]);
      expect(errors).toEqual([]);
      gateway.subscribe('daftka.v1.ctl.>');
      await gateway.flush();
      await new Promise((r) => setTimeout(r, 300));
      expect(errors.some((e) => /PERMISSIONS_VIOLATION/i.test(e))).toBe(true);
    });

    test('a wrong password is refused', async () => {
      const bad = urls.gateway.replace(/:[^:@/]+@/, ':wrong@');
      await expect(connect({ ...natsServerOptions([bad]), timeout: 3000, reconnect: false })).rejects.toThrow(
        /Authorization/i,
      );
    });
  });
});
