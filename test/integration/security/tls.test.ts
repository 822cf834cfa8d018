import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import { ConfigError } from '../../../common/config';
import { DaftkaError } from '../../../common/errors';
import { loadGatewayConfig } from '../../../gateway/config';
import { runGateway } from '../../../gateway/main';
import { encodeFrame, FrameType } from '../../../protocol/frame';
import { RemotePartitionClient } from '../../../protocol/partition-client';
import { clientKeyOf } from '../../../protocol/rpc-auth';
import { RpcClient } from '../../../protocol/rpc-client';
import { TlsSource, tlsDirFiles } from '../../../common/tls';
import { encodeHello } from '../../../replica/transport/handshake';
import { PeerTransport } from '../../../replica/transport/peer';
import { freePort } from '../../helpers/free-port';
import { metricValue, quietLogger, testRegistry, waitFor } from '../../helpers/observe';
import { metricFromText, ReplicaCluster, sleep } from '../../helpers/replica-cluster';
import { issue, makeCa, type TestCa } from '../../helpers/tls-certs';

/**
 * Issue 15, item 14 ("nothing offers TLS"), on real processes: three replicas serving TLS on the
 * client port and mutual TLS on the peer port from one cert-manager-style folder, and a gateway
 * process serving HTTPS and calling the replicas over TLS. Produce and fetch go through; plain
 * TCP is refused by every TLS port; a certificate another CA signed is refused (by a client, and
 * by the peer port from a client); replacing the files rotates the certificate for the next
 * connection without a restart.
 */

jest.setTimeout(90_000);

const REPO_ROOT = resolve(__dirname, '..', '..', '..');
const WATCHDOG = join(REPO_ROOT, 'test', 'helpers', 'parent-watchdog.cjs');
const TOPIC = 'secure';
const SANS = ['IP:127.0.0.1', 'DNS:localhost'];

let base: string;
let ca: TestCa;
let rogue: TestCa;
let replicaTlsDir: string;
let gatewayTlsDir: string;
let rogueDir: string;
let cluster: ReplicaCluster;
let gateway: ChildProcess;
let gatewayPort: number;
let gatewayMetricsPort: number;
let gatewayLog: string;

const caPem = () => readFileSync(ca.caCert);
const fingerprintOf = (dir: string) => new X509Certificate(readFileSync(join(dir, 'tls.crt'))).fingerprint256;

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'daftka-tls-'));
  ca = makeCa(base, 'daftka-ca');
  rogue = makeCa(base, 'rogue-ca');
  replicaTlsDir = join(base, 'replica-tls');
  gatewayTlsDir = join(base, 'gateway-tls');
  rogueDir = join(base, 'rogue-tls');
  issue(ca, replicaTlsDir, SANS, 'replica');
  issue(ca, gatewayTlsDir, SANS, 'gateway');
  issue(rogue, rogueDir, SANS, 'impostor');

  cluster = await ReplicaCluster.start({
    size: 3,
    topic: TOPIC,
    env: { DAFTKA_TLS_DIR: replicaTlsDir, DAFTKA_TLS_RELOAD_INTERVAL_MS: '200' },
    clientTls: { options: () => ({ ca: caPem() }) },
  });
  // The group forms only if the peers' mutual TLS works (every Raft message rides on it).
  await cluster.waitFormed(60_000);

  const keysDir = join(base, 'client-keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, TOPIC), clientKeyOf(cluster.peerSecret, TOPIC).toString('hex'));
  const topicsFile = join(base, 'topics.json');
  writeFileSync(
    topicsFile,
    JSON.stringify({
      topics: [{ name: TOPIC, partitions: 1, replicaEndpoints: [cluster.slots.map((s) => s.clientEndpoint)] }],
    }),
  );
  gatewayPort = await freePort();
  gatewayMetricsPort = await freePort();
  gatewayLog = join(base, 'gateway.log');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('DAFTKA_')) env[k] = v;
  Object.assign(env, {
    DAFTKA_GATEWAY_HOST: '127.0.0.1',
    DAFTKA_GATEWAY_PORT: String(gatewayPort),
    DAFTKA_GATEWAY_METRICS_PORT: String(gatewayMetricsPort),
    DAFTKA_GATEWAY_TOPICS_FILE: topicsFile,
    DAFTKA_GATEWAY_CLIENT_KEYS_DIR: keysDir,
    DAFTKA_NATS_URL: 'off',
    DAFTKA_GATEWAY_TLS_DIR: gatewayTlsDir,
    DAFTKA_GATEWAY_REPLICA_CA_FILE: ca.caCert,
    DAFTKA_GATEWAY_TLS_RELOAD_INTERVAL_MS: '200',
    DAFTKA_LOG_LEVEL: 'info',
  });
  const fd = openSync(gatewayLog, 'a');
  gateway = spawn(process.execPath, ['--require', WATCHDOG, '--import', 'tsx', join(REPO_ROOT, 'gateway', 'main.ts')], {
    cwd: REPO_ROOT,
    env,
    stdio: ['pipe', fd, fd],
  });
  closeSync(fd);
  await cluster.waitFor(
    async () => (await plainGet(gatewayMetricsPort, '/readyz').catch(() => null))?.status === 200,
    45_000,
    'the gateway ready',
  );
});

afterAll(async () => {
  gateway?.kill('SIGKILL');
  await cluster?.stop();
  if (base) rmSync(base, { recursive: true, force: true });
});

afterEach(() => {
  const s = expect.getState();
  if (s.assertionCalls > s.numPassingAsserts && gatewayLog)
    process.stderr.write(`--- gateway log\n${readFileSync(gatewayLog, 'utf8').slice(-4000)}\n`);
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  fingerprint256?: string;
}

/** One HTTPS call to the gateway, trusting `trust` (default: the real CA). */
function gw(method: string, path: string, body?: unknown, trust: Buffer = caPem()): Promise<Answer> {
  return new Promise((res, rej) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: gatewayPort,
        method,
        path,
        ca: trust,
        agent: false,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
      },
      (r) => {
        const fingerprint256 = (r.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          res({ status: r.statusCode ?? 0, body: text ? JSON.parse(text) : {}, fingerprint256 });
        });
      },
    );
    req.on('error', rej);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(data);
  });
}

function plainGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (r) => {
      let text = '';
      r.on('data', (c: Buffer) => (text += c.toString()));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: text }));
    });
    req.on('error', rej);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/**
 * Open a TLS connection and report the server's certificate, or the error that ended it. With TLS
 * 1.3 the server checks a client certificate after the client's secureConnect, and a refusal
 * arrives as an alert just after it: `expectRefusal` waits for it (up to 5 s), otherwise a
 * connection still open 300 ms after the handshake is reported as accepted.
 */
function tlsProbe(
  port: number,
  opts: tls.ConnectionOptions,
  expectRefusal = false,
): Promise<{ fingerprint256?: string; error?: string; authorized?: boolean }> {
  return new Promise((res) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...opts });
    s.setTimeout(10_000, () => s.destroy(new Error('no handshake within 10 s')));
    s.once('secureConnect', () => {
      const fingerprint256 = s.getPeerCertificate().fingerprint256;
      const authorized = s.authorized;
      s.on('data', () => {});
      setTimeout(
        () => {
          s.destroy();
          res({ fingerprint256, authorized });
        },
        expectRefusal ? 5000 : 300,
      ).unref();
    });
    s.once('error', (e: NodeJS.ErrnoException) => res({ error: e.code ?? e.message }));
    s.once('close', () => res({ error: 'closed by the server' }));
  });
}

/** Send `bytes` on a plain TCP connection; resolve with what came back before the server closed it. */
function plainExchange(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((res) => {
    const got: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(bytes));
    s.on('data', (c: Buffer) => got.push(c));
    s.on('error', () => {});
    s.setTimeout(5000, () => s.destroy());
    s.on('close', () => res(Buffer.concat(got)));
  });
}

const handshakeFailures = async (ordinal: number, kind: string) =>
  metricFromText(await cluster.metricsText(ordinal), 'daftka_tls_handshake_failures_total', { kind });

test('produce and fetch through an HTTPS gateway to replicas serving TLS on the client and peer ports', async () => {
  const p = await gw('POST', `/v1/topics/${TOPIC}/records`, {
    records: [{ value: 'over-tls-1' }, { value: 'over-tls-2' }],
  });
  expect(p.status).toBe(200);
  expect(p.fingerprint256).toBe(fingerprintOf(gatewayTlsDir));
  const f = await gw('GET', `/v1/topics/${TOPIC}/partitions/0/records?offset=0&encoding=utf8`);
  expect(f.status).toBe(200);
  const values = (f.body.records as Array<{ value: string }>).map((r) => r.value);
  expect(values).toEqual(expect.arrayContaining(['over-tls-1', 'over-tls-2']));

  // Every port said it serves TLS; the peers' connections are up (mutual TLS between them).
  for (const s of cluster.slots) {
    const listening = s
      .logEvents()
      .filter((e) => e.message === 'peer_transport_listening' || e.message === 'rpc_server_listening');
    expect(listening.length).toBeGreaterThanOrEqual(2);
    expect(listening.every((e) => e.tls === true)).toBe(true);
    expect(metricFromText(await cluster.metricsText(s.ordinal), 'daftka_peer_connected_peers')).toBe(2);
  }
  // The metrics port stays plain HTTP.
  expect((await plainGet(gatewayMetricsPort, '/metrics')).status).toBe(200);
});

test('plain TCP is refused by the gateway, the client port and the peer port', async () => {
  // The gateway's API port speaks TLS only.
  await expect(plainGet(gatewayPort, '/v1/topics')).rejects.toThrow();

  // The client port: a plain RPC client never gets the server's challenge.
  const leader = (await cluster.leader())!.ordinal;
  const slot = cluster.slots[leader];
  const beforeClient = await handshakeFailures(leader, 'client_port');
  const rpc = new RpcClient({
    host: '127.0.0.1',
    port: slot.clientPort,
    connectTimeoutMs: 2000,
    auth: cluster.adminAuth,
  });
  try {
    const err = await new RemotePartitionClient(rpc, { defaultTimeoutMs: 3000 })
      .status({ topic: TOPIC, partition: 0, requestId: 'plain' })
      .catch((e: DaftkaError) => e);
    expect(err).toBeInstanceOf(DaftkaError);
    expect(['UNAVAILABLE', 'TIMEOUT']).toContain((err as DaftkaError).code);
  } finally {
    rpc.close();
  }
  // Bytes that are not a TLS ClientHello (a plain client that speaks first) are refused and counted.
  const plain = await plainExchange(slot.clientPort, Buffer.from('plain bytes, not a TLS ClientHello'));
  expect(plain.length === 0 || plain[0] === 0x15).toBe(true);
  expect(await handshakeFailures(leader, 'client_port')).toBeGreaterThan(beforeClient);

  // The peer port: a well-formed hello on plain TCP gets no ACK, only a closed connection.
  const beforePeer = await handshakeFailures(leader, 'peer_port');
  const hello = encodeFrame(
    FrameType.PEER_HELLO,
    encodeHello({ from: 'x.1', to: 'y.2', clusterId: `${TOPIC}/0`, versions: { min: 1, max: 1 } }),
  );
  const answer = await plainExchange(slot.peerPort, Buffer.from(hello));
  // Whatever came back is a TLS alert record (content type 21) at most, never a peer frame.
  expect(answer.length === 0 || answer[0] === 0x15).toBe(true);
  expect(await handshakeFailures(leader, 'peer_port')).toBeGreaterThan(beforePeer);
});

test('a certificate another CA signed is refused: by clients of the gateway and client port, and by the peer port', async () => {
  // A client that trusts only another CA refuses the real gateway and the real replicas...
  await expect(gw('GET', '/v1/topics', undefined, readFileSync(rogue.caCert))).rejects.toThrow(/certificate/i);
  const slot = cluster.slots[0];
  const wrongTrust = new RpcClient({
    host: '127.0.0.1',
    port: slot.clientPort,
    connectTimeoutMs: 2000,
    auth: cluster.adminAuth,
    tls: { options: () => ({ ca: readFileSync(rogue.caCert) }) },
  });
  try {
    const err = await new RemotePartitionClient(wrongTrust)
      .status({ topic: TOPIC, partition: 0, requestId: 'rogue-ca' })
      .catch((e: DaftkaError) => e);
    expect((err as DaftkaError).code).toBe('UNAUTHENTICATED');
    expect((err as DaftkaError).message).toMatch(/TLS certificate .* is not trusted/);
  } finally {
    wrongTrust.close();
  }
  // ... and a server name the certificate does not carry is refused the same way.
  const wrongName = new RpcClient({
    host: '127.0.0.1',
    port: slot.clientPort,
    auth: cluster.adminAuth,
    tls: { options: () => ({ ca: caPem() }), serverName: 'replica.elsewhere.example' },
  });
  try {
    const err = await new RemotePartitionClient(wrongName)
      .status({ topic: TOPIC, partition: 0, requestId: 'wrong-name' })
      .catch((e: DaftkaError) => e);
    expect((err as DaftkaError).code).toBe('UNAUTHENTICATED');
  } finally {
    wrongName.close();
  }

  // The peer port wants a client certificate of its own CA: another CA's, or none, is refused.
  const before = await handshakeFailures(0, 'peer_port');
  const rogueCert = { cert: readFileSync(join(rogueDir, 'tls.crt')), key: readFileSync(join(rogueDir, 'tls.key')) };
  expect((await tlsProbe(slot.peerPort, { ca: caPem(), ...rogueCert }, true)).error).toBeDefined();
  expect((await tlsProbe(slot.peerPort, { ca: caPem() }, true)).error).toBeDefined();
  // A certificate of the right CA is admitted to the TLS layer (the HMAC hello comes next).
  const good = {
    cert: readFileSync(join(replicaTlsDir, 'tls.crt')),
    key: readFileSync(join(replicaTlsDir, 'tls.key')),
  };
  const ok = await tlsProbe(slot.peerPort, { ca: caPem(), ...good });
  expect(ok.error).toBeUndefined();
  expect(ok.authorized).toBe(true);
  expect(await handshakeFailures(0, 'peer_port')).toBeGreaterThanOrEqual(before + 2);
});

test('replacing the certificate files rotates them for the next connection, without a restart', async () => {
  const pids = cluster.slots.map((s) => s.pid);
  const gatewayPid = gateway.pid;
  const oldReplica = fingerprintOf(replicaTlsDir);
  const oldGateway = fingerprintOf(gatewayTlsDir);
  const first = await tlsProbe(cluster.slots[0].clientPort, { ca: caPem() });
  expect(first.fingerprint256).toBe(oldReplica);

  // cert-manager renews: new key and certificate, same CA (each file replaced by a rename).
  issue(ca, replicaTlsDir, SANS, 'replica');
  issue(ca, gatewayTlsDir, SANS, 'gateway');
  const newReplica = fingerprintOf(replicaTlsDir);
  const newGateway = fingerprintOf(gatewayTlsDir);
  expect(newReplica).not.toBe(oldReplica);
  expect(newGateway).not.toBe(oldGateway);

  // Polled every 200 ms: the next connections see the new certificates.
  await cluster.waitFor(
    async () => {
      const seen = await Promise.all(cluster.slots.map((s) => tlsProbe(s.clientPort, { ca: caPem() })));
      return seen.every((x) => x.fingerprint256 === newReplica);
    },
    10_000,
    'every client port serving the new certificate',
  );
  const peerCert = {
    cert: readFileSync(join(replicaTlsDir, 'tls.crt')),
    key: readFileSync(join(replicaTlsDir, 'tls.key')),
  };
  expect((await tlsProbe(cluster.slots[1].peerPort, { ca: caPem(), ...peerCert })).fingerprint256).toBe(newReplica);
  let answer: Answer | undefined;
  await cluster.waitFor(
    async () => {
      answer = await gw('POST', `/v1/topics/${TOPIC}/records`, { records: [{ value: 'after-rotation' }] });
      return answer.fingerprint256 === newGateway;
    },
    10_000,
    'the gateway serving its new certificate',
  );
  expect(answer!.status).toBe(200);
  for (const s of cluster.slots)
    expect(
      metricFromText(await cluster.metricsText(s.ordinal), 'daftka_tls_reloads_total', {
        kind: 'replica',
        result: 'ok',
      }),
    ).toBeGreaterThanOrEqual(1);

  // Nobody restarted, and the group still replicates (its peers reconnect with the new certificates too).
  expect(cluster.slots.map((s) => s.pid)).toEqual(pids);
  expect(gateway.pid).toBe(gatewayPid);
  expect(gateway.exitCode).toBeNull();
  await sleep(10);
  await cluster.waitFormed(20_000);
});

test('a replica whose TLS folder lacks its key, or a gateway whose CA file is missing, stops at start naming the key', async () => {
  const broken = join(base, 'broken-tls');
  issue(ca, broken, SANS, 'broken');
  rmSync(join(broken, 'tls.key'));
  const one = await ReplicaCluster.start({ size: 1, topic: 'broken', env: { DAFTKA_TLS_DIR: broken } });
  try {
    const exit = await one.slots[0].exited;
    expect(exit.code).toBe(2);
    const invalid = one.slots[0].logEvents().find((e) => e.message === 'config_invalid');
    expect(invalid?.setting).toBe('tlsDir');
    expect(String(invalid?.error)).toContain(`${join(broken, 'tls.key')} cannot be read (ENOENT)`);
  } finally {
    await one.stop();
  }

  const topicsFile = join(base, 'topics.json');
  const cfg = loadGatewayConfig({
    DAFTKA_GATEWAY_HOST: '127.0.0.1',
    DAFTKA_GATEWAY_PORT: '0',
    DAFTKA_GATEWAY_METRICS_PORT: '0',
    DAFTKA_GATEWAY_TOPICS_FILE: topicsFile,
    DAFTKA_NATS_URL: 'off',
    DAFTKA_GATEWAY_REPLICA_CA_FILE: join(base, 'no-such-ca.crt'),
  });
  const err = await runGateway(cfg, { logger: quietLogger('gateway'), topicsReloadMs: 0 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).key).toBe('replicaCaFile');
  expect((err as ConfigError).message).toMatch(/DAFTKA_GATEWAY_REPLICA_CA_FILE.*no-such-ca\.crt cannot be read/);
});

test('a replica sends no hello to a peer port whose certificate another CA signed', async () => {
  // An impostor on the peer's address with a certificate of another CA, asking for a client certificate.
  const received: Buffer[] = [];
  const impostor = tls.createServer(
    {
      cert: readFileSync(join(rogueDir, 'tls.crt')),
      key: readFileSync(join(rogueDir, 'tls.key')),
      requestCert: true,
      rejectUnauthorized: false,
    },
    (s) => {
      s.on('data', (d: Buffer) => received.push(d));
      s.on('error', () => {});
    },
  );
  impostor.on('tlsClientError', () => {});
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  const registry = testRegistry();
  const source = TlsSource.open(
    tlsDirFiles(replicaTlsDir),
    { key: 'tlsDir', env: 'DAFTKA_TLS_DIR' },
    { kind: 'replica' },
  );
  const t = new PeerTransport({
    selfId: 'r0',
    clusterId: `${TOPIC}/0`,
    listenHost: '127.0.0.1',
    listenPort: 0,
    resolve: () => ({ host: '127.0.0.1', port: (impostor.address() as net.AddressInfo).port }),
    peers: ['r1'],
    backoff: { initialMs: 10, maxMs: 50, multiplier: 2, jitter: 0.5 },
    logger: quietLogger('r0'),
    registry,
    secret: cluster.peerSecret,
    tls: { source },
  });
  await t.start();
  try {
    t.send('r1', Buffer.from('my vote'));
    await waitFor(
      async () =>
        (await metricValue(registry, 'daftka_peer_connect_failures_total', { reason: 'tls_certificate' })) >= 2,
      10_000,
      'refused connection attempts',
    );
    // Nothing reached the impostor: not the hello (signed, but still ours), never the message.
    expect(Buffer.concat(received).length).toBe(0);
    expect(await metricValue(registry, 'daftka_peer_connected_peers')).toBe(0);
  } finally {
    await t.close();
    source.close();
    await new Promise((r) => impostor.close(r));
  }
});
