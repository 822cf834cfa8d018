/**
 * Shared set-up of the operator e2e tests: a real control plane (test/helpers/k8s-env.ts), the CRDs
 * and admission policy from crds/, a namespace, PersistentVolumes for the replicas' claims (kwok has
 * no storage provisioner), and in-process operator instances with short timings.
 */
import { load, loadAll } from 'js-yaml';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../../common/log';
import { loadOperatorConfig, type OperatorConfig } from '../../../operator/config';
import type { ReplicaSettings } from '../../../operator/desired';
import { KubeApiError, KubeClient, RESOURCES, resourcePath } from '../../../common/kube';
import { startOperator, type RunningOperator } from '../../../operator/operator';
import { REPO_ROOT } from '../../helpers/k8s-tools';
import type { K8sEnv } from '../../helpers/k8s-env';

export const NS = 'daftka-e2e';
export const STORAGE_CLASS = 'e2e-static';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Retries `fn` until it returns without throwing (an expect inside it), or throws its last error. */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(everyMs);
    }
  }
}

/** The error a call is expected to fail with. */
export async function apiError(call: Promise<unknown>): Promise<KubeApiError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof KubeApiError) return err;
    throw err;
  }
  throw new Error('the API call was expected to fail, and succeeded');
}

export async function installCrds(kube: KubeClient): Promise<void> {
  for (const f of ['topics.daftka.io.yaml', 'partitions.daftka.io.yaml']) {
    const crd = load(readFileSync(join(REPO_ROOT, 'crds', f), 'utf8')) as { metadata: { name: string } };
    await kube.apply(resourcePath(RESOURCES.crds, { name: crd.metadata.name }), crd, 'e2e');
  }
  for (const d of loadAll(readFileSync(join(REPO_ROOT, 'crds', 'topic-deletion-protection.yaml'), 'utf8')) as Array<{
    kind: string;
    metadata: { name: string };
  }>) {
    const plural =
      d.kind === 'ValidatingAdmissionPolicy' ? 'validatingadmissionpolicies' : 'validatingadmissionpolicybindings';
    await kube.apply(`/apis/admissionregistration.k8s.io/v1/${plural}/${d.metadata.name}`, d, 'e2e');
  }
  // New API groups take a moment to be served.
  await eventually(() => kube.list(resourcePath(RESOURCES.topics)), 30_000, 200);
  await eventually(() => kube.list(resourcePath(RESOURCES.partitions)), 30_000, 200);
}

export async function createNamespace(kube: KubeClient, name = NS): Promise<void> {
  await kube.apply(
    resourcePath(RESOURCES.namespaces, { name }),
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
    'e2e',
  );
}

/** Static volumes the claims bind to (the PV controller in kube-controller-manager binds them). */
export async function createVolumes(kube: KubeClient, count: number, prefix = 'pv'): Promise<void> {
  for (let i = 0; i < count; i++)
    await kube.apply(
      `/api/v1/persistentvolumes/${prefix}-${i}`,
      {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: `${prefix}-${i}` },
        spec: {
          capacity: { storage: '10Gi' },
          accessModes: ['ReadWriteOnce'],
          storageClassName: STORAGE_CLASS,
          persistentVolumeReclaimPolicy: 'Retain',
          hostPath: { path: `/tmp/daftka-e2e/${prefix}-${i}` },
        },
      },
      'e2e',
    );
}

export const REPLICA_SETTINGS = (natsUrl: string): Omit<ReplicaSettings, 'namespace'> => ({
  image: 'ghcr.io/daftka/daftka:e2e',
  imagePullPolicy: 'IfNotPresent',
  command: [],
  natsUrl,
  clusterDomain: 'cluster.local',
  resources: { requests: { cpu: '100m', memory: '128Mi' } },
  storage: { size: '1Gi', storageClassName: STORAGE_CLASS },
  antiAffinity: 'required',
  terminationGracePeriodSeconds: 30,
  runAsUser: 10001,
  extraEnv: {},
});

export function testConfig(natsUrl: string, env: Record<string, string> = {}): OperatorConfig {
  return loadOperatorConfig(
    {
      DAFTKA_OPERATOR_NAMESPACE: NS,
      DAFTKA_OPERATOR_WATCH_NAMESPACES: NS,
      DAFTKA_NATS_URL: natsUrl,
      DAFTKA_OPERATOR_LISTEN_HOST: '127.0.0.1',
      DAFTKA_OPERATOR_METRICS_PORT: '0',
      DAFTKA_OPERATOR_LEASE_DURATION_SECONDS: '3',
      DAFTKA_OPERATOR_RENEW_DEADLINE_SECONDS: '2',
      DAFTKA_OPERATOR_RETRY_PERIOD_SECONDS: '0.4',
      DAFTKA_OPERATOR_STATUS_INTERVAL_SECONDS: '1',
      DAFTKA_OPERATOR_REBALANCE_INTERVAL_SECONDS: '0.5',
      DAFTKA_OPERATOR_REPORT_STALE_SECONDS: '2',
      DAFTKA_OPERATOR_TRANSFER_COOLDOWN_SECONDS: '2',
      DAFTKA_OPERATOR_RESYNC_SECONDS: '60',
      DAFTKA_LOG_LEVEL: process.env.DAFTKA_E2E_LOG_LEVEL ?? 'error',
      ...env,
    },
    [],
  );
}

/** Log lines of an operator instance, kept in memory (assertions on decisions, dumps on failure). */
export function memoryLogger(identity: string): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      if (lines.length > 20_000) lines.splice(0, 10_000);
      cb();
    },
  });
  return { logger: createLogger('operator', { level: 'info', stream, fields: { identity } }), lines };
}

export interface TestOperator extends RunningOperator {
  lines: string[];
}

export async function startTestOperator(
  env: K8sEnv,
  natsUrl: string,
  identity: string,
  extraEnv: Record<string, string> = {},
): Promise<TestOperator> {
  const { logger, lines } = memoryLogger(identity);
  const op = await startOperator(testConfig(natsUrl, { DAFTKA_OPERATOR_POD_NAME: identity, ...extraEnv }), {
    kubeConfig: env.kc,
    logger,
    replicaSettings: REPLICA_SETTINGS(natsUrl),
  });
  return Object.assign(op, { lines });
}

/* eslint-disable @typescript-eslint/no-explicit-any -- objects read back from the apiserver */
export type Obj = any;

export function topicPath(name: string, ns = NS): string {
  return resourcePath(RESOURCES.topics, { namespace: ns, name });
}

export async function applyTopic(kube: KubeClient, name: string, spec: Record<string, unknown>, ns = NS): Promise<Obj> {
  return kube.apply(
    topicPath(name, ns),
    { apiVersion: 'daftka.io/v1alpha1', kind: 'Topic', metadata: { name }, spec },
    'e2e-user',
  );
}

export async function getObj(kube: KubeClient, r: keyof typeof RESOURCES, name: string, ns = NS): Promise<Obj | null> {
  return kube.get(resourcePath(RESOURCES[r], { namespace: ns, name }));
}

export async function listObjs(
  kube: KubeClient,
  r: keyof typeof RESOURCES,
  labelSelector?: string,
  ns = NS,
): Promise<Obj[]> {
  return (await kube.list<Obj>(resourcePath(RESOURCES[r], { namespace: ns }), labelSelector ? { labelSelector } : {}))
    .items;
}

export const condition = (obj: Obj, type: string): Obj => obj?.status?.conditions?.find((c: Obj) => c.type === type);
