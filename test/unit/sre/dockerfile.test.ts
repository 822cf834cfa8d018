/**
 * The container image recipe (Dockerfile), checked statically and fast: multi-stage, production
 * dependencies only, non-root, every program's entrypoint compiled by `npm run build`, the build
 * context holding everything the compiled code imports, and the chart starting each program with
 * the entrypoint the image has. The image itself is built with podman and its programs run from it
 * in the e2e tier (test/e2e/image.test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
/** Instructions, with continuation lines joined and comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const stages = instructions.reduce<string[][]>((acc, l) => {
  if (/^FROM /i.test(l)) acc.push([]);
  acc[acc.length - 1]?.push(l);
  return acc;
}, []);
const finalStage = stages[stages.length - 1];
const buildInclude = (
  JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }
).include;
/** What the COPY instructions take from the build context (not `COPY --from=` another stage). */
const contextSources = instructions
  .filter((l) => /^COPY /.test(l) && !/--from=/.test(l))
  .flatMap((l) =>
    l
      .split(/\s+/)
      .slice(1, -1)
      .filter((a) => !a.startsWith('--')),
  );

function dockerignore(): string[] {
  return fs
    .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The .ts files tsc compiles under `dir` (tests excluded, as tsconfig.build.json does). */
function sourceFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => path.join(dir, f));
}

/** Relative module specifiers of import/export-from/import()/require() in a source file. */
function relativeImports(source: string): string[] {
  const specs = [
    ...source.matchAll(/\b(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g),
    ...source.matchAll(/\brequire\(\s*['"](\.{1,2}\/[^'"]+)['"]/g),
  ].map((m) => m[1]);
  return [...new Set(specs)];
}

describe('Dockerfile', () => {
  it('is multi-stage: production dependencies, a build stage, and a runtime stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    expect(instructions.some((l) => /^RUN .*npm ci --omit=dev/.test(l))).toBe(true);
    expect(instructions.some((l) => /^RUN .*npm run build/.test(l))).toBe(true);
    // The runtime stage installs nothing and copies dist/ and node_modules from earlier stages.
    expect(finalStage.some((l) => /^RUN .*(npm|apt-get) install/.test(l))).toBe(false);
    expect(finalStage.filter((l) => /^COPY --from=/.test(l)).map((l) => l.split(/\s+/).slice(-1)[0])).toEqual(
      expect.arrayContaining(['./node_modules', './dist']),
    );
  });

  it('runs as a numeric non-root user in the final stage', () => {
    const user = finalStage.filter((l) => /^USER /.test(l)).pop();
    expect(user).toBeDefined();
    const uid = Number(user!.split(/\s+/)[1].split(':')[0]);
    expect(uid).toBeGreaterThan(0);
    // The chart's default runAsUser is the image's user.
    expect(fs.readFileSync(path.join(ROOT, 'helm', 'daftka', 'values.yaml'), 'utf8')).toContain(`runAsUser: ${uid}`);
  });

  it('base images are pinned to a Node 20 release, never :latest', () => {
    const from = instructions.filter((l) => /^(FROM|ARG NODE_IMAGE)/.test(l)).join('\n');
    expect(from).not.toMatch(/:latest\b/);
    expect(from).toMatch(/node:20\.\d+/);
  });

  it('copies every source folder that `npm run build` compiles', () => {
    for (const dir of buildInclude) expect(instructions).toContain(`COPY ${dir} ./${dir}`);
  });

  it('the build context holds every module the compiled code imports (nothing outside the copied folders)', () => {
    const copied = new Set(contextSources.map((src) => src.split('/')[0]));
    const outside: string[] = [];
    for (const dir of buildInclude)
      for (const file of sourceFiles(path.join(ROOT, dir)))
        for (const spec of relativeImports(fs.readFileSync(file, 'utf8'))) {
          const target = path.relative(ROOT, path.resolve(path.dirname(file), spec));
          if (target.startsWith('..') || !copied.has(target.split(path.sep)[0]))
            outside.push(`${path.relative(ROOT, file)} → ${spec}`);
        }
    expect(outside).toEqual([]);
  });

  it('.dockerignore never drops what a COPY needs', () => {
    const ignored = dockerignore();
    for (const src of contextSources) expect(ignored).not.toContain(src.split('/')[0]);
  });

  it('the default command is the replica (the operator starts replica pods with the image entrypoint)', () => {
    expect(finalStage).toContain('ENTRYPOINT ["node"]');
    expect(finalStage).toContain('CMD ["dist/replica/main.js"]');
  });

  it('every entrypoint the image and the chart use is a program in the repository', () => {
    const templates = fs
      .readdirSync(path.join(ROOT, 'helm', 'daftka', 'templates'))
      .map((f) => fs.readFileSync(path.join(ROOT, 'helm', 'daftka', 'templates', f), 'utf8'))
      .join('\n');
    const used = new Set([...`${dockerfile}\n${templates}`.matchAll(/dist\/(\w+)\/main\.js/g)].map((m) => m[1]));
    expect([...used].sort()).toEqual(['gateway', 'operator', 'replica']);
    for (const program of ['replica', 'gateway']) expect(fs.existsSync(path.join(ROOT, program, 'main.ts'))).toBe(true);
    // The operator's entry point is being written alongside the chart (operator/config.ts and
    // operator/metrics.ts are in); once operator/main.ts lands it must be a runnable entry point too.
    const operatorMain = path.join(ROOT, 'operator', 'main.ts');
    if (fs.existsSync(operatorMain))
      expect(fs.readFileSync(operatorMain, 'utf8')).toMatch(/require\.main === module|^(void )?main\(\)/m);
  });

  it('.dockerignore keeps local state, dependencies and what the image does not hold out of the build context', () => {
    const ignored = dockerignore();
    for (const p of ['.git', 'node_modules', 'dist', 'data', 'test', 'sre', 'scripts', 'bench'])
      expect(ignored).toContain(p);
  });
});
