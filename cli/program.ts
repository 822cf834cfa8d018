import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { parseDurationMs } from './args';
import { registerConfig } from './commands/config';
import { registerConsume } from './commands/consume';
import { registerDlq } from './commands/dlq';
import { registerGroups } from './commands/groups';
import { registerProduce } from './commands/produce';
import { registerReadiness } from './commands/readiness';
import { registerStatus } from './commands/status';
import { registerTopics } from './commands/topics';
import { describeError, EXIT } from './errors';
import { OUTPUT_FORMATS } from './output';

/**
 * The `daftka` command tree (commander: subcommands, per-command help with examples, typed flag
 * parsers, "did you mean" on typos) and the one place that turns any failure into one line on
 * stderr and an exit code (cli/errors.ts).
 */

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export const ROOT_HELP = `
Configuration (highest first): flags; DAFTKA_URL, DAFTKA_TOKEN, DAFTKA_PROFILE, DAFTKA_OUTPUT;
the profile (--profile, else current_profile) in $XDG_CONFIG_HOME/daftka/config.yaml
(~/.config/daftka/config.yaml; DAFTKA_CONFIG overrides the path); default URL http://127.0.0.1:8080.

Exit status: 0 ok, 1 usage, 2 not found, 3 authentication/authorisation, 4 unavailable or
retryable (connection refused, 429, 503, 504), 5 server error, 6 refused by the gateway (400, 409,
413, 415, 416, 422), 7 unhealthy (status, readiness, incomplete replay).

Examples:
  $ daftka topics
  $ echo '{"id":1}' | daftka produce events -k user-1
  $ daftka consume events -g billing -f
  $ daftka groups describe billing
  $ daftka dlq replay events --group billing --dry-run
  $ DAFTKA_URL=https://daftka.example.com DAFTKA_TOKEN=… daftka status

Documentation: docs/cli.md`;

export function buildProgram(): Command {
  const program = new Command('daftka')
    .description("Daftka's command-line client: talks to the gateway's HTTP API")
    .version(version(), '-V, --version')
    .option('--url <url>', 'gateway URL (env DAFTKA_URL; default http://127.0.0.1:8080)')
    .option('--token <token>', 'bearer token (env DAFTKA_TOKEN)')
    .option('--profile <name>', 'named profile from the config file (env DAFTKA_PROFILE)')
    .option('--timeout <duration>', 'per-request timeout (e.g. 10s; default 30s)', parseDurationMs)
    .addOption(
      new Option('-o, --output <format>', 'table for people, json or yaml for programs')
        .choices(OUTPUT_FORMATS as string[])
        .env('DAFTKA_OUTPUT'),
    )
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => write(`daftka: ${str.replace(/^error: /, '')}`),
    })
    .addHelpText('after', ROOT_HELP);
  registerTopics(program);
  registerProduce(program);
  registerConsume(program);
  registerGroups(program);
  registerDlq(program);
  registerStatus(program);
  registerReadiness(program);
  registerConfig(program);
  return program;
}

/** Run with argv (without node and script); resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version "fail" with exit code 0; parse errors were already printed.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const { line, exitCode } = describeError(err);
    process.stderr.write(line + '\n');
    return exitCode;
  }
}
