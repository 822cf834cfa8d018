/**
 * Where the Kubernetes test tools built by scripts/k8s-tools/build.sh live.
 *
 * Paths are derived from scripts/k8s-tools/versions.env (the versions this checkout pins), so two
 * checkouts pinning different versions never pick up each other's binaries through ${cache}/bin.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const VERSIONS_ENV = path.join(REPO_ROOT, 'scripts', 'k8s-tools', 'versions.env');

export type ToolName =
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'etcd'
  | 'kwok'
  | 'helm'
  | 'kubeconform'
  | 'promtool';

export interface ToolVersions {
  KUBERNETES_VERSION: string;
  ETCD_VERSION: string;
  KWOK_VERSION: string;
  HELM_VERSION: string;
  KUBECONFORM_VERSION: string;
}

/** Parses the KEY=value lines of versions.env (comments and blank lines ignored). */
export function readToolVersions(file = VERSIONS_ENV): ToolVersions {
  const values: Record<string, string> = {};
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq > 0) values[line.slice(0, eq)] = line.slice(eq + 1).replace(/^["']|["']$/g, '');
  }
  const keys: (keyof ToolVersions)[] = [
    'KUBERNETES_VERSION',
    'ETCD_VERSION',
    'KWOK_VERSION',
    'HELM_VERSION',
    'KUBECONFORM_VERSION',
  ];
  for (const key of keys) if (!values[key]) throw new Error(`${file}: ${key} is not set`);
  return values as unknown as ToolVersions;
}

/** The cache root build.sh writes to: ${DAFTKA_TOOLS_CACHE:-$HOME/.cache/daftka-tools}. */
export function toolsCacheDir(): string {
  return process.env.DAFTKA_TOOLS_CACHE || path.join(os.homedir(), '.cache', 'daftka-tools');
}

/** Absolute path of one tool at the pinned version (whether or not it has been built). */
export function toolPath(name: ToolName, versions: ToolVersions = readToolVersions()): string {
  const cache = toolsCacheDir();
  switch (name) {
    case 'kube-apiserver':
    case 'kube-controller-manager':
    case 'kube-scheduler':
      return path.join(cache, `kubernetes-${versions.KUBERNETES_VERSION}`, name);
    case 'etcd':
      return path.join(cache, `etcd-${versions.ETCD_VERSION}`, name);
    case 'kwok':
      return path.join(cache, `kwok-${versions.KWOK_VERSION}`, name);
    case 'helm':
      return path.join(cache, `helm-${versions.HELM_VERSION}`, name);
    case 'kubeconform':
      return path.join(cache, `kubeconform-${versions.KUBECONFORM_VERSION}`, name);
    case 'promtool':
      // Debian's binary; build.sh links whatever version apt installed.
      return path.join(cache, 'bin', name);
  }
}

/** Like toolPath, but throws a message saying how to build the tool when it is missing. */
export function requireTool(name: ToolName): string {
  const file = toolPath(name);
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    throw new Error(
      `${name} is not built at ${file}: run scripts/k8s-tools/build.sh ` +
        '(scripts/ensure-deps.sh --k8s and `npm run test:e2e` run it for you)',
    );
  }
  return file;
}

/** Runs a tool and returns its stdout (stderr is included in the error when it fails). */
export function runTool(name: ToolName, args: string[], options: { cwd?: string; input?: string } = {}): string {
  return execFileSync(requireTool(name), args, {
    cwd: options.cwd,
    input: options.input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 120_000,
  });
}

export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a tool and returns its exit status and output, whatever the status (for expected failures). */
export function runToolResult(
  name: ToolName,
  args: string[],
  options: { cwd?: string; input?: string } = {},
): ToolResult {
  const res = spawnSync(requireTool(name), args, {
    cwd: options.cwd,
    input: options.input,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (res.error) throw res.error;
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}
