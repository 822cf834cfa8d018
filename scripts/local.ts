/**
 * `npm run local`: Daftka on this machine, no Kubernetes. Starts nats-server, the replicas of the
 * configured topics (default: `events`, 3 partitions × RF 3) as child processes and the gateway,
 * all on loopback, with data and per-process logs under ./data. Ctrl-C stops everything cleanly;
 * running it again resumes from the data. The replica plan comes from common/topic-spec.ts — the
 * same desired-state code the operator uses — with a process driver in place of StatefulSets
 * (scripts/local-mode.ts, shared with the integration tests and the gateway benchmark).
 */
import { ConfigError, configDocs, loadConfig } from '../common/config';
import { createLogger } from '../common/log';
import { localSchema } from './local-config';
import {
  firstBusyPort,
  LOCAL_ADMIN,
  localAdminToken,
  natsServerPath,
  planLocal,
  startLocal,
  type LocalPlan,
} from './local-mode';

async function main(): Promise<void> {
  let plan: LocalPlan;
  let exitAfterReady: boolean;
  try {
    const cfg = loadConfig(localSchema, process.env, process.argv.slice(2));
    plan = planLocal(cfg);
    exitAfterReady = cfg.exitAfterReady;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${err.message}\n\nLocal mode settings:\n${configDocs(localSchema)}`);
      process.exit(2);
    }
    throw err;
  }
  const busy = await firstBusyPort(plan);
  if (busy !== null) {
    console.error(
      `port ${busy} on 127.0.0.1 is in use. Is another Daftka running? Stop it, or move ours with DAFTKA_LOCAL_GATEWAY_PORT, DAFTKA_LOCAL_NATS_PORT or DAFTKA_LOCAL_BASE_PORT.`,
    );
    process.exit(2);
  }
  const natsBin = natsServerPath();
  if (natsBin === null) {
    console.error('nats-server is not installed: run scripts/ensure-deps.sh (npm run local does this for you)');
    process.exit(2);
  }

  const logger = createLogger('local');
  const run = startLocal(plan, { logger, natsBin });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping Daftka (gateway, then replicas with leadership transfer, then nats-server)…');
    await run.stop();
    console.log('stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  // A closed stdout (e.g. `npm run local | head`) must not crash the driver and orphan its children.
  process.stdout.on('error', () => void stop(0));

  try {
    await run.waitReady(120_000);
  } catch (err) {
    console.error(String((err as Error).message));
    await stop(1);
    return;
  }
  const base = plan.gatewayUrl;
  const t0 = plan.topics[0].name;
  const token = plan.auth === 'tokens' ? localAdminToken(plan.dataDir) : undefined;
  const h = token !== undefined ? ` -H 'authorization: Bearer ${token}'` : '';
  const authLine =
    token !== undefined
      ? `  auth      bearer tokens; ${LOCAL_ADMIN} (admin of every topic): ${token}\n`
      : '  auth      off: every request is the anonymous principal with every right (DAFTKA_LOCAL_AUTH=tokens turns it on)\n';
  console.log(`
Daftka is running (local mode).
  gateway   ${base}        (OpenAPI: ${base}/v1/openapi.json)
  nats      ${plan.natsUrl}   (users replica, gateway, observer; passwords in ${plan.dataDir}/nats-*-password)
  topics    ${plan.topics.map((t) => `${t.name} (${t.spec.partitions} partitions × RF ${t.spec.replicationFactor})`).join(', ')}
  data      ${plan.dataDir}   logs: ${plan.logDir}
${authLine}
Try:
  curl -s -X POST ${base}/v1/topics/${t0}/records${h} -H 'content-type: application/json' \\
       -d '{"records":[{"key":"user-1","value":"hello"}]}'
  curl -s${h} '${base}/v1/topics/${t0}/partitions/0/records?offset=0'

Ctrl-C stops everything; running it again resumes from the data.
READY`);
  if (exitAfterReady) await stop(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
