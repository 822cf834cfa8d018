/**
 * The operator process. Invalid configuration exits 2 with a message naming the key. SIGTERM or
 * SIGINT: stop reconciling, release the Lease (a standby takes over at once), exit 0. Losing the
 * Lease while leading exits 1: Kubernetes restarts the pod as a fresh standby (crash-only).
 */
import { ConfigError } from '../common/config';
import { loadOperatorConfig } from './config';
import { startOperator } from './operator';

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = loadOperatorConfig(process.env, process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`daftka-operator: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  let op: Awaited<ReturnType<typeof startOperator>>;
  try {
    op = await startOperator(cfg, { onLostLeadership: () => process.exit(1) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`daftka-operator: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const stop = () => {
    op.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

void main().catch((err: Error) => {
  process.stderr.write(`daftka-operator: fatal: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
