import { LocalStack } from '../../helpers/local-stack';

/**
 * Key compaction through the gateway in local mode (docs/compaction.md): a Topic spec with
 * `cleanup: compact` (DAFTKA_LOCAL_TOPICS_JSON) reaches the replicas and the catalog —
 * `GET /v1/topics/{t}` shows it, a keyless record is refused 400 `key_required` — and a consumer
 * reading the partition with fetch follows `next_offset` over the gaps to the latest value of
 * each key, a deleted key's tombstone (`"value": null`) gone after the delete retention.
 */

jest.setTimeout(120_000);
let stack: LocalStack;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

beforeAll(async () => {
  stack = await LocalStack.start({
    topics: [
      {
        name: 'users',
        partitions: 1,
        replicationFactor: 1,
        cleanup: 'compact',
        compaction: { deleteRetentionMs: 500, minDirtyPercent: 0 },
      },
      { name: 'plain', partitions: 1, replicationFactor: 1 },
    ],
    replicaEnv: { DAFTKA_ELECTION_TIMEOUT_MS: '300', DAFTKA_HEARTBEAT_MS: '50', DAFTKA_COMPACTION_CHECK_MS: '200' },
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function http(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(stack.url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    }).catch(() => null);
    const text = res ? await res.text() : '';
    const r = { status: res?.status ?? 0, body: text === '' ? undefined : JSON.parse(text) };
    if (!(r.status === 0 || ((r.status === 503 || r.status === 504) && r.body?.retryable)) || Date.now() > deadline)
      return r;
    await sleep(200);
  }
}

/** Read the partition from 0 to the high watermark, following next_offset. */
async function readAll(topic: string): Promise<Array<{ offset: number; key: string; value: string | null }>> {
  const out: Array<{ offset: number; key: string; value: string | null }> = [];
  for (let offset = 0; ;) {
    const r = await http(
      'GET',
      `/v1/topics/${topic}/partitions/0/records?offset=${offset}&encoding=utf8&max_records=100`,
    );
    expect(r.status).toBe(200);
    for (const x of r.body.records) out.push({ offset: x.offset, key: x.key, value: x.value });
    if (r.body.next_offset >= r.body.high_watermark) return out;
    expect(r.body.next_offset).toBeGreaterThan(offset);
    offset = r.body.next_offset;
  }
}

test('GET /v1/topics/{t} shows the cleanup policy; a keyless record is refused on the compacted topic only', async () => {
  expect((await http('GET', '/v1/topics/users')).body).toMatchObject({ name: 'users', cleanup: 'compact' });
  expect((await http('GET', '/v1/topics/plain')).body).toMatchObject({ name: 'plain', cleanup: 'delete' });
  const r = await http('POST', '/v1/topics/users/records', {
    records: [{ key: 'a', value: '1' }, { value: 'no key' }],
  });
  expect(r.status).toBe(400);
  expect(r.body).toMatchObject({ code: 'INVALID_REQUEST', reason: 'key_required', pointer: '/records/1/key' });
  expect((await http('POST', '/v1/topics/plain/records', { records: [{ value: 'no key' }] })).status).toBe(200);
});

test('a consumer following next_offset reads the latest value of each key; a tombstone is read, then gone', async () => {
  // 30 keys × 10 versions; key k0's last record is a tombstone (value null).
  for (let v = 0; v < 10; v++) {
    const records = Array.from({ length: 30 }, (_, k) => ({
      key: `k${k}`,
      value: v === 9 && k === 0 ? null : `v${v}`,
    }));
    expect((await http('POST', '/v1/topics/users/records', { records })).status).toBe(200);
  }
  const deadline = Date.now() + 30_000;
  let got = await readAll('users');
  // First the tombstone is served (as null), then — after the delete retention — it is gone too.
  while (got.length !== 29 && Date.now() < deadline) {
    await sleep(300);
    got = await readAll('users');
  }
  expect(got.map((x) => [x.key, x.value])).toEqual(Array.from({ length: 29 }, (_, i) => [`k${i + 1}`, 'v9']));
  // Offsets as written: version 9 of key k is at 270 + k.
  expect(got.map((x) => x.offset)).toEqual(Array.from({ length: 29 }, (_, i) => 271 + i));
  const p = (await http('GET', '/v1/topics/users')).body.partitions[0];
  expect(p).toMatchObject({ high_watermark: 300, log_start_offset: 0 });
});
