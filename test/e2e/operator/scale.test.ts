/**
 * Scale: 200 topics × 6 partitions (RF 3) reconciled against a real kube-apiserver + etcd (no
 * controller-manager: the StatefulSets exist with no pods, which is what this measures — the
 * operator's own work). Reports the time to converge and the requests the operator made, and the
 * apiserver's own request count, for docs/benchmarks.md ("Operator"). Then: the steady state (what
 * an idle operator costs) and a restart (a fresh instance re-applies everything once).
 *
 * DAFTKA_OPERATOR_SCALE_TOPICS overrides the topic count (e.g. 20 for a quick run).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeClient, RESOURCES, resourcePath } from '../../../common/kube';
import { mapLimit } from '../../../operator/reconcile';
import { startK8sEnv, type K8sEnv } from '../../helpers/k8s-env';
import { startNatsServer, type NatsServerHandle } from '../../helpers/nats-server';
import {
  NS,
  applyTopic,
  createNamespace,
  eventually,
  installCrds,
  sleep,
  startTestOperator,
  type TestOperator,
} from './harness';

const TOPICS = Number(process.env.DAFTKA_OPERATOR_SCALE_TOPICS ?? 200);
const PARTITIONS = 6;

jest.setTimeout(600_000);

let env: K8sEnv;
let nats: NatsServerHandle;
let kube: KubeClient;
const operators: TestOperator[] = [];

const progress = (msg: string) => process.stderr.write(`[operator scale] ${msg}\n`);

/** Sum of a Prometheus counter family (optionally only samples whose labels match). */
function sumCounter(text: string, name: string, match: (labels: string) => boolean = () => true): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const labels = line.slice(name.length, line.lastIndexOf(' '));
    if (match(labels)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function apiserverRequests(): Promise<number> {
  return sumCounter(await kube.getText('/metrics'), 'apiserver_request_total', (l) => !l.includes('verb="WATCH"'));
}

/** The operator's requests (watches excluded), its writes, and of them the Lease renewals. */
async function operatorRequests(op: TestOperator): Promise<{ total: number; writes: number; lease: number }> {
  const text = await op.metrics.registry.getSingleMetricAsString('daftka_operator_kube_requests_total');
  const name = 'daftka_operator_kube_requests_total';
  return {
    total: sumCounter(text, name, (l) => !l.includes('method="WATCH"')),
    writes: sumCounter(text, name, (l) => /method="(PATCH|POST|PUT|DELETE)"/.test(l)),
    lease: sumCounter(text, name, (l) => l.includes('kind="leases"')),
  };
}

async function count(r: keyof typeof RESOURCES): Promise<number> {
  return (await kube.list(resourcePath(RESOURCES[r], { namespace: NS }), { pageSize: 2000 })).items.length;
}

async function converged(): Promise<void> {
  const topics = (
    await kube.list<{ status?: { partitions?: number; conditions?: unknown[] } }>(
      resourcePath(RESOURCES.topics, { namespace: NS }),
      { pageSize: 2000 },
    )
  ).items;
  expect(topics).toHaveLength(TOPICS);
  expect(
    topics.filter((t) => t.status?.partitions === PARTITIONS && (t.status.conditions?.length ?? 0) === 5),
  ).toHaveLength(TOPICS);
  for (const r of ['partitions', 'statefulsets', 'services', 'pdbs'] as const)
    expect(await count(r)).toBe(TOPICS * PARTITIONS);
}

beforeAll(async () => {
  [env, nats] = await Promise.all([startK8sEnv({}), startNatsServer()]);
  kube = new KubeClient({ kubeConfig: env.kc, qps: 500, burst: 1000 });
  await installCrds(kube);
  await createNamespace(kube);
}, 240_000);

afterAll(async () => {
  for (const op of operators) await op.kill().catch(() => undefined);
  kube?.close();
  await nats?.stop();
  await env?.stop();
}, 60_000);

it(`reconciles ${TOPICS} topics × ${PARTITIONS} partitions against the real apiserver; measures time and requests`, async () => {
  const opEnv = {
    // Production timings for the Lease (the e2e defaults renew every 0.4 s).
    DAFTKA_OPERATOR_LEASE_DURATION_SECONDS: '15',
    DAFTKA_OPERATOR_RENEW_DEADLINE_SECONDS: '10',
    DAFTKA_OPERATOR_RETRY_PERIOD_SECONDS: '2',
    DAFTKA_OPERATOR_WORKERS: '8',
    DAFTKA_OPERATOR_KUBE_QPS: '500',
    DAFTKA_OPERATOR_KUBE_BURST: '1000',
    DAFTKA_OPERATOR_STATUS_INTERVAL_SECONDS: '30',
    DAFTKA_OPERATOR_RESYNC_SECONDS: '600',
  };
  const op = await startTestOperator(env, nats.url, 'scale-a', opEnv);
  operators.push(op);
  await eventually(() => expect(op.controller()?.isSynced).toBe(true), 30_000);
  const apiBefore = await apiserverRequests();
  const opBefore = await operatorRequests(op);

  const t0 = Date.now();
  await mapLimit(
    Array.from({ length: TOPICS }, (_, i) => `t${String(i).padStart(3, '0')}`),
    8,
    (name) => applyTopic(kube, name, { partitions: PARTITIONS, replicationFactor: 3 }),
  );
  const createdMs = Date.now() - t0;
  progress(`${TOPICS} Topics created in ${createdMs} ms`);
  await eventually(converged, 540_000, 2000);
  const convergeMs = Date.now() - t0;
  const opAfter = await operatorRequests(op);
  const apiAfter = await apiserverRequests();
  progress(`converged in ${convergeMs} ms`);

  // Steady state: once the queue has drained, nothing changes and the operator should be silent.
  await eventually(() => expect(op.controller()!.queue.depth).toBe(0), 120_000, 200);
  await sleep(5000);
  const idleS = 20;
  const idleBefore = await operatorRequests(op);
  await sleep(idleS * 1000);
  const idleAfter = await operatorRequests(op);
  if (process.env.DAFTKA_OPERATOR_SCALE_DEBUG)
    progress(await op.metrics.registry.getSingleMetricAsString('daftka_operator_kube_requests_total'));

  // Restart: a new instance has no memory of what it applied; it re-applies everything once.
  await op.stop();
  const op2 = await startTestOperator(env, nats.url, 'scale-b', opEnv);
  operators.push(op2);
  const r0 = Date.now();
  await eventually(() => expect(op2.isLeader()).toBe(true), 30_000, 100);
  await eventually(
    async () => {
      const c = op2.controller();
      expect(c?.isSynced).toBe(true);
      expect(c!.queue.depth).toBe(0);
      for (const t of c!.caches.topics.list())
        expect(c!.reconciles.get(`${NS}/${t.metadata.name}`) ?? 0).toBeGreaterThan(0);
    },
    540_000,
    500,
  );
  const restartMs = Date.now() - r0;
  const restartReq = await operatorRequests(op2);

  const result = {
    topics: TOPICS,
    partitions: TOPICS * PARTITIONS,
    objects: TOPICS * PARTITIONS * 4,
    convergeSeconds: convergeMs / 1000,
    topicsCreateSeconds: createdMs / 1000,
    operatorRequests: opAfter.total - opBefore.total,
    operatorWrites: opAfter.writes - opBefore.writes,
    apiserverRequests: apiAfter - apiBefore,
    idleRequestsPerMinute: ((idleAfter.total - idleAfter.lease - (idleBefore.total - idleBefore.lease)) / idleS) * 60,
    leaseRequestsPerMinute: ((idleAfter.lease - idleBefore.lease) / idleS) * 60,
    restartSeconds: restartMs / 1000,
    restartRequests: restartReq.total,
  };
  progress(JSON.stringify(result));
  if (process.env.DAFTKA_OPERATOR_SCALE_OUT)
    writeFileSync(join(process.env.DAFTKA_OPERATOR_SCALE_OUT), JSON.stringify(result, null, 2));
  // First reconcile of a partition: Partition, StatefulSet, Service, PDB applies and one status write,
  // plus per topic a finalizer, a status and an event: a bounded cost per object, never a loop.
  expect(result.operatorWrites).toBeLessThanOrEqual(TOPICS * PARTITIONS * 6 + TOPICS * 6);
  // Idle: nothing changes, nothing is written (statuses are compared before writing).
  expect(result.idleRequestsPerMinute).toBeLessThan(10);
});
