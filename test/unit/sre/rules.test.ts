/**
 * The alert and recording rules (sre/alerts.ts, sre/slos.ts): the chart ships what the code
 * generates, promtool accepts the rules, every alert fires after its `for:` with exact labels and
 * annotations and stays silent on healthy input, and every alert has a severity and a runbook.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dump, load } from 'js-yaml';
import { ALERTS } from '../../../sre/alerts';
import { RUNBOOK_BASE_URL } from '../../../sre/config';
import { promtoolTestsYaml, REPO_ROOT, RULES_FILE } from '../../../sre/gen';
import { metricNames } from '../../../sre/promql';
import {
  isSloGroup,
  promtoolTests,
  recordingRuleNames,
  renderTemplate,
  ruleGroups,
  type AlertingRule,
} from '../../../sre/rules';
import { BURN_WINDOWS, SLOS } from '../../../sre/slos';

/** Debian's promtool (scripts/ensure-deps.sh --k8s installs it), or the k8s-tools link to it. */
function promtool(): string {
  const onPath = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  const cached = path.join(
    process.env.DAFTKA_TOOLS_CACHE || path.join(os.homedir(), '.cache', 'daftka-tools'),
    'bin',
    'promtool',
  );
  if (fs.existsSync(cached)) return cached;
  throw new Error('promtool is not installed: run scripts/ensure-deps.sh --k8s (Debian package prometheus)');
}

const alertingRules = (): AlertingRule[] =>
  ruleGroups()
    .flatMap((g) => g.rules)
    .filter((r): r is AlertingRule => 'alert' in r);

describe('generated rule files', () => {
  it('helm/daftka/files holds exactly what sre/gen.ts generates (run `npx tsx sre/gen.ts` after editing sre/)', () => {
    // A child process: prettier (which the generator formats with) cannot load inside jest.
    const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'sre', 'gen.ts'), '--check'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
  }, 60_000);
});

describe('alert metadata', () => {
  it('alert names are unique and CamelCase with the Daftka prefix', () => {
    const names = ALERTS.map((a) => a.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^Daftka[A-Z][A-Za-z]+$/);
  });

  it.each(alertingRules().map((r) => [r.alert, r] as const))(
    '%s has a severity, summary, description and a runbook that exists',
    (name, rule) => {
      expect(['page', 'ticket']).toContain(rule.labels.severity);
      expect(rule.annotations.summary.length).toBeGreaterThan(10);
      expect(rule.annotations.description.length).toBeGreaterThan(40);
      expect(rule.annotations.runbook_url).toBe(`${RUNBOOK_BASE_URL}${name}.md`);
      const runbook = path.join(REPO_ROOT, 'docs', 'runbooks', `${name}.md`);
      expect(fs.existsSync(runbook)).toBe(true);
      const text = fs.readFileSync(runbook, 'utf8');
      expect(text.split('\n')[0]).toBe(`# ${name}`);
      for (const section of [
        '## Meaning',
        '## Impact',
        '## Diagnosis',
        '## Mitigation',
        '## Verification',
        '## Escalation',
      ])
        expect(text).toContain(section);
    },
  );

  it('every runbook page belongs to an alert (no orphans)', () => {
    const pages = fs
      .readdirSync(path.join(REPO_ROOT, 'docs', 'runbooks'))
      .filter((f) => f.endsWith('.md') && f !== 'README.md')
      .map((f) => f.replace(/\.md$/, ''));
    expect(pages.sort()).toEqual(ALERTS.map((a) => a.alert).sort());
  });

  it('each SLO has a paging and a ticket burn-rate alert over the four window pairs', () => {
    expect(BURN_WINDOWS.map((w) => `${w.long}/${w.short}×${w.factor}:${w.severity}`)).toEqual([
      '1h/5m×14.4:page',
      '6h/30m×6:page',
      '1d/2h×3:ticket',
      '3d/6h×1:ticket',
    ]);
    const records = recordingRuleNames();
    for (const slo of SLOS) {
      const fast = ALERTS.find((a) => a.alert === `${slo.alertStem}FastBurn`);
      const slow = ALERTS.find((a) => a.alert === `${slo.alertStem}SlowBurn`);
      expect(fast?.severity).toBe('page');
      expect(slow?.severity).toBe('ticket');
      // Every name the burn expressions read is a recording rule we define.
      for (const a of [fast!, slow!]) for (const m of metricNames(a.expr)) expect(records).toContain(m);
    }
  });

  it('the annotation renderer fills labels and values, and refuses a missing one', () => {
    expect(
      renderTemplate(
        '{{ $labels.topic }}/{{$labels.partition}} at {{ $value | humanize }}',
        { topic: 't', partition: '0' },
        '3',
      ),
    ).toBe('t/0 at 3');
    expect(() => renderTemplate('{{ $labels.pod }}', {})).toThrow('no label pod');
    expect(() => renderTemplate('{{ $value }}', {})).toThrow('give the case a value');
  });
});

describe('promtool', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daftka-rules-'));
    fs.copyFileSync(RULES_FILE, path.join(dir, 'prometheus-rules.yaml'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('check rules accepts the rule file', () => {
    const res = spawnSync(promtool(), ['check', 'rules', 'prometheus-rules.yaml'], { cwd: dir, encoding: 'utf8' });
    expect(res.stdout + res.stderr).toContain('SUCCESS');
    expect(res.status).toBe(0);
  });

  it.each(['slo', 'other'] as const)(
    'test rules (%s alerts): every alert fires after its for: with exact labels and annotations, and stays silent on healthy input',
    (part) => {
      // The shipped rule file, split by group so each run evaluates only what its tests need.
      const shipped = load(fs.readFileSync(RULES_FILE, 'utf8')) as { groups: Array<{ name: string }> };
      const groups = shipped.groups.filter((g) => (part === 'slo') === isSloGroup(g.name));
      fs.writeFileSync(path.join(dir, `${part}-rules.yaml`), dump({ groups }));
      fs.writeFileSync(path.join(dir, `${part}.test.yaml`), promtoolTestsYaml(`${part}-rules.yaml`, part));
      const res = spawnSync(promtool(), ['test', 'rules', `${part}.test.yaml`], { cwd: dir, encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`promtool test rules failed:\n${res.stdout}${res.stderr}`);
      expect(res.stdout).toContain('SUCCESS');
    },
    180_000,
  );

  it('the split runs cover every alert exactly once', () => {
    const names = (part: 'slo' | 'other') =>
      new Set(promtoolTests('x', part).tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)));
    expect([...names('slo'), ...names('other')].sort()).toEqual(ALERTS.map((a) => a.alert).sort());
  });

  it('test rules fails when an expectation is wrong (the tests have teeth)', () => {
    // Expect a wrong severity on the first alert: promtool must report the mismatch.
    const text = promtoolTestsYaml('prometheus-rules.yaml').replace('severity: page', 'severity: ticket');
    const first = text.indexOf('\n  - name:', text.indexOf('\n  - name:') + 1);
    fs.writeFileSync(path.join(dir, 'teeth.test.yaml'), text.slice(0, first) + '\n');
    const res = spawnSync(promtool(), ['test', 'rules', 'teeth.test.yaml'], { cwd: dir, encoding: 'utf8' });
    expect(res.status).not.toBe(0);
    expect(res.stdout + res.stderr).toContain('FAILED');
  });
});
