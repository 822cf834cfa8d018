/**
 * A kubelet for tests (issue 17, item 2; first cut): plays the node agent for some Nodes of the
 * real test apiserver, so pods the operator and the chart create run real processes. kwok may keep
 * faking other nodes (it only manages nodes annotated kwok.x-k8s.io/node=fake).
 *
 * What it does, per Node it owns: registers the Node (Ready, zone label) and renews its Lease in
 * kube-node-lease. Per Pod bound to one of them: gives the pod its own loopback address (from
 * 127.64.0.0/16: the whole 127.0.0.0/8 is loopback), prepares its volumes as directories (a PVC's
 * directory is keyed by the claim's UID, so it outlives the pod and a new claim starts empty;
 * emptyDir per pod; Secret and ConfigMap volumes as files), resolves its environment (values,
 * Secret and ConfigMap keys, the downward API's name, namespace, podIP, nodeName), writes an
 * /etc/hosts with the cluster's names (StatefulSet pods behind headless Services, and each Service
 * name → one ready endpoint's address: no kube-proxy, so inside pods a Service port must equal its
 * target port; from the test, `serviceEndpoint` maps a Service port to a ready pod's address and
 * target port, as `kubectl port-forward svc/…` would), starts each container from the exported
 * image (test/helpers/k8s-image.ts: the image's filesystem, read-only root, as the image's user),
 * restarts it when it exits (restartCount, lastState), runs HTTP/TCP startup, readiness and
 * liveness probes (readiness and liveness only once the startup probe passed; a startup probe
 * failing `failureThreshold` times restarts the container), writes pod status, and on deletion
 * sends SIGTERM, then SIGKILL after the grace period, and removes the pod.
 *
 * Every process shares the host's network namespace, so a wildcard bind (0.0.0.0, ::, no host)
 * would take the port on every address and collide with the next pod. A pod's own network
 * namespace is emulated for Node programs: the runner preloads (NODE_OPTIONS --require) a few
 * lines that turn a wildcard `listen` into a listen on the pod's address. Programs run by a
 * launcher must be given the address themselves (ContainerRun.podIP).
 *
 * Storage: a claim with no storage class (the cluster default when there is none) gets a
 * PersistentVolume made for it and bound to it (`provisionClaims`, on by default), like a
 * local-path provisioner; the volume's directory is the claim's (keyed by its UID).
 *
 * Not yet: init containers, exec probes, resource limits, image pull (every container runs the one
 * exported image unless `launchers` maps its image to something else).
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { constants } from 'node:os';
import * as path from 'node:path';
import { KubeClient, RESOURCES, resourcePath } from '../../common/kube';
import { runFromImage, stopProcess, type ExportedImage, type Mount } from './k8s-image';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = any;

export interface PodRunnerOptions {
  kube: KubeClient;
  /** Node names this runner owns (created if missing). */
  nodes: string[];
  /** Zones, round-robin over the nodes (topology.kubernetes.io/zone). */
  zones?: string[];
  /** The image every container runs (unless a launcher matches its image reference). */
  image: ExportedImage;
  /** Volumes, hosts files and container logs live here. */
  workDir: string;
  /** Image reference → how to start such a container instead of the exported image. */
  launchers?: Record<string, (c: ContainerRun) => ChildProcess>;
  pollMs?: number;
  clusterDomain?: string;
  /**
   * The apiserver's URL as pods reach it (https://127.0.0.1:<port>): given, every container gets
   * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, as the kubelet sets them, so in-cluster
   * clients find it with the service account volume (projected: token, kube-root-ca.crt, namespace).
   */
  apiServer?: string;
  /** Make a PersistentVolume for each pending claim without a storage class (default true). */
  provisionClaims?: boolean;
}

export interface ContainerRun {
  pod: Obj;
  container: Obj;
  env: Record<string, string>;
  mounts: Mount[];
  podIP: string;
}

interface ContainerState {
  name: string;
  proc: ChildProcess | null;
  restartCount: number;
  startedAt?: string;
  lastExit?: { exitCode: number; reason: string; finishedAt: string };
  ready: boolean;
  /** The startup probe passed (or there is none): readiness and liveness probes run from then on. */
  started: boolean;
  startFailures: number;
  startProbedAtMs: number;
  live: boolean;
  liveFailures: number;
  /** When each probe last ran (probes run every periodSeconds, not every pass). */
  readyProbedAtMs: number;
  liveProbedAtMs: number;
  restartAtMs: number;
  backoffMs: number;
}

interface PodState {
  uid: string;
  namespace: string;
  name: string;
  node: string;
  podIP: string;
  startTime: string;
  containers: ContainerState[];
  pod: Obj;
  stopping: boolean;
  lastStatus: string;
}

export class PodRunner {
  private readonly pods = new Map<string, PodState>();
  private readonly timers: NodeJS.Timeout[] = [];
  private nextIp = 1;
  private readonly provisioned = new Set<string>();
  private readonly claimsToWipe = new Set<string>();
  private stopped = false;
  private busy = false;
  private readonly hostsFile: string;
  readonly errors: string[] = [];
  /** Every container exit: pod, its UID, container, code (null when killed by a signal), signal. */
  readonly exits: Array<{ pod: string; uid: string; container: string; code: number | null; signal: string | null }> =
    [];

  constructor(private readonly o: PodRunnerOptions) {
    this.hostsFile = path.join(o.workDir, 'hosts');
  }

  static async start(o: PodRunnerOptions): Promise<PodRunner> {
    const r = new PodRunner(o);
    fs.mkdirSync(o.workDir, { recursive: true });
    fs.writeFileSync(r.hostsFile, '127.0.0.1 localhost\n');
    await r.registerNodes();
    r.timers.push(setInterval(() => void r.heartbeat(), 5000));
    r.timers.push(setInterval(() => void r.sync(), o.pollMs ?? 500));
    await r.sync();
    return r;
  }

  /** Kills every container (SIGKILL after 2 s) and stops; Nodes and Pods stay in the apiserver. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.all(
      [...this.pods.values()].flatMap((p) => p.containers.map((c) => (c.proc ? stopProcess(c.proc, 2000) : undefined))),
    );
    this.pods.clear();
  }

  /**
   * The containers of the pods this runner plays (pods being deleted included), for tests that
   * watch processes come and go: whether each runs now, its pid, readiness and restarts.
   */
  containers(namespace?: string): Array<{
    namespace: string;
    pod: string;
    uid: string;
    node: string;
    podIP: string;
    labels: Record<string, string>;
    container: string;
    pid: number | null;
    running: boolean;
    ready: boolean;
    restartCount: number;
    stopping: boolean;
  }> {
    return [...this.pods.values()]
      .filter((st) => namespace === undefined || st.namespace === namespace)
      .flatMap((st) =>
        st.containers.map((c) => ({
          namespace: st.namespace,
          pod: st.name,
          uid: st.uid,
          node: st.node,
          podIP: st.podIP,
          labels: (st.pod.metadata.labels ?? {}) as Record<string, string>,
          container: c.name,
          pid: c.proc?.pid ?? null,
          running: c.proc !== null,
          ready: c.ready && c.proc !== null,
          restartCount: c.restartCount,
          stopping: st.stopping,
        })),
      );
  }

  /**
   * Sends `signal` to a running container's process group (as a crash or the OOM killer would:
   * the runner restarts it per the pod's restartPolicy). False when no such container runs.
   */
  signalContainer(namespace: string, pod: string, container: string, signal: NodeJS.Signals): boolean {
    const st = [...this.pods.values()].find((p) => p.namespace === namespace && p.name === pod && !p.stopping);
    const proc = st?.containers.find((c) => c.name === container)?.proc;
    if (!proc?.pid) return false;
    try {
      process.kill(-proc.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The claim's volume is emptied right before the next container that mounts it starts (a disk
   * lost or wiped under a pod: the claim stays bound, its data is gone). Done at start, not now,
   * so a process still running cannot write into the emptied directory.
   */
  wipeClaimBeforeNextStart(namespace: string, claim: string): void {
    this.claimsToWipe.add(`${namespace}/${claim}`);
  }

  /** Claims wiped so far (namespace/name), in order. */
  readonly wipedClaims: string[] = [];

  /** Where a container's output goes. */
  logPath(namespace: string, pod: string, container: string): string {
    return path.join(this.o.workDir, 'logs', `${namespace}_${pod}_${container}.log`);
  }

  // ---- nodes ------------------------------------------------------------------------------------

  private async registerNodes(): Promise<void> {
    const zones = this.o.zones ?? ['zone-a', 'zone-b', 'zone-c'];
    for (const [i, name] of this.o.nodes.entries()) {
      const existing = await this.o.kube.get(resourcePath(RESOURCES.nodes, { name }));
      if (!existing)
        await this.o.kube.create(resourcePath(RESOURCES.nodes), {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: {
            name,
            labels: {
              'kubernetes.io/hostname': name,
              'kubernetes.io/os': 'linux',
              'kubernetes.io/arch': 'amd64',
              'topology.kubernetes.io/region': 'local',
              'topology.kubernetes.io/zone': zones[i % zones.length],
              type: 'pod-runner',
            },
          },
          spec: {},
        });
    }
    await this.heartbeat();
  }

  private async heartbeat(): Promise<void> {
    const now = new Date().toISOString();
    for (const name of this.o.nodes) {
      try {
        await this.o.kube.patch(resourcePath(RESOURCES.nodes, { name, subresource: 'status' }), {
          status: {
            capacity: { cpu: '32', memory: '256Gi', pods: '110' },
            allocatable: { cpu: '32', memory: '256Gi', pods: '110' },
            addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: 'PodRunnerReady',
                lastHeartbeatTime: now,
                lastTransitionTime: now,
              },
              ...['MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({
                type,
                status: 'False',
                reason: 'PodRunner',
                lastHeartbeatTime: now,
                lastTransitionTime: now,
              })),
            ],
            nodeInfo: { kubeletVersion: 'v1.34.4-pod-runner', architecture: 'amd64', operatingSystem: 'linux' },
          },
        });
        const lease = resourcePath(RESOURCES.leases, { namespace: 'kube-node-lease', name });
        const body = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace: 'kube-node-lease' },
          spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: now.replace('Z', '000Z') },
        };
        await this.o.kube.apply(lease, body, 'pod-runner');
      } catch (err) {
        this.note(`heartbeat ${name}: ${(err as Error).message}`);
      }
    }
  }

  // ---- pods -------------------------------------------------------------------------------------

  private async sync(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const pods = (await this.o.kube.list<Obj>(resourcePath(RESOURCES.pods))).items;
      const mine = pods.filter((p) => this.o.nodes.includes(p.spec?.nodeName));
      const seen = new Set<string>();
      for (const pod of mine) {
        seen.add(pod.metadata.uid);
        let st = this.pods.get(pod.metadata.uid);
        if (!st) {
          if (pod.metadata.deletionTimestamp) {
            await this.finalDelete(pod);
            continue;
          }
          st = await this.startPod(pod);
        }
        st.pod = pod;
        if (pod.metadata.deletionTimestamp && !st.stopping) void this.stopPod(st, pod);
      }
      // Force-deleted pods: kill what is left.
      for (const [uid, st] of this.pods)
        if (!seen.has(uid) && !st.stopping) {
          st.stopping = true;
          await Promise.all(st.containers.map((c) => (c.proc ? stopProcess(c.proc, 0) : undefined)));
          this.pods.delete(uid);
        }
      await this.writeHosts(pods);
      if (this.o.provisionClaims !== false) await this.provisionClaims();
      for (const st of this.pods.values()) if (!st.stopping) await this.tend(st);
    } catch (err) {
      this.note(`sync: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private async startPod(pod: Obj): Promise<PodState> {
    const n = this.nextIp++;
    const st: PodState = {
      uid: pod.metadata.uid,
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      node: pod.spec.nodeName,
      podIP: `127.64.${Math.floor(n / 250)}.${(n % 250) + 2}`,
      startTime: new Date().toISOString(),
      containers: (pod.spec.containers as Obj[]).map((c) => ({
        name: c.name,
        proc: null,
        restartCount: 0,
        ready: false,
        started: false,
        startFailures: 0,
        startProbedAtMs: 0,
        live: true,
        liveFailures: 0,
        readyProbedAtMs: 0,
        liveProbedAtMs: 0,
        restartAtMs: 0,
        backoffMs: 1000,
      })),
      pod,
      stopping: false,
      lastStatus: '',
    };
    this.pods.set(st.uid, st);
    return st;
  }

  /** Starts containers that are due, probes them, writes status. */
  private async tend(st: PodState): Promise<void> {
    const now = Date.now();
    for (const [i, c] of st.containers.entries()) {
      if (c.proc === null && now >= c.restartAtMs) {
        try {
          c.proc = await this.launch(st, st.pod.spec.containers[i]);
          c.startedAt = new Date().toISOString();
          c.ready = false;
          c.started = false;
          c.startFailures = 0;
          c.startProbedAtMs = 0;
          c.live = true;
          c.liveFailures = 0;
          c.readyProbedAtMs = 0;
          c.liveProbedAtMs = 0;
          const proc = c.proc;
          proc.once('exit', (code, signal) => {
            this.exits.push({ pod: `${st.namespace}/${st.name}`, uid: st.uid, container: c.name, code, signal });
            if (c.proc !== proc) return;
            c.proc = null;
            c.ready = false;
            c.lastExit = {
              exitCode: code ?? 128 + (signal ? constants.signals[signal] : 9),
              reason: code === 0 ? 'Completed' : 'Error',
              finishedAt: new Date().toISOString(),
            };
            if (st.stopping || st.pod.spec.restartPolicy === 'Never') return;
            if (st.pod.spec.restartPolicy === 'OnFailure' && code === 0) return;
            c.restartCount++;
            c.restartAtMs = Date.now() + c.backoffMs;
            c.backoffMs = Math.min(c.backoffMs * 2, 10_000);
          });
        } catch (err) {
          this.note(`start ${st.namespace}/${st.name}/${c.name}: ${(err as Error).message}`);
          c.restartAtMs = now + 2000;
        }
      }
      if (c.proc) await this.probe(st, st.pod.spec.containers[i], c);
    }
    await this.writeStatus(st);
  }

  private async launch(st: PodState, container: Obj): Promise<ChildProcess> {
    const pod = st.pod;
    const env = await this.envOf(pod, container, st);
    const mounts = await this.mountsOf(pod, container, st);
    mounts.push({ hostPath: this.hostsFile, containerPath: '/etc/hosts', readOnly: true });
    const custom = this.o.launchers?.[container.image];
    if (!custom) {
      // The pod's own address for wildcard binds (the header: a network namespace, emulated).
      const preload = path.join(this.o.workDir, 'pods', st.uid, 'pod-net.cjs');
      fs.mkdirSync(path.dirname(preload), { recursive: true });
      fs.writeFileSync(preload, podNetPreload(st.podIP));
      mounts.push({ hostPath: preload, containerPath: POD_NET_PRELOAD, readOnly: true });
      const imageOptions = (this.o.image.config.Env ?? [])
        .find((e) => e.startsWith('NODE_OPTIONS='))
        ?.slice('NODE_OPTIONS='.length);
      env.NODE_OPTIONS = [env.NODE_OPTIONS ?? imageOptions, `--require ${POD_NET_PRELOAD}`].filter((x) => x).join(' ');
    }
    const proc = custom
      ? custom({ pod, container, env, mounts, podIP: st.podIP })
      : runFromImage(this.o.image, {
          ...(container.command ? { command: container.command } : {}),
          ...(container.args ? { args: container.args } : {}),
          env,
          // Symlinks in the image are followed inside it (/var/run → /run), never on the host.
          mounts: mounts.map((m) => ({ ...m, containerPath: resolveInRoot(this.o.image.rootfs, m.containerPath) })),
        });
    const logFile = this.logPath(st.namespace, st.name, container.name);
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    const log = fs.createWriteStream(logFile, { flags: 'a' });
    proc.stdout?.pipe(log, { end: false });
    proc.stderr?.pipe(log, { end: false });
    return proc;
  }

  private async envOf(pod: Obj, container: Obj, st: PodState): Promise<Record<string, string>> {
    const ns = pod.metadata.namespace;
    const env: Record<string, string> = { HOSTNAME: pod.spec.hostname ?? pod.metadata.name };
    if (this.o.apiServer) {
      const u = new URL(this.o.apiServer);
      env.KUBERNETES_SERVICE_HOST = u.hostname;
      env.KUBERNETES_SERVICE_PORT = u.port || '443';
      env.KUBERNETES_SERVICE_PORT_HTTPS = env.KUBERNETES_SERVICE_PORT;
    }
    for (const from of (container.envFrom ?? []) as Obj[]) {
      const src = from.secretRef
        ? await this.o.kube.get<Obj>(resourcePath(RESOURCES.secrets, { namespace: ns, name: from.secretRef.name }))
        : await this.o.kube.get<Obj>(
            resourcePath(RESOURCES.configmaps, { namespace: ns, name: from.configMapRef.name }),
          );
      for (const [k, v] of Object.entries((src?.data ?? {}) as Record<string, string>))
        env[`${from.prefix ?? ''}${k}`] = from.secretRef ? Buffer.from(v, 'base64').toString() : v;
    }
    for (const e of (container.env ?? []) as Obj[]) {
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (e.valueFrom?.secretKeyRef || e.valueFrom?.configMapKeyRef) {
        const ref = e.valueFrom.secretKeyRef ?? e.valueFrom.configMapKeyRef;
        const r = e.valueFrom.secretKeyRef ? RESOURCES.secrets : RESOURCES.configmaps;
        const obj = await this.o.kube.get<Obj>(resourcePath(r, { namespace: ns, name: ref.name }));
        const v = obj?.data?.[ref.key];
        if (v === undefined) {
          if (ref.optional) continue;
          throw new Error(`env ${e.name}: ${ref.name}/${ref.key} not found`);
        }
        env[e.name] = e.valueFrom.secretKeyRef ? Buffer.from(v, 'base64').toString() : v;
      } else if (e.valueFrom?.fieldRef) {
        const f: string = e.valueFrom.fieldRef.fieldPath;
        const label = /^metadata\.labels\['(.+)'\]$/.exec(f);
        env[e.name] =
          f === 'metadata.name'
            ? pod.metadata.name
            : f === 'metadata.namespace'
              ? ns
              : f === 'metadata.uid'
                ? pod.metadata.uid
                : f === 'status.podIP'
                  ? st.podIP
                  : f === 'spec.nodeName'
                    ? st.node
                    : f === 'status.hostIP'
                      ? '127.0.0.1'
                      : label
                        ? (pod.metadata.labels?.[label[1]] ?? '')
                        : '';
      }
    }
    return env;
  }

  private async mountsOf(pod: Obj, container: Obj, st: PodState): Promise<Mount[]> {
    const ns = pod.metadata.namespace;
    const dirs = new Map<string, string>();
    for (const v of (pod.spec.volumes ?? []) as Obj[]) {
      let dir: string;
      if (v.persistentVolumeClaim) {
        const claim = await this.o.kube.get<Obj>(
          resourcePath(RESOURCES.pvcs, { namespace: ns, name: v.persistentVolumeClaim.claimName }),
        );
        if (!claim) throw new Error(`volume ${v.name}: claim ${v.persistentVolumeClaim.claimName} not found`);
        dir = path.join(this.o.workDir, 'pvc', ns, `${claim.metadata.name}-${claim.metadata.uid}`);
        const wipe = `${ns}/${claim.metadata.name}`;
        if (this.claimsToWipe.delete(wipe)) {
          fs.rmSync(dir, { recursive: true, force: true });
          this.wipedClaims.push(wipe);
        }
      } else if (v.secret || v.configMap) {
        const r = v.secret ? RESOURCES.secrets : RESOURCES.configmaps;
        const name = v.secret ? v.secret.secretName : v.configMap.name;
        const obj = await this.o.kube.get<Obj>(resourcePath(r, { namespace: ns, name }));
        dir = path.join(this.o.workDir, 'pods', st.uid, v.name);
        fs.mkdirSync(dir, { recursive: true });
        for (const [k, val] of Object.entries((obj?.data ?? {}) as Record<string, string>))
          fs.writeFileSync(path.join(dir, k), v.secret ? Buffer.from(val, 'base64') : val);
      } else if (v.projected) {
        dir = path.join(this.o.workDir, 'pods', st.uid, v.name);
        fs.mkdirSync(dir, { recursive: true });
        for (const [file, content] of await this.projectedFiles(pod, v.projected))
          fs.writeFileSync(path.join(dir, file), content, { mode: 0o644 });
      } else {
        dir = path.join(this.o.workDir, 'pods', st.uid, v.name); // emptyDir and anything else
      }
      fs.mkdirSync(dir, { recursive: true });
      // The container's user must be able to write its volumes (fsGroup-like).
      const uid = pod.spec.securityContext?.runAsUser ?? 10001;
      const gid = pod.spec.securityContext?.fsGroup ?? uid;
      if (!v.secret && !v.configMap && !v.projected) fs.chownSync(dir, uid, gid);
      dirs.set(v.name, dir);
    }
    return ((container.volumeMounts ?? []) as Obj[]).map((m) => ({
      hostPath: m.subPath ? path.join(dirs.get(m.name)!, m.subPath) : dirs.get(m.name)!,
      containerPath: m.mountPath,
      readOnly: m.readOnly === true,
    }));
  }

  /**
   * A projected volume's files: a service account token from the TokenRequest API (bound to the
   * pod), ConfigMap and Secret keys, downward API fields — what the admission plugin's
   * kube-api-access volume holds (token, ca.crt, namespace).
   */
  private async projectedFiles(pod: Obj, projected: Obj): Promise<Array<[string, string | Buffer]>> {
    const ns = pod.metadata.namespace;
    const files: Array<[string, string | Buffer]> = [];
    for (const src of (projected.sources ?? []) as Obj[]) {
      if (src.serviceAccountToken) {
        const sa = pod.spec.serviceAccountName ?? 'default';
        const r = await this.o.kube.create<Obj>(
          `/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts/${encodeURIComponent(sa)}/token`,
          {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: {
              ...(src.serviceAccountToken.audience ? { audiences: [src.serviceAccountToken.audience] } : {}),
              expirationSeconds: src.serviceAccountToken.expirationSeconds ?? 3600,
              boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
            },
          },
        );
        files.push([src.serviceAccountToken.path, r.status.token as string]);
      } else if (src.configMap || src.secret) {
        const ref = src.configMap ?? src.secret;
        const obj = await this.o.kube.get<Obj>(
          resourcePath(src.configMap ? RESOURCES.configmaps : RESOURCES.secrets, { namespace: ns, name: ref.name }),
        );
        if (!obj) {
          if (ref.optional) continue;
          throw new Error(`projected ${src.configMap ? 'ConfigMap' : 'Secret'} ${ref.name} not found`);
        }
        const data = (obj.data ?? {}) as Record<string, string>;
        const items =
          (ref.items as Array<{ key: string; path: string }> | undefined) ??
          Object.keys(data).map((key) => ({ key, path: key }));
        for (const it of items)
          if (data[it.key] !== undefined)
            files.push([it.path, src.secret ? Buffer.from(data[it.key], 'base64') : data[it.key]]);
      } else if (src.downwardAPI) {
        for (const it of (src.downwardAPI.items ?? []) as Obj[]) {
          const f: string | undefined = it.fieldRef?.fieldPath;
          const v =
            f === 'metadata.namespace'
              ? ns
              : f === 'metadata.name'
                ? pod.metadata.name
                : f === 'metadata.uid'
                  ? pod.metadata.uid
                  : '';
          files.push([it.path, v]);
        }
      }
    }
    return files;
  }

  private async probe(st: PodState, container: Obj, c: ContainerState): Promise<void> {
    const check = async (p: Obj): Promise<boolean> => {
      const port = resolvePort(container, (p.httpGet ?? p.tcpSocket).port);
      if (p.httpGet) {
        const r = await fetch(`http://${st.podIP}:${port}${p.httpGet.path ?? '/'}`, {
          signal: AbortSignal.timeout((p.timeoutSeconds ?? 1) * 1000),
        }).catch(() => null);
        return r !== null && r.status >= 200 && r.status < 400;
      }
      return new Promise((resolve) => {
        const s = net.connect({ host: st.podIP, port }, () => {
          s.destroy();
          resolve(true);
        });
        s.setTimeout((p.timeoutSeconds ?? 1) * 1000, () => {
          s.destroy();
          resolve(false);
        });
        s.on('error', () => resolve(false));
      });
    };
    const now = Date.now();
    const since = now - Date.parse(c.startedAt ?? new Date(now).toISOString());
    /** Due: past its initial delay and a period after its last run (Kubernetes' defaults: 0 s, 10 s). */
    const due = (p: Obj, last: number) =>
      since >= (p.initialDelaySeconds ?? 0) * 1000 && now - last >= (p.periodSeconds ?? 10) * 1000;
    const sp = container.startupProbe;
    if (!c.started) {
      if (!sp || !(sp.httpGet || sp.tcpSocket)) c.started = true;
      else if (due(sp, c.startProbedAtMs)) {
        c.startProbedAtMs = now;
        if (await check(sp)) c.started = true;
        else if (++c.startFailures >= (sp.failureThreshold ?? 3) && c.proc) {
          c.startFailures = 0;
          void stopProcess(c.proc, (st.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000);
        }
      }
      if (!c.started) return;
    }
    const rp = container.readinessProbe;
    if (!rp || !(rp.httpGet || rp.tcpSocket)) c.ready = true;
    else if (due(rp, c.readyProbedAtMs)) {
      c.readyProbedAtMs = now;
      c.ready = await check(rp);
    }
    const lp = container.livenessProbe;
    if (lp && (lp.httpGet || lp.tcpSocket) && due(lp, c.liveProbedAtMs)) {
      c.liveProbedAtMs = now;
      if (await check(lp)) c.liveFailures = 0;
      else if (++c.liveFailures >= (lp.failureThreshold ?? 3) && c.proc) {
        c.liveFailures = 0;
        void stopProcess(c.proc, (st.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000);
      }
    }
  }

  private async writeStatus(st: PodState): Promise<void> {
    const allReady = st.containers.every((c) => c.ready && c.proc !== null);
    const cond = (type: string, ok: boolean) => ({ type, status: ok ? 'True' : 'False' });
    const status = {
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: st.podIP,
      podIPs: [{ ip: st.podIP }],
      startTime: st.startTime,
      conditions: [
        cond('PodScheduled', true),
        cond('Initialized', true),
        cond('ContainersReady', allReady),
        cond('Ready', allReady),
      ],
      containerStatuses: st.containers.map((c, i) => ({
        name: c.name,
        image: st.pod.spec.containers[i].image,
        imageID: st.pod.spec.containers[i].image,
        containerID: `pod-runner://${st.uid}/${c.name}/${c.restartCount}`,
        ready: c.ready && c.proc !== null,
        started: c.proc !== null && c.started,
        restartCount: c.restartCount,
        state: c.proc
          ? { running: { startedAt: c.startedAt } }
          : c.lastExit
            ? { waiting: { reason: 'CrashLoopBackOff' } }
            : { waiting: { reason: 'ContainerCreating' } },
        ...(c.lastExit ? { lastState: { terminated: c.lastExit } } : {}),
      })),
    };
    const json = JSON.stringify(status);
    if (json === st.lastStatus) return;
    try {
      await this.o.kube.patch(
        resourcePath(RESOURCES.pods, { namespace: st.namespace, name: st.name, subresource: 'status' }),
        { status },
        'merge',
      );
      st.lastStatus = json;
    } catch (err) {
      this.note(`status ${st.namespace}/${st.name}: ${(err as Error).message}`);
    }
  }

  private async stopPod(st: PodState, pod: Obj): Promise<void> {
    st.stopping = true;
    const graceMs = (pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
    await Promise.all(st.containers.map((c) => (c.proc ? stopProcess(c.proc, graceMs) : undefined)));
    await this.finalDelete(pod);
    this.pods.delete(st.uid);
  }

  /** The kubelet's last word: the pod's containers are gone, delete it for good. */
  private async finalDelete(pod: Obj): Promise<void> {
    try {
      await this.o.kube.request(
        'DELETE',
        resourcePath(RESOURCES.pods, { namespace: pod.metadata.namespace, name: pod.metadata.name }),
        {
          body: {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            gracePeriodSeconds: 0,
            preconditions: { uid: pod.metadata.uid },
          },
        },
      );
    } catch (err) {
      if (!/404|409/.test((err as Error).message)) this.note(`delete ${pod.metadata.name}: ${(err as Error).message}`);
    }
  }

  // ---- storage ----------------------------------------------------------------------------------

  /** A PersistentVolume for each pending claim without a storage class, bound to it by claimRef. */
  private async provisionClaims(): Promise<void> {
    const claims = (await this.o.kube.list<Obj>(resourcePath(RESOURCES.pvcs))).items;
    for (const c of claims) {
      if (c.status?.phase !== 'Pending' || c.spec.volumeName || (c.spec.storageClassName ?? '') !== '') continue;
      if (c.metadata.deletionTimestamp) continue;
      const name = `pod-runner-${c.metadata.uid}`;
      if (this.provisioned.has(name)) continue;
      try {
        await this.o.kube.create('/api/v1/persistentvolumes', {
          apiVersion: 'v1',
          kind: 'PersistentVolume',
          metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'pod-runner' } },
          spec: {
            capacity: { storage: c.spec.resources?.requests?.storage ?? '1Gi' },
            accessModes: c.spec.accessModes ?? ['ReadWriteOnce'],
            persistentVolumeReclaimPolicy: 'Delete',
            claimRef: { namespace: c.metadata.namespace, name: c.metadata.name, uid: c.metadata.uid },
            // Never read: the runner mounts the claim's own directory (mountsOf).
            hostPath: { path: path.join(this.o.workDir, 'pvc', c.metadata.namespace, name) },
          },
        });
        this.provisioned.add(name);
      } catch (err) {
        if (/409|already exists/i.test((err as Error).message)) this.provisioned.add(name);
        else this.note(`provision ${c.metadata.namespace}/${c.metadata.name}: ${(err as Error).message}`);
      }
    }
  }

  // ---- services ---------------------------------------------------------------------------------

  /**
   * Where a Service's port leads, as `kubectl port-forward svc/<name> <port>` would reach it: a
   * ready pod's address and the target port (named ports resolved in that pod's containers).
   * Undefined while no selected pod is ready.
   */
  async serviceEndpoint(
    namespace: string,
    name: string,
    port?: number | string,
  ): Promise<{ host: string; port: number } | undefined> {
    const svc = await this.o.kube.get<Obj>(resourcePath(RESOURCES.services, { namespace, name }));
    if (!svc) throw new Error(`Service ${namespace}/${name} not found`);
    const sp = ((svc.spec.ports ?? []) as Obj[]).find((p) =>
      port === undefined ? true : p.port === port || p.name === port,
    );
    if (!sp) throw new Error(`Service ${namespace}/${name} has no port ${port}`);
    const sel = (svc.spec.selector ?? {}) as Record<string, string>;
    for (const st of this.pods.values()) {
      const labels = (st.pod.metadata.labels ?? {}) as Record<string, string>;
      if (st.stopping || st.namespace !== namespace || !Object.entries(sel).every(([k, v]) => labels[k] === v))
        continue;
      if (!st.containers.every((c) => c.ready && c.proc !== null)) continue;
      const target = sp.targetPort ?? sp.port;
      if (typeof target === 'number') return { host: st.podIP, port: target };
      for (const c of st.pod.spec.containers as Obj[]) {
        const p = ((c.ports ?? []) as Obj[]).find((x) => x.name === target);
        if (p) return { host: st.podIP, port: p.containerPort };
      }
    }
    return undefined;
  }

  // ---- names ------------------------------------------------------------------------------------

  /** /etc/hosts for every container: StatefulSet pods by their stable names, Services → a ready endpoint. */
  private async writeHosts(pods: Obj[]): Promise<void> {
    const domain = this.o.clusterDomain ?? 'cluster.local';
    const ipOf = new Map<string, string>();
    for (const st of this.pods.values()) ipOf.set(st.uid, st.podIP);
    const lines = ['127.0.0.1 localhost'];
    const readyIps: Array<{ ns: string; labels: Record<string, string>; ip: string }> = [];
    for (const p of pods) {
      const ip = ipOf.get(p.metadata.uid) ?? p.status?.podIP;
      if (!ip || p.metadata.deletionTimestamp) continue;
      const ns = p.metadata.namespace;
      if (p.spec.hostname && p.spec.subdomain) {
        const short = `${p.spec.hostname}.${p.spec.subdomain}`;
        lines.push(`${ip} ${short}.${ns}.svc.${domain} ${short}.${ns}.svc ${short}.${ns} ${short}`);
      }
      if (p.status?.conditions?.some((c: Obj) => c.type === 'Ready' && c.status === 'True'))
        readyIps.push({ ns, labels: p.metadata.labels ?? {}, ip });
    }
    const services = (await this.o.kube.list<Obj>(resourcePath(RESOURCES.services))).items;
    for (const s of services) {
      const sel = s.spec?.selector as Record<string, string> | undefined;
      if (!sel || s.spec.clusterIP === 'None') continue;
      const ep = readyIps.find(
        (r) => r.ns === s.metadata.namespace && Object.entries(sel).every(([k, v]) => r.labels[k] === v),
      );
      if (!ep) continue;
      const n = `${s.metadata.name}.${s.metadata.namespace}`;
      lines.push(`${ep.ip} ${n}.svc.${domain} ${n}.svc ${n} ${s.metadata.name}`);
    }
    const text = lines.join('\n') + '\n';
    // Rewritten in place (same inode): containers see it through a bind mount.
    if (fs.readFileSync(this.hostsFile, 'utf8') !== text) fs.writeFileSync(this.hostsFile, text);
  }

  private note(msg: string): void {
    if (this.errors.length < 200) this.errors.push(`${new Date().toISOString()} ${msg}`);
  }
}

/** A path inside an image's root with its symlinks resolved inside that root (as a chroot sees them). */
function resolveInRoot(root: string, p: string, depth = 0): string {
  if (depth > 16) throw new Error(`too many symlinks resolving ${p} in the image`);
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  let cur = '/';
  for (const [i, part] of parts.entries()) {
    const next = path.posix.join(cur, part);
    const st = fs.lstatSync(path.join(root, next), { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) {
      const target = fs.readlinkSync(path.join(root, next));
      const base = target.startsWith('/') ? target : path.posix.join(cur, target);
      return resolveInRoot(root, path.posix.join(base, ...parts.slice(i + 1)), depth + 1);
    }
    cur = next;
  }
  return cur;
}

/** Where the preload is mounted in each container (under /tmp, so the image is not touched). */
const POD_NET_PRELOAD = '/tmp/.pod-runner-net.cjs';

/** net.Server#listen with a wildcard host (or none) listens on the pod's address instead. */
function podNetPreload(podIP: string): string {
  return `'use strict';
// Written by the test pod runner: this pod's network namespace, emulated (a wildcard bind → ${podIP}).
const net = require('node:net');
const ip = ${JSON.stringify(podIP)};
const wild = (h) => h === undefined || h === null || h === '' || h === '0.0.0.0' || h === '::';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a = args[0];
  if (a !== null && typeof a === 'object' && !('_handle' in a) && !('fd' in a) && a.path === undefined) {
    if (wild(a.host)) args[0] = { ...a, host: ip };
  } else if (typeof a === 'number' || (typeof a === 'string' && /^\\d+$/.test(a))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, ip);
    else if (wild(args[1])) args[1] = ip;
  } else if (a === undefined || typeof a === 'function') {
    args.unshift(0, ip);
  }
  return listen.apply(this, args);
};
`;
}

function resolvePort(container: Obj, port: number | string): number {
  if (typeof port === 'number') return port;
  const p = ((container.ports ?? []) as Obj[]).find((x) => x.name === port);
  if (!p) throw new Error(`container ${container.name} has no port named ${port}`);
  return p.containerPort;
}

/** $(VAR) references to earlier variables, as the kubelet expands them. */
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
}
