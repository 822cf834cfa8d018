/**
 * The lock file `npm ci` installs from (CI, the image's build, every fresh machine). npm refuses
 * `npm ci` when the lock misses an optional dependency of a locked package — also the ones for
 * other platforms (@swc/core's darwin/win32 binaries) — or disagrees with package.json; a lock
 * written by an npm that left them out made every set-up fall back to `npm install`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
interface LockedPackage {
  version?: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, LockedPackage>;
};
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as LockedPackage;

/** Where node would find `name` from the package at `from` (its own node_modules, then each parent's). */
function resolve(from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = `${dir === '' ? '' : `${dir}/`}node_modules/${name}`;
    if (candidate in lock.packages) return candidate;
    if (dir === '') return undefined;
    const i = dir.lastIndexOf('/node_modules/');
    dir = i < 0 ? '' : dir.slice(0, i);
  }
}

describe('package-lock.json', () => {
  it('is a v3 lock whose root entry matches package.json', () => {
    expect(lock.lockfileVersion).toBe(3);
    const root = lock.packages[''];
    expect(root.dependencies ?? {}).toEqual(pkg.dependencies ?? {});
    expect(root.devDependencies ?? {}).toEqual(pkg.devDependencies ?? {});
  });

  it("locks every optional dependency of every locked package, other platforms' included", () => {
    const missing: string[] = [];
    for (const [at, entry] of Object.entries(lock.packages))
      for (const name of Object.keys(entry.optionalDependencies ?? {}))
        if (resolve(at, name) === undefined) missing.push(`${at || '(root)'} → ${name}`);
    expect(missing).toEqual([]);
  });

  it('locks every dependency of every locked package', () => {
    const missing: string[] = [];
    for (const [at, entry] of Object.entries(lock.packages))
      for (const name of Object.keys({ ...entry.dependencies, ...(at === '' ? entry.devDependencies : {}) }))
        if (resolve(at, name) === undefined) missing.push(`${at || '(root)'} → ${name}`);
    expect(missing).toEqual([]);
  });
});
