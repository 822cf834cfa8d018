import type { Command } from 'commander';
import { buildProgram } from '../../../cli/program';

function all(c: Command): Command[] {
  return [c, ...c.commands.flatMap(all)];
}

function helpOf(c: Command): string {
  let out = '';
  c.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  c.outputHelp();
  return out;
}

describe('daftka command tree', () => {
  const program = buildProgram();
  const names = all(program).map((c) => c.name());

  it('has every command of the issue', () => {
    for (const n of ['topics', 'produce', 'consume', 'groups', 'dlq', 'status', 'readiness', 'describe', 'reset'])
      expect(names).toContain(n);
    const dlq = program.commands.find((c) => c.name() === 'dlq')!;
    expect(dlq.commands.map((c) => c.name())).toEqual(['list', 'show', 'replay', 'job', 'archive', 'purge']);
  });

  it.each(all(buildProgram()).filter((c) => c.name() !== 'help'))(
    '$_name --help has a description and examples',
    (c) => {
      const h = helpOf(c);
      expect(c.description()).not.toBe('');
      expect(h).toMatch(/Examples:\n {2}\$ .*daftka/);
    },
  );

  it('documents the exit codes on the root help', () => {
    expect(helpOf(buildProgram())).toMatch(/Exit status: 0 ok, 1 usage, 2 not found, 3 authentication/);
  });
});
