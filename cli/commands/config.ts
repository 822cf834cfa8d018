import type { Command } from 'commander';
import { configPath, readConfig } from '../config';
import { contextFor } from '../context';
import { renderData, renderFields, renderTable } from '../output';

/** `daftka config show | profiles`: what the CLI would use, and where it came from. */

export function registerConfig(program: Command): void {
  const config = program
    .command('config')
    .description('show the resolved settings (URL, token, profile) and the profiles in the config file')
    .addHelpText(
      'after',
      `
Examples:
  $ daftka config show
  $ daftka --profile prod config show
  $ daftka config profiles`,
    );

  config
    .command('show')
    .description('the gateway URL, whether a token is set, and where each came from (the token is never printed)')
    .addHelpText('after', '\nExamples:\n  $ daftka config show\n  $ DAFTKA_PROFILE=prod daftka config show -o json')
    .action(async (_o, cmd: Command) => {
      const ctx = contextFor(cmd);
      const s = ctx.settings;
      const view = {
        url: s.url,
        url_source: s.sources.url,
        token: s.token === undefined ? 'not set' : 'set',
        token_source: s.sources.token,
        profile: s.profile ?? null,
        config_file: s.configPath,
        timeout_ms: s.timeoutMs,
      };
      ctx.out(ctx.output === 'table' ? renderFields(Object.entries(view)) : renderData(ctx.output, view));
    });

  config
    .command('profiles')
    .description('the named profiles of the config file')
    .addHelpText('after', '\nExamples:\n  $ daftka config profiles')
    .action(async (_o, cmd: Command) => {
      const ctx = contextFor(cmd);
      const path = configPath(process.env);
      const file = readConfig(path);
      const rows = Object.entries(file.profiles).map(([name, p]) => ({
        name,
        current: name === file.current_profile,
        url: p.url ?? null,
        token: p.token !== undefined ? 'inline' : p.token_file !== undefined ? `file ${p.token_file}` : 'none',
      }));
      if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, { config_file: path, profiles: rows }));
      if (rows.length === 0) return ctx.err(`no profiles in ${path}\n`);
      ctx.out(
        renderTable(
          ['name', 'current', 'url', 'token'],
          rows.map((r) => [r.name, r.current ? '*' : '', r.url, r.token]),
        ),
      );
    });
}
