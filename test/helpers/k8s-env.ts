/**
 * A real, throw-away Kubernetes control plane for tests: etcd + kube-apiserver, and optionally
 * kube-controller-manager, kube-scheduler and kwok with fake Nodes (spread over zones) so that
 * StatefulSet pods get scheduled and reach Running. Everything listens on 127.0.0.1 only, keeps its
 * data and logs in one temp dir, and is killed (whole process groups) on stop(), on failure to start
 * and when the test process exits. The binaries come from scripts/k8s-tools/build.sh.
 *
 * Per test file:
 *   let env: K8sEnv;
 *   beforeAll(async () => { env = await startK8sEnv({ nodes: 3 }); }, 180_000);
 *   afterAll(() => env?.stop());
 *
 * Or once per jest run (globalSetup/globalTeardown modules calling k8sGlobalSetup/k8sGlobalTeardown);
 * tests then use kubeConfigFromEnv(), which reads DAFTKA_KUBECONFIG.
 *
 * DAFTKA_K8S_KEEP=1 keeps the temp dir (logs, etcd data, kubeconfig) after stop() for debugging.
 */
import * as k8s from '@kubernetes/client-node';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './free-port';
import { makeControlPlaneCerts, type ControlPlaneCerts } from './k8s-certs';
import { KEEP_FILE, ProcessGroups, RUN_DIR_PREFIX, sweepStaleEnvs, tailFile, type ManagedProcess } from './k8s-procs';
import { readToolVersions, requireTool, type ToolVersions } from './k8s-tools';

export interface K8sEnvOptions {
  /** kwok fake Nodes to create (default 0: no kwok). More than 0 implies controlPlane. */
  nodes?: number;
  /** Also run kube-controller-manager and kube-scheduler (default: nodes > 0). */
  controlPlane?: boolean;
  /** Values of topology.kubernetes.io/zone, given to the Nodes round-robin (default zone-a, zone-b, zone-c). */
  zones?: string[];
  /** Capacity of each fake Node (default 32 cpu, 256Gi memory, 110 pods). */
  nodeCapacity?: { cpu: string; memory: string; pods: string };
  /** Extra kube-apiserver flags, e.g. ['--feature-gates=Foo=true']. */
  apiserverArgs?: string[];
  /** Limit for each start-up wait (default 120 s: a loaded 2-core machine is slow to start an apiserver). */
  startTimeoutMs?: number;
  /** Keep the temp dir after stop() (default: DAFTKA_K8S_KEEP=1). */
  keepDir?: boolean;
}

export interface K8sEnv {
  /** The temp dir holding pki/, etcd/, logs/ and the kubeconfig. */
  dir: string;
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: string;
  kc: k8s.KubeConfig;
  certs: ControlPlaneCerts;
  versions: ToolVersions;
  nodeNames: string[];
  /** Last lines of one component's log: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok. */
  logTail(component: string, lines?: number): string;
  /** Stops everything (idempotent). */
  stop(): Promise<void>;
}

const LOOPBACK = '127.0.0.1';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

class StartError extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
  }
}

function describeFailure(proc: ManagedProcess, what: string): StartError {
  const tail = tailFile(proc.logPath, 40);
  const exit = proc.exit ? ` (exited: code ${proc.exit.code}, signal ${proc.exit.signal})` : '';
  return new StartError(
    `${what}${exit}\n--- last lines of ${proc.logPath} ---\n${tail}`,
    /address already in use/i.test(tail),
  );
}

/** Polls check() until it returns true; fails early when proc exits, or after timeoutMs. */
async function waitUntil(
  proc: ManagedProcess,
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delayMs = 50;
  while (Date.now() < deadline) {
    if (proc.exit) throw describeFailure(proc, `${proc.name} exited while waiting for ${what}`);
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    await sleep(delayMs);
    delayMs = Math.min(delayMs * 2, 500);
  }
  throw describeFailure(proc, `timed out after ${timeoutMs} ms waiting for ${what}`);
}

interface HttpResult {
  status: number;
  body: string;
}

function httpGet(url: string, options: https.RequestOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const req = lib.get(url, { ...options, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/**
 * Starts one component on fresh loopback ports and waits until ready() says so. When a port was
 * taken between choosing and binding it (another test run on the same machine), it starts again on
 * new ports; any other failure is thrown with the tail of the component's log.
 */
async function startComponent<T>(
  groups: ProcessGroups,
  spec: {
    name: string;
    command: string;
    ports: number;
    args: (ports: number[]) => string[];
    env: NodeJS.ProcessEnv;
    what: string;
    timeoutMs: number;
    ready: (ports: number[]) => Promise<boolean>;
    result: (ports: number[]) => T;
  },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    while (ports.length < spec.ports) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const proc = groups.start(spec.name, spec.command, spec.args(ports), spec.env);
    try {
      await waitUntil(proc, spec.what, spec.timeoutMs, () => spec.ready(ports));
      return spec.result(ports);
    } catch (err) {
      await groups.stopOne(proc);
      if (!(err instanceof StartError && err.portInUse) || attempt >= 3) throw err;
    }
  }
}

function kubeconfigFor(server: string, certs: ControlPlaneCerts): string {
  const b64 = (file: string): string => fs.readFileSync(file).toString('base64');
  // JSON is YAML: every kubeconfig reader accepts it.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'daftka-test', cluster: { server, 'certificate-authority-data': b64(certs.caCert) } }],
      users: [
        {
          name: 'daftka-test-admin',
          user: { 'client-certificate-data': b64(certs.clientCert), 'client-key-data': b64(certs.clientKey) },
        },
      ],
      contexts: [
        { name: 'daftka-test', context: { cluster: 'daftka-test', user: 'daftka-test-admin', namespace: 'default' } },
      ],
      'current-context': 'daftka-test',
    },
    null,
    2,
  );
}

export async function startK8sEnv(options: K8sEnvOptions = {}): Promise<K8sEnv> {
  const nodeCount = options.nodes ?? 0;
  const controlPlane = options.controlPlane ?? nodeCount > 0;
  if (nodeCount > 0 && !controlPlane) throw new Error('startK8sEnv: fake nodes need the controller-manager');
  const zones = options.zones ?? ['zone-a', 'zone-b', 'zone-c'];
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const keepDir = options.keepDir ?? process.env.DAFTKA_K8S_KEEP === '1';

  const bins = {
    etcd: requireTool('etcd'),
    apiserver: requireTool('kube-apiserver'),
    controllerManager: controlPlane ? requireTool('kube-controller-manager') : '',
    scheduler: controlPlane ? requireTool('kube-scheduler') : '',
    kwok: nodeCount > 0 ? requireTool('kwok') : '',
  };
  const versions = readToolVersions();

  sweepStaleEnvs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), RUN_DIR_PREFIX));
  const logsDir = path.join(dir, 'logs');
  const groups = new ProcessGroups(dir, logsDir);
  if (keepDir) fs.writeFileSync(path.join(dir, KEEP_FILE), '');
  groups.startWatchdog(!keepDir);
  // Components get a clean environment: no proxies (all traffic is loopback), no inherited kubeconfig.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir, TMPDIR: dir };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await groups.stopAll();
    if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    const certs = makeControlPlaneCerts(path.join(dir, 'pki'));
    const tls = {
      ca: fs.readFileSync(certs.caCert),
      cert: fs.readFileSync(certs.clientCert),
      key: fs.readFileSync(certs.clientKey),
    };

    // --- etcd ----------------------------------------------------------------------------------
    const etcdUrl = await startComponent(groups, {
      name: 'etcd',
      command: bins.etcd,
      ports: 2,
      args: ([clientPort, peerPort]) => [
        '--name=default',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=http://${LOOPBACK}:${clientPort}`,
        `--advertise-client-urls=http://${LOOPBACK}:${clientPort}`,
        `--listen-peer-urls=http://${LOOPBACK}:${peerPort}`,
        `--initial-advertise-peer-urls=http://${LOOPBACK}:${peerPort}`,
        `--initial-cluster=default=http://${LOOPBACK}:${peerPort}`,
        '--initial-cluster-state=new',
        // Test data: durability across a machine crash does not matter, disk contention does.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      env,
      what: 'etcd /health',
      timeoutMs,
      ready: async ([clientPort]) => {
        const res = await httpGet(`http://${LOOPBACK}:${clientPort}/health`);
        return res.status === 200 && /"health":\s*"true"/.test(res.body);
      },
      result: ([clientPort]) => `http://${LOOPBACK}:${clientPort}`,
    });

    // --- kube-apiserver --------------------------------------------------------------------------
    const server = await startComponent(groups, {
      name: 'kube-apiserver',
      command: bins.apiserver,
      ports: 1,
      args: ([port]) => [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${LOOPBACK}`,
        `--advertise-address=${LOOPBACK}`,
        `--secure-port=${port}`,
        `--cert-dir=${path.join(dir, 'kube-apiserver')}`,
        `--tls-cert-file=${certs.servingCert}`,
        `--tls-private-key-file=${certs.servingKey}`,
        `--client-ca-file=${certs.caCert}`,
        '--authorization-mode=Node,RBAC',
        // On top of the default plugins (which include ValidatingAdmissionPolicy, GA since 1.30).
        '--enable-admission-plugins=NodeRestriction',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${certs.serviceAccountPub}`,
        `--service-account-signing-key-file=${certs.serviceAccountKey}`,
        // ClusterIPs come from the loopback range: if a test ever dials one, the packet stays here.
        '--service-cluster-ip-range=127.96.0.0/16',
        // The `kubernetes` Service would point at 127.0.0.1, which endpoint validation refuses.
        '--endpoint-reconciler-type=none',
        '--allow-privileged=true',
        '--profiling=false',
        ...(options.apiserverArgs ?? []),
      ],
      env,
      what: 'kube-apiserver /readyz',
      timeoutMs,
      ready: async ([port]) => (await httpGet(`https://${LOOPBACK}:${port}/readyz`, tls)).status === 200,
      result: ([port]) => `https://${LOOPBACK}:${port}`,
    });
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfigPath, kubeconfigFor(server, certs), { mode: 0o600 });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const core = kc.makeApiClient(k8s.CoreV1Api);

    // --- kube-controller-manager and kube-scheduler --------------------------------------------------
    if (controlPlane) {
      // Both serve /healthz on a loopback port with a self-signed certificate.
      const commonArgs = (name: string, port: number): string[] => [
        `--kubeconfig=${kubeconfigPath}`,
        // No --authentication/authorization-kubeconfig: only the always-allowed /healthz, /readyz and
        // /livez are used, and without a front proxy the delegated authn only logs CA-bundle errors.
        '--leader-elect=false',
        `--bind-address=${LOOPBACK}`,
        `--secure-port=${port}`,
        `--cert-dir=${path.join(dir, name)}`,
        '--profiling=false',
      ];
      const healthy = async ([port]: number[]): Promise<boolean> =>
        (await httpGet(`https://${LOOPBACK}:${port}/healthz`, { rejectUnauthorized: false })).status === 200;
      await startComponent(groups, {
        name: 'kube-controller-manager',
        command: bins.controllerManager,
        ports: 1,
        args: ([port]) => [
          ...commonArgs('kube-controller-manager', port),
          `--service-account-private-key-file=${certs.serviceAccountKey}`,
          `--root-ca-file=${certs.caCert}`,
          '--use-service-account-credentials=true',
        ],
        env,
        what: 'kube-controller-manager /healthz',
        timeoutMs,
        ready: healthy,
        result: () => undefined,
      });
      await startComponent(groups, {
        name: 'kube-scheduler',
        command: bins.scheduler,
        ports: 1,
        args: ([port]) => commonArgs('kube-scheduler', port),
        env,
        what: 'kube-scheduler /healthz',
        timeoutMs,
        ready: healthy,
        result: () => undefined,
      });
      // Pods can only be created once the ServiceAccount controller has made `default`.
      const cm = [...groups.procs].reverse().find((p) => p.name === 'kube-controller-manager')!;
      await waitUntil(cm, 'the default ServiceAccount', timeoutMs, async () => {
        await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
        return true;
      });
    }

    // --- kwok and fake Nodes -------------------------------------------------------------------------
    const nodeNames: string[] = [];
    if (nodeCount > 0) {
      const kwokStages = path.join(path.dirname(bins.kwok), 'stages.yaml');
      if (!fs.existsSync(kwokStages)) throw new Error(`${kwokStages} is missing: run scripts/k8s-tools/build.sh`);
      const kwok = groups.start(
        'kwok',
        bins.kwok,
        [
          `--kubeconfig=${kubeconfigPath}`,
          // The Stages (fake Node and Pod lifecycles) build.sh took from the kwok module.
          `--config=${kwokStages}`,
          '--manage-all-nodes=false',
          '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
          '--manage-nodes-with-label-selector=',
          '--manage-single-node=',
          // Fake addresses in Pod/Node status, from the loopback range so that nothing dialled leaves here.
          '--cidr=127.128.0.0/16',
          `--node-ip=${LOOPBACK}`,
          '--node-lease-duration-seconds=40',
        ],
        env,
      );
      const capacity = options.nodeCapacity ?? { cpu: '32', memory: '256Gi', pods: '110' };
      for (let i = 0; i < nodeCount; i++) {
        const name = `kwok-node-${i}`;
        nodeNames.push(name);
        await core.createNode({
          body: {
            apiVersion: 'v1',
            kind: 'Node',
            metadata: {
              name,
              annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
              labels: {
                'kubernetes.io/hostname': name,
                'kubernetes.io/os': 'linux',
                'kubernetes.io/arch': 'amd64',
                'topology.kubernetes.io/region': 'local',
                'topology.kubernetes.io/zone': zones[i % zones.length],
                type: 'kwok',
              },
            },
            status: { allocatable: capacity, capacity },
          },
        });
      }
      // Ready, and the controller-manager has lifted the not-ready taint that admission put on them.
      await waitUntil(kwok, `${nodeCount} Ready, untainted fake Nodes`, timeoutMs, async () => {
        const list = await core.listNode({ labelSelector: 'type=kwok' });
        const ready = list.items.filter(
          (n) =>
            n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
            !(n.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/')),
        );
        return ready.length >= nodeCount;
      });
    }

    return {
      dir,
      kubeconfigPath,
      server,
      kc,
      certs,
      versions,
      nodeNames,
      logTail: (component, lines = 40) => tailFile(path.join(logsDir, `${component}.log`), lines),
      stop,
    };
  } catch (err) {
    await stop();
    const hint = keepDir ? `logs kept in ${logsDir}` : `set DAFTKA_K8S_KEEP=1 to keep ${dir}`;
    if (err instanceof Error) err.message = `startK8sEnv failed (${hint}): ${err.message}`;
    throw err;
  }
}

const GLOBAL_KEY = '__daftkaK8sEnv';

/** For a jest globalSetup module: `export default () => k8sGlobalSetup({ nodes: 3 })`. */
export async function k8sGlobalSetup(options: K8sEnvOptions = {}): Promise<K8sEnv> {
  const env = await startK8sEnv(options);
  (globalThis as Record<string, unknown>)[GLOBAL_KEY] = env;
  // Test workers inherit the environment of the process that runs globalSetup.
  process.env.DAFTKA_KUBECONFIG = env.kubeconfigPath;
  process.env.DAFTKA_K8S_SERVER = env.server;
  return env;
}

/** For a jest globalTeardown module: `export default k8sGlobalTeardown`. */
export async function k8sGlobalTeardown(): Promise<void> {
  const env = (globalThis as Record<string, unknown>)[GLOBAL_KEY] as K8sEnv | undefined;
  delete (globalThis as Record<string, unknown>)[GLOBAL_KEY];
  await env?.stop();
}

/** In a test file under a k8sGlobalSetup: the KubeConfig of the shared environment. */
export function kubeConfigFromEnv(): k8s.KubeConfig {
  const file = process.env.DAFTKA_KUBECONFIG;
  if (!file) throw new Error('DAFTKA_KUBECONFIG is not set: is k8sGlobalSetup in the jest globalSetup?');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  return kc;
}
