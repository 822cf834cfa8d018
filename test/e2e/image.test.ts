/**
 * The container image, built for real from the repository's Dockerfile (podman, from a base made
 * locally: scripts/image/build.sh) and each of its three programs started from the image's own
 * filesystem as the image's non-root user under a read-only root (test/helpers/k8s-image.ts):
 * a bad setting is refused naming the key; good settings get each program to serving, and a
 * record produced through the image's gateway is committed by the image's replica and fetched back.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { clientKeyOf } from '../../protocol/rpc-auth';
import { freePort } from '../helpers/free-port';
import {
  buildAndExportImage,
  runFromImage,
  runToExit,
  stopProcess,
  type ExportedImage,
  type Mount,
} from '../helpers/k8s-image';
import { REPO_ROOT } from '../helpers/k8s-tools';

jest.setTimeout(60_000);

const WORK = path.join(os.tmpdir(), 'daftka-image-e2e');
const UID = 10001;
let image: ExportedImage;
const running: ChildProcess[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A directory the image's user owns, mounted into the container (a PVC, a ConfigMap). */
function volume(name: string, files: Record<string, string> = {}): string {
  const dir = path.join(WORK, 'volumes', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  fs.chownSync(dir, UID, UID);
  return dir;
}

/** Starts a long-running program from the image; its output goes to WORK/<name>.log. */
function start(name: string, args: string[] | undefined, env: Record<string, string>, mounts: Mount[] = []) {
  const child = runFromImage(image, { args, env, mounts });
  const log = fs.createWriteStream(path.join(WORK, `${name}.log`));
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  running.push(child);
  return { child, log: () => fs.readFileSync(path.join(WORK, `${name}.log`), 'utf8') };
}

async function waitHttp(url: string, what: string, log: () => string, timeoutMs = 30_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await fetch(url).catch((err: Error) => err);
    if (r instanceof Response && r.ok) return r;
    last = r instanceof Response ? `HTTP ${r.status} ${await r.text()}` : r.message;
    await sleep(200);
  }
  throw new Error(`${what} never answered ${url} (${last}); its log:\n${log().slice(-3000)}`);
}

beforeAll(() => {
  image = buildAndExportImage(WORK);
  process.stdout.write(`image: ${image.tag} built and exported in ${image.buildSeconds.toFixed(0)} s\n`);
}, 25 * 60_000);

afterAll(async () => {
  await Promise.all(running.map((c) => stopProcess(c, 2000)));
});

describe('the image', () => {
  it('runs node with the replica as its default command, as a numeric non-root user, from /app', () => {
    expect(image.config.Entrypoint).toEqual(['node']);
    expect(image.config.Cmd).toEqual(['dist/replica/main.js']);
    expect(image.config.WorkingDir).toBe('/app');
    expect(image.config.User).toBe(`${UID}:${UID}`);
  });

  it('holds the compiled programs and production dependencies only', () => {
    const app = path.join(image.rootfs, 'app');
    expect(fs.readdirSync(app).sort()).toEqual(['dist', 'node_modules', 'package.json']);
    // dist/ has exactly the folders `npm run build` compiles (no drills, dev scripts or tests).
    const build = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
    };
    const hasSources = (d: string) =>
      fs.existsSync(path.join(REPO_ROOT, d)) &&
      (fs.readdirSync(path.join(REPO_ROOT, d), { recursive: true }) as string[]).some((f) => f.endsWith('.ts'));
    const compiled = build.include.filter(hasSources);
    expect(fs.readdirSync(path.join(app, 'dist')).sort()).toEqual([...compiled].sort());
    for (const program of ['replica', 'gateway', 'operator'])
      expect(fs.existsSync(path.join(app, 'dist', program, 'main.js'))).toBe(true);
    // The storage worker is loaded by path, not imported: it must be compiled all the same.
    expect(fs.existsSync(path.join(app, 'dist', 'replica', 'storage', 'worker.js'))).toBe(true);
    // Every locked production package is there, no package the lock marks dev-only is.
    const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean }>;
    };
    const locked = Object.entries(lock.packages).filter(([at]) => at.startsWith('node_modules/'));
    const present = (at: string) => fs.existsSync(path.join(app, at));
    expect(locked.filter(([at, p]) => p.dev && present(at)).map(([at]) => at)).toEqual([]);
    expect(locked.filter(([at, p]) => !p.dev && !p.optional && !present(at)).map(([at]) => at)).toEqual([]);
  });

  it("its processes run as the image's user, with a read-only root and a writable /tmp", async () => {
    const data = volume('probe');
    const r = await runToExit(image, {
      args: [
        '-e',
        `const fs = require('fs');
         const tryWrite = (p) => { try { fs.writeFileSync(p, 'x'); return 'ok'; } catch (e) { return e.code; } };
         console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), cwd: process.cwd(),
           app: tryWrite('/app/x'), etc: tryWrite('/etc/x'), tmp: tryWrite('/tmp/x'), data: tryWrite('/var/lib/daftka/x') }));`,
      ],
      mounts: [{ hostPath: data, containerPath: '/var/lib/daftka' }],
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      uid: UID,
      gid: UID,
      cwd: '/app',
      app: 'EROFS',
      etc: 'EROFS',
      tmp: 'ok',
      data: 'ok',
    });
  });
});

describe('the three programs, started from the image', () => {
  const peerSecret = 'image-test-peer-secret-0123456789abcdef';
  let replicaClientPort = 0;

  it('replica: a bad setting exits 2 naming the key; a good one recovers storage and serves /readyz', async () => {
    const bad = await runToExit(image, { env: { DAFTKA_TOPIC: 'imgtest', DAFTKA_PARTITION: 'first' } });
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stderr.trim().split('\n').pop()!)).toMatchObject({
      message: 'config_invalid',
      key: 'partition',
    });

    const [peer, client, http] = [await freePort(), await freePort(), await freePort()];
    replicaClientPort = client;
    const replica = start(
      'replica',
      undefined, // the image's default command: what the operator's StatefulSets run
      {
        DAFTKA_TOPIC: 'imgtest',
        DAFTKA_PARTITION: '0',
        DAFTKA_ORDINAL: '0',
        DAFTKA_REPLICAS: `127.0.0.1:${peer}:${client}`,
        DAFTKA_REPLICATION_FACTOR: '1',
        DAFTKA_DATA_DIR: '/var/lib/daftka',
        DAFTKA_LISTEN_HOST: '127.0.0.1',
        DAFTKA_HTTP_PORT: String(http),
        DAFTKA_PEER_SECRET: peerSecret,
      },
      [{ hostPath: volume('replica-data'), containerPath: '/var/lib/daftka' }],
    );
    await waitHttp(`http://127.0.0.1:${http}/readyz`, 'the replica', replica.log);
    const metrics = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    expect(metrics).toMatch(/^daftka_/m);
  });

  it('gateway: a bad setting exits 2 naming the key; a good one serves, and produce/fetch reach the replica', async () => {
    const bad = await runToExit(image, {
      args: ['dist/gateway/main.js'],
      env: { DAFTKA_GATEWAY_TOPICS_FILE: '/etc/daftka/topics.json', DAFTKA_GATEWAY_PORT: 'http' },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid config port/);

    expect(replicaClientPort).toBeGreaterThan(0);
    const topics = volume('gateway-topics', {
      'topics.json': JSON.stringify({
        topics: [{ name: 'imgtest', partitions: 1, replicaEndpoints: [[`127.0.0.1:${replicaClientPort}`]] }],
      }),
    });
    // The topic's client key, as a mounted Secret: the replica admits only connections that prove it.
    const keys = volume('gateway-client-keys', { imgtest: clientKeyOf(peerSecret, 'imgtest').toString('hex') });
    const port = await freePort();
    const gateway = start(
      'gateway',
      ['dist/gateway/main.js'],
      {
        DAFTKA_GATEWAY_HOST: '127.0.0.1',
        DAFTKA_GATEWAY_PORT: String(port),
        DAFTKA_GATEWAY_METRICS_PORT: '0',
        DAFTKA_GATEWAY_TOPICS_FILE: '/etc/daftka/topics.json',
        DAFTKA_GATEWAY_CLIENT_KEYS_DIR: '/etc/daftka-keys',
        DAFTKA_NATS_URL: 'off',
      },
      [
        { hostPath: topics, containerPath: '/etc/daftka', readOnly: true },
        { hostPath: keys, containerPath: '/etc/daftka-keys', readOnly: true },
      ],
    );
    const base = `http://127.0.0.1:${port}`;
    await waitHttp(`${base}/healthz`, 'the gateway', gateway.log);
    const produced = await fetch(`${base}/v1/topics/imgtest/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ key: 'k', value: 'from the image' }] }),
    });
    expect({ status: produced.status, body: await produced.json() }).toEqual({
      status: 200,
      body: { results: [{ partition: 0, offset: 0, status: 'written' }] },
    });
    const fetched = await fetch(`${base}/v1/topics/imgtest/partitions/0/records?offset=0`);
    expect(fetched.status).toBe(200);
    const body = (await fetched.json()) as {
      records: Array<{ offset: number; value_b64: string }>;
      high_watermark: number;
    };
    expect(body.high_watermark).toBe(1);
    expect(body.records.map((r) => [r.offset, Buffer.from(r.value_b64, 'base64').toString()])).toEqual([
      [0, 'from the image'],
    ]);
    // The web console's static files are in the image (they are not TypeScript: the build copies them).
    const consolePage = await fetch(`${base}/console/`);
    expect(consolePage.status).toBe(200);
    expect(await consolePage.text()).toContain('<html');
  });

  it('operator: a bad setting exits 2 naming the key; a good one serves /healthz while it looks for the apiserver', async () => {
    const bad = await runToExit(image, {
      args: ['dist/operator/main.js'],
      env: { DAFTKA_OPERATOR_METRICS_PORT: 'http' },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid config metricsPort/);

    // A kubeconfig for an apiserver that is not there: the operator starts, serves its health
    // endpoint and keeps retrying the Lease (the real apiserver is test/e2e/operator's business).
    const kube = volume('operator-kube', {
      config: [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
        'users: [{name: none, user: {token: nothing}}]',
        'contexts: [{name: none, context: {cluster: none, user: none}}]',
        'current-context: none',
      ].join('\n'),
    });
    const port = await freePort();
    const operator = start(
      'operator',
      ['dist/operator/main.js'],
      {
        KUBECONFIG: '/etc/kube/config',
        DAFTKA_OPERATOR_LISTEN_HOST: '127.0.0.1',
        DAFTKA_OPERATOR_METRICS_PORT: String(port),
        DAFTKA_OPERATOR_POD_NAME: 'daftka-operator-image-test',
        DAFTKA_NATS_URL: 'nats://127.0.0.1:1',
      },
      [{ hostPath: kube, containerPath: '/etc/kube', readOnly: true }],
    );
    await waitHttp(`http://127.0.0.1:${port}/healthz`, 'the operator', operator.log);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^daftka_operator_/m);
  });

  it('every program exits 0 on SIGTERM', async () => {
    expect(running).toHaveLength(3);
    for (const child of running) {
      expect(child.exitCode).toBeNull(); // still serving
      await stopProcess(child, 15_000);
      expect(child.exitCode).toBe(0);
    }
  });
});
