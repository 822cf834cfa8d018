/**
 * One operator instance: health/metrics server, NATS connection (reports in, control requests
 * out), Lease leader election, and — while it holds the Lease — the controller. Losing the Lease
 * stops the controller; main.ts then exits non-zero so Kubernetes restarts it as a fresh standby
 * (crash-only: no half-stopped state carries over). NATS being down is degradable: status turns
 * Unknown, the rebalancer cannot transfer leadership, everything else continues.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { connect, type NatsConnection } from 'nats';
import { sleep } from '../common/backoff';
import { startHealthServer } from '../common/health-server';
import { createLogger, type Logger } from '../common/log';
import { natsServerOptions } from '../common/nats-servers';
import { OPERATOR_HEALTH_INTERVAL_MS, SUBJECTS, type OperatorHealth } from '../common/control-subjects';
import { identityOf, loadReplicaSettings, rebalanceSettingsOf, type OperatorConfig } from './config';
import { Controller } from './controller';
import type { ReplicaSettings } from './desired';
import { EventRecorder } from './events';
import { KubeClient } from '../common/kube';
import { LeaderElector } from './leader-election';
import { operatorMetrics, type OperatorMetrics } from './metrics';
import { ReportTable, subscribeReports } from './report-table';

export interface OperatorOptions {
  kubeConfig?: KubeConfig;
  logger?: Logger;
  /** Act as this user towards the apiserver (tests check the RBAC rules with it). */
  impersonate?: { user: string; groups?: string[] };
  /** Replaces the settings file (tests). */
  replicaSettings?: Omit<ReplicaSettings, 'namespace'>;
  /** Called when the Lease is lost after being held (main.ts exits). Without it the instance campaigns again. */
  onLostLeadership?: () => void;
}

export interface RunningOperator {
  identity: string;
  metrics: OperatorMetrics;
  kube: KubeClient;
  reports: ReportTable;
  /** The controller while this instance leads, else null. */
  controller(): Controller | null;
  isLeader(): boolean;
  healthPort: number;
  /** Graceful stop: controller, Lease released (a standby takes over at once), NATS, server. */
  stop(): Promise<void>;
  /** Stop without releasing the Lease (a crash, for tests: the standby waits for expiry). */
  kill(): Promise<void>;
}

export async function startOperator(cfg: OperatorConfig, o: OperatorOptions = {}): Promise<RunningOperator> {
  const identity = identityOf(cfg);
  const logger = o.logger ?? createLogger('operator', { level: cfg.logLevel, fields: { identity } });
  const metrics = operatorMetrics();
  const kc = o.kubeConfig ?? new KubeConfig();
  if (!o.kubeConfig) kc.loadFromDefault();
  const kube = new KubeClient({
    kubeConfig: kc,
    qps: cfg.kubeQps,
    burst: cfg.kubeBurst,
    ...(o.impersonate ? { impersonate: o.impersonate } : {}),
    userAgent: `daftka-operator/${identity}`,
    onRequest: (r) => {
      metrics.kubeRequests.inc({ method: r.method, kind: r.resource, code: String(r.code) });
      if (r.method !== 'WATCH') metrics.kubeRequestDuration.observe({ method: r.method }, r.durationMs / 1000);
    },
  });
  // Replicas read an admin-auth Secret exactly when the operator makes them (cfg.adminSecret).
  const settings = {
    ...(o.replicaSettings ?? loadReplicaSettings(cfg)),
    adminAuth: cfg.adminSecret !== '',
    namespaceClientKeys: cfg.replicaClientKeys,
  };
  const health = { staleMs: cfg.reportStaleSeconds * 1000, maxLagEntries: cfg.maxLagEntries };
  let controller: Controller | null = null;
  const reports = new ReportTable({ settings: health, onChange: (topic) => controller?.onReport(topic) });
  reports.startSweeping(Math.min(1000, health.staleMs / 2));
  const recorder = new EventRecorder(kube, {
    instance: identity,
    logger,
    onEmit: (reason, type) => metrics.events.inc({ reason, kind: type }),
  });
  const abort = new AbortController();

  // NATS: connect in the background and keep reconnecting; the operator runs without it.
  let nc: NatsConnection | null = null;
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        nc = await connect({
          ...natsServerOptions(cfg.natsUrl.split(',')),
          name: `daftka-operator-${identity}`,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          timeout: 2000,
        });
        break;
      } catch (err) {
        metrics.natsConnected.set(0);
        logger.warn('nats_connect_failed', { error: (err as Error).message });
        await sleep(1000, abort.signal);
      }
    }
    const c = nc;
    if (!c) return;
    metrics.natsConnected.set(1);
    logger.info('nats_connected', { server: c.getServer() });
    subscribeReports(c, reports, {
      logger,
      onMessage: (kind, ok) => metrics.reports.inc({ kind, result: ok ? 'ok' : 'invalid' }),
      // The active instance knows each topic's client key after its first reconcile of the topic.
      keyFor: (topic) => controller?.reconciler.clientKeyOf(topic),
    });
    for await (const s of c.status()) {
      if (s.type === 'disconnect') {
        metrics.natsConnected.set(0);
        logger.warn('nats_disconnected', {});
      } else if (s.type === 'reconnect') {
        metrics.natsConnected.set(1);
        logger.info('nats_reconnected', {});
      }
    }
  })().catch((err: Error) => logger.warn('nats_loop_ended', { error: err.message }));

  const elector = new LeaderElector(kube, {
    namespace: cfg.namespace,
    name: cfg.leaseName,
    identity,
    leaseDurationMs: cfg.leaseDurationSeconds * 1000,
    renewDeadlineMs: cfg.renewDeadlineSeconds * 1000,
    retryPeriodMs: cfg.retryPeriodSeconds * 1000,
    logger,
  });

  const server = await startHealthServer({
    host: cfg.listenHost,
    port: cfg.metricsPort,
    registry: metrics.registry,
    readiness: () =>
      !elector.isLeader
        ? { ready: true, reason: 'standby: another instance holds the Lease', leader: false }
        : controller?.isSynced
          ? { ready: true, reason: 'leading', leader: true }
          : { ready: false, reason: 'leading: caches syncing', leader: true },
  });

  // Health on NATS every few seconds, from every instance: the gateway's readiness report shows
  // the leader's reconcile errors (check operator_reconcile). Nothing secret: kind, time, message.
  const healthTimer = setInterval(() => {
    const c = nc;
    if (c === null || c.isClosed()) return;
    const ctl = controller;
    const report: OperatorHealth = {
      v: 1,
      instance: identity,
      leader: elector.isLeader,
      synced: ctl?.isSynced ?? false,
      reconcileErrors: ctl?.errors ?? 0,
      lastError: ctl?.lastError ?? null,
      ts: Date.now(),
    };
    try {
      c.publish(SUBJECTS.operatorHealth, new TextEncoder().encode(JSON.stringify(report)));
    } catch (err) {
      logger.debug('operator_health_publish_failed', { error: (err as Error).message });
    }
  }, OPERATOR_HEALTH_INTERVAL_MS);
  healthTimer.unref();

  const electionLoop = (async () => {
    while (!abort.signal.aborted) {
      if (!(await elector.acquire(abort.signal))) return;
      metrics.isLeader.set(1);
      const c = new Controller({
        kube,
        logger,
        metrics,
        recorder,
        reports,
        nats: () => nc,
        watchNamespaces: cfg.watchNamespaces,
        settings,
        health,
        rebalance: rebalanceSettingsOf(cfg),
        workers: cfg.workers,
        resyncMs: cfg.resyncSeconds * 1000,
        statusIntervalMs: cfg.statusIntervalSeconds * 1000,
        rebalanceIntervalMs: cfg.rebalanceIntervalSeconds * 1000,
        ...(cfg.gatewayCatalogConfigMap !== ''
          ? { catalog: { namespace: cfg.namespace, name: cfg.gatewayCatalogConfigMap } }
          : {}),
        ...(cfg.gatewayClientKeysSecret !== ''
          ? { clientKeys: { namespace: cfg.namespace, name: cfg.gatewayClientKeysSecret } }
          : {}),
        ...(cfg.adminSecret !== '' ? { adminSecret: cfg.adminSecret } : {}),
        namespaceClientKeys: cfg.replicaClientKeys,
      });
      controller = c;
      // Renewal runs alongside the controller from the first moment (cache sync can be slow).
      const held = elector.holdUntilLost(abort.signal);
      void c.start().catch((err: Error) => logger.error('controller_start_failed', { error: err.message }));
      const outcome = await held;
      controller = null;
      metrics.isLeader.set(0);
      await c.stop();
      if (outcome === 'lost') {
        if (o.onLostLeadership) {
          o.onLostLeadership();
          return;
        }
      }
    }
  })();

  const shutdown = async (release: boolean) => {
    if (abort.signal.aborted) return;
    const c = controller;
    clearInterval(healthTimer);
    abort.abort();
    await c?.stop();
    await electionLoop;
    if (release) await elector.release();
    reports.stop();
    // Closing ends the connection; its status iterator may stay pending, so the loop is not awaited.
    await (nc as NatsConnection | null)?.close().catch(() => undefined);
    await server.close();
    kube.close();
    logger.info('operator_stopped', { identity, released: release });
  };

  logger.info('operator_started', {
    identity,
    namespace: cfg.namespace,
    watch_namespaces: cfg.watchNamespaces,
    admin_auth: cfg.adminSecret !== '',
    gateway_client_keys: cfg.gatewayClientKeysSecret !== '' ? `${cfg.namespace}/${cfg.gatewayClientKeysSecret}` : 'off',
    image: settings.image,
    workers: cfg.workers,
    max_concurrent_moves: cfg.maxConcurrentMoves,
    lease_duration_s: cfg.leaseDurationSeconds,
    metrics_port: server.port,
  });

  return {
    identity,
    metrics,
    kube,
    reports,
    controller: () => controller,
    isLeader: () => elector.isLeader,
    healthPort: server.port,
    stop: () => shutdown(true),
    kill: () => shutdown(false),
  };
}
