import type { Command } from 'commander';
import { configPath, readConfig, resolveSettings, type Settings } from './config';
import { GatewayClient } from './http';
import type { OutputFormat } from './output';

/** What every command's action needs: the resolved settings, a client, the output format, stdio. */
export interface Ctx {
  settings: Settings;
  client: GatewayClient;
  output: OutputFormat;
  /** True when --output was given (commands with their own default format check it). */
  outputGiven: boolean;
  out: (s: string) => void;
  err: (s: string) => void;
  /** stderr is a terminal: progress may be drawn. */
  errIsTty: boolean;
  /** Aborted on SIGINT/SIGTERM: long-running commands (consume --follow, replay polling) end cleanly. */
  signal: AbortSignal;
}

export interface GlobalOpts {
  url?: string;
  token?: string;
  profile?: string;
  timeout?: number;
  output?: OutputFormat;
}

let interrupt: AbortController | null = null;

/** The abort signal for SIGINT/SIGTERM, installed on first use. A second Ctrl-C exits at once. */
export function interruptSignal(): AbortSignal {
  if (interrupt === null) {
    const ac = new AbortController();
    interrupt = ac;
    const onSignal = (sig: NodeJS.Signals) => {
      if (ac.signal.aborted) process.exit(130);
      ac.abort(new Error(sig));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return interrupt.signal;
}

export function contextFor(cmd: Command, env: NodeJS.ProcessEnv = process.env): Ctx {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const path = configPath(env);
  const settings = resolveSettings(
    { url: g.url, token: g.token, profile: g.profile, timeout: g.timeout },
    env,
    readConfig(path),
    path,
  );
  const source = cmd.getOptionValueSourceWithGlobals('output');
  const outputGiven = source === 'cli' || source === 'env';
  return {
    settings,
    client: new GatewayClient(settings.url, settings.token, settings.timeoutMs),
    output: g.output ?? 'table',
    outputGiven,
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    errIsTty: process.stderr.isTTY === true,
    signal: interruptSignal(),
  };
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
