// The Daftka web console (docs/console.md). Plain ES module, no build step, nothing loaded from
// elsewhere. It uses the public HTTP API only, with the signed-in principal's bearer token (kept in
// sessionStorage), so it shows only what that principal may see. Text from the API is always put
// into the page as text (textContent), never as HTML.

const TOKEN_KEY = 'daftka.token';
const $ = (sel) => document.querySelector(sel);

/** h('td', {class: 'num'}, 'text', child…): an element; strings become text nodes. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}

const badge = (status, text = status) => h('span', { class: `badge s-${status}`, 'data-status': status }, text);

function table(headers, rows, attrs = {}) {
  return h(
    'table',
    attrs,
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headers.map((x) => h('th', {}, x)),
      ),
    ),
    h('tbody', {}, rows),
  );
}

// ---- the API --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? `HTTP_${status}`;
  }
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let doc;
  try {
    doc = text ? JSON.parse(text) : undefined;
  } catch {
    doc = undefined;
  }
  if (!res.ok) throw new ApiError(res.status, doc);
  return doc;
}
const get = (path) => api('GET', path);
const post = (path, body) => api('POST', path, body);
const enc = encodeURIComponent;

function showError(err) {
  const box = $('#error');
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  box.hidden = false;
  box.textContent =
    err instanceof ApiError
      ? `${err.code}: ${err.message}${err.status === 401 ? ' — sign in with a token' : ''}`
      : String(err.message ?? err);
}

// ---- value rendering ------------------------------------------------------------------------

function b64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

/** A record field as the API sent it (`value` text or `value_b64` bytes), for the chosen view. */
function renderValue(text, b64, binaryView) {
  if (text !== undefined && text !== null) {
    try {
      const parsed = JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object')
        return h('pre', { class: 'json', 'data-kind': 'json' }, JSON.stringify(parsed, null, 2));
    } catch {
      /* plain text */
    }
    return h('pre', { 'data-kind': 'text' }, text);
  }
  if (b64 !== undefined && b64 !== null)
    return binaryView === 'base64'
      ? h('pre', { 'data-kind': 'base64' }, b64)
      : h('pre', { 'data-kind': 'hex' }, hex(b64ToBytes(b64)));
  return h('span', { class: 'note' }, 'null');
}

const time = (ms) => (ms === undefined || ms === null ? '' : new Date(ms).toISOString());

// ---- shared pieces --------------------------------------------------------------------------

let topicsCache = null;
async function topicNames() {
  topicsCache ??= (await get('/v1/topics')).topics;
  return topicsCache;
}

function topicSelect(names, selected, id) {
  return h(
    'select',
    { id, name: 'topic' },
    names.map((t) => h('option', { value: t.name, selected: t.name === selected }, t.name)),
  );
}

function params() {
  const q = location.hash.split('?')[1] ?? '';
  return new URLSearchParams(q);
}

// ---- pages ----------------------------------------------------------------------------------

async function topicsPage(root) {
  const { topics } = await get('/v1/topics');
  root.append(h('h2', {}, 'Topics and partitions'));
  if (topics.length === 0) {
    root.append(h('p', { class: 'note' }, 'No topic visible to this principal.'));
    return;
  }
  const details = await Promise.all(topics.map((t) => get(`/v1/topics/${enc(t.name)}`)));
  const all = details.flatMap((d) => d.partitions);
  const leaderless = all.filter((p) => !p.leader).length;
  const under = all.filter((p) => p.under_replicated).length;
  root.append(
    h(
      'p',
      { 'data-testid': 'topics-summary' },
      `${topics.length} topics, ${all.length} partitions, `,
      h('span', { 'data-testid': 'leaderless-count' }, String(leaderless)),
      ' leaderless, ',
      h('span', { 'data-testid': 'under-replicated-count' }, String(under)),
      ' under-replicated',
    ),
  );
  for (const d of details) {
    root.append(
      h('h3', {}, d.name, ' ', h('span', { class: 'note' }, `rights: ${d.rights.join(', ') || 'none'}`)),
      table(
        ['partition', 'leader', 'term', 'log start', 'high watermark', 'records', 'voters / replicas', 'health'],
        d.partitions.map((p) =>
          h(
            'tr',
            { 'data-topic': d.name, 'data-partition': p.partition },
            h('td', { class: 'num' }, p.partition),
            h('td', { 'data-field': 'leader' }, p.leader ?? '—'),
            h('td', { class: 'num', 'data-field': 'term' }, p.term ?? ''),
            h('td', { class: 'num', 'data-field': 'log_start_offset' }, p.log_start_offset ?? ''),
            h('td', { class: 'num', 'data-field': 'high_watermark' }, p.high_watermark ?? ''),
            h('td', { class: 'num' }, p.high_watermark !== undefined ? p.high_watermark - p.log_start_offset : ''),
            h('td', { class: 'num' }, p.voters !== undefined ? `${p.voters} / ${p.replicas}` : ''),
            h(
              'td',
              { 'data-field': 'health' },
              p.error
                ? badge('bad', `${p.error.code}`)
                : !p.leader
                  ? badge('not_ready', 'leaderless')
                  : p.under_replicated
                    ? badge('warning', 'under-replicated')
                    : badge('ok', 'ok'),
            ),
          ),
        ),
        { 'data-testid': `partitions-${d.name}` },
      ),
    );
  }
}

/** First offset in [lo, hi) whose record timestamp is ≥ ts (single-record fetches, as the CLI). */
async function offsetForTimestamp(topic, partition, ts, lo, hi) {
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const r = await get(`/v1/topics/${enc(topic)}/partitions/${partition}/records?offset=${mid}&max_records=1`);
    const rec = r.records[0];
    if (rec === undefined || rec.timestamp >= ts) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

async function recordsPage(root) {
  const names = await topicNames();
  const q = params();
  const topic = q.get('topic') ?? names[0]?.name;
  root.append(h('h2', {}, 'Records'));
  if (!topic) return root.append(h('p', { class: 'note' }, 'No topic visible to this principal.'));
  const form = h(
    'form',
    { class: 'bar', id: 'records-form' },
    h('label', {}, 'topic', topicSelect(names, topic, 'rec-topic')),
    h(
      'label',
      {},
      'partition',
      h('input', { id: 'rec-partition', type: 'number', min: 0, value: q.get('partition') ?? 0 }),
    ),
    h(
      'label',
      {},
      'from',
      h(
        'select',
        { id: 'rec-mode' },
        ['offset', 'timestamp', 'earliest', 'latest'].map((m) =>
          h('option', { value: m, selected: q.get('mode') === m }, m),
        ),
      ),
    ),
    h('label', {}, 'offset', h('input', { id: 'rec-offset', type: 'number', min: 0, value: q.get('offset') ?? 0 })),
    h(
      'label',
      {},
      'timestamp (ms or ISO 8601)',
      h('input', { id: 'rec-timestamp', value: q.get('timestamp') ?? '', size: 24 }),
    ),
    h(
      'label',
      {},
      'max records',
      h('input', { id: 'rec-max', type: 'number', min: 1, max: 1000, value: q.get('max') ?? 50 }),
    ),
    h('label', {}, 'key contains', h('input', { id: 'rec-key', value: q.get('key') ?? '' })),
    h(
      'label',
      {},
      'binary as',
      h(
        'select',
        { id: 'rec-binary' },
        ['hex', 'base64'].map((m) => h('option', { value: m, selected: q.get('binary') === m }, m)),
      ),
    ),
    h('button', { type: 'submit', id: 'rec-load' }, 'Load'),
  );
  const out = h('div', { id: 'records-out' });
  root.append(form, out);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void guarded(async () => {
      out.replaceChildren(h('p', { class: 'note' }, 'loading…'));
      const t = $('#rec-topic').value;
      const p = Number($('#rec-partition').value);
      const mode = $('#rec-mode').value;
      const max = Number($('#rec-max').value) || 50;
      const keyFilter = $('#rec-key').value;
      const binary = $('#rec-binary').value;
      const detail = await get(`/v1/topics/${enc(t)}`);
      const part = detail.partitions.find((x) => x.partition === p);
      if (!part || part.error) throw new Error(`partition ${p} of ${t}: ${part?.error?.detail ?? 'not found'}`);
      let offset;
      if (mode === 'earliest') offset = part.log_start_offset;
      else if (mode === 'latest') offset = Math.max(part.log_start_offset, part.high_watermark - max);
      else if (mode === 'timestamp') {
        const raw = $('#rec-timestamp').value.trim();
        const ts = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
        if (!Number.isFinite(ts)) throw new Error('timestamp: give ms since the epoch or an ISO 8601 time');
        offset = await offsetForTimestamp(t, p, ts, part.log_start_offset, part.high_watermark);
      } else offset = Math.max(Number($('#rec-offset').value) || 0, part.log_start_offset);
      const r = await get(
        `/v1/topics/${enc(t)}/partitions/${p}/records?offset=${offset}&max_records=${max}&encoding=utf8`,
      );
      const shown = r.records.filter((x) => !keyFilter || (x.key ?? '').includes(keyFilter));
      out.replaceChildren(
        h(
          'p',
          { class: 'note', 'data-testid': 'records-summary' },
          `offsets ${offset}–${r.next_offset - 1} of [${r.log_start_offset}, ${r.high_watermark}); ` +
            `${r.records.length} fetched, ${shown.length} shown` +
            (keyFilter ? ` (key contains "${keyFilter}")` : ''),
        ),
        table(
          ['offset', 'timestamp', 'key', 'value', 'headers'],
          shown.map((x) =>
            h(
              'tr',
              { 'data-offset': x.offset },
              h('td', { class: 'num' }, x.offset),
              h('td', {}, time(x.timestamp)),
              h('td', { 'data-field': 'key' }, renderValue(x.key, x.key_b64, binary)),
              h('td', { 'data-field': 'value' }, renderValue(x.value, x.value_b64, binary)),
              h('td', {}, headersText(x.headers)),
            ),
          ),
          { 'data-testid': 'records-table' },
        ),
        r.next_offset < r.high_watermark
          ? h(
              'button',
              {
                type: 'button',
                id: 'rec-next',
                onclick: () => {
                  $('#rec-mode').value = 'offset';
                  $('#rec-offset').value = r.next_offset;
                  form.requestSubmit();
                },
              },
              'Next page',
            )
          : null,
      );
    });
  });
  if (q.has('offset') || q.has('mode')) form.requestSubmit();
}

function headersText(headers) {
  if (!headers) return '';
  const list = Array.isArray(headers) ? headers : Object.entries(headers).map(([name, value]) => ({ name, value }));
  return list.map((x) => `${x.name}: ${x.value ?? `(b64) ${x.value_b64}`}`).join('\n');
}

async function groupsPage(root) {
  const names = await topicNames();
  const q = params();
  // The groups this principal may use (GET /v1/groups); a row's button shows its lag below.
  const list = h('div', { id: 'group-list' });
  root.append(
    h('h2', {}, 'Consumer groups'),
    list,
    h('p', { class: 'note' }, 'Or name a group. Without a topic: every topic you may consume on where it committed.'),
  );
  const form = h(
    'form',
    { class: 'bar', id: 'group-form' },
    h('label', {}, 'group', h('input', { id: 'group-name', value: q.get('group') ?? '', required: true })),
    h(
      'label',
      {},
      'topic',
      h(
        'select',
        { id: 'group-topic' },
        h('option', { value: '' }, '(all)'),
        names.map((t) => h('option', { value: t.name, selected: t.name === q.get('topic') }, t.name)),
      ),
    ),
    h('button', { type: 'submit', id: 'group-load' }, 'Show lag'),
  );
  const out = h('div', { id: 'group-out' });
  root.append(form, out);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void guarded(async () => {
      const g = $('#group-name').value.trim();
      const t = $('#group-topic').value;
      const doc = await get(`/v1/groups/${enc(g)}${t ? `?topic=${enc(t)}` : ''}`);
      out.replaceChildren(
        h('p', { 'data-testid': 'group-lag' }, `group ${doc.group}: total lag ${doc.lag}`),
        ...doc.topics.flatMap((tt) => [
          h('h3', {}, `${tt.topic} — lag ${tt.lag}`),
          table(
            ['partition', 'committed', 'log start', 'high watermark', 'lag'],
            tt.partitions.map((p) =>
              h(
                'tr',
                { 'data-topic': tt.topic, 'data-partition': p.partition },
                h('td', { class: 'num' }, p.partition),
                h('td', { class: 'num', 'data-field': 'offset' }, p.offset ?? '—'),
                h('td', { class: 'num' }, p.log_start_offset ?? ''),
                h('td', { class: 'num' }, p.high_watermark ?? ''),
                h('td', { class: 'num', 'data-field': 'lag' }, p.error ? p.error.code : p.lag),
              ),
            ),
            { 'data-testid': `group-partitions-${tt.topic}` },
          ),
          resetPanel(g, tt.topic, () => form.requestSubmit()),
        ]),
      );
    });
  });
  void guarded(async () => {
    const doc = await get('/v1/groups');
    const show = (g) => () => {
      $('#group-name').value = g.group;
      $('#group-topic').value = g.topic;
      form.requestSubmit();
    };
    list.replaceChildren(
      doc.groups.length === 0
        ? h('p', { class: 'note' }, 'No groups you may use have committed offsets or leases yet.')
        : table(
            ['group', 'topic', ''],
            doc.groups.map((g) =>
              h(
                'tr',
                { 'data-group': g.group, 'data-topic': g.topic },
                h('td', {}, g.group),
                h('td', {}, g.topic),
                h('td', {}, h('button', { type: 'button', class: 'show-group', onclick: show(g) }, 'Show lag')),
              ),
            ),
            { 'data-testid': 'group-list' },
          ),
      doc.truncated ? h('p', { class: 'note' }, 'Some partitions hold more groups than they list.') : '',
    );
  });
  if (q.has('group')) form.requestSubmit();
}

/** Reset a group's offsets on a topic: a dry run first, then an explicit confirmation. */
function resetPanel(group, topic, refresh) {
  const out = h('div', { class: 'reset-out' });
  const toSel = h(
    'select',
    { class: 'reset-to' },
    ['earliest', 'latest', 'offset', 'timestamp'].map((m) => h('option', { value: m }, m)),
  );
  const arg = h('input', { class: 'reset-arg', placeholder: 'offset, or timestamp (ms / ISO)', size: 26 });
  const body = () => {
    const b = { topic, to: toSel.value };
    if (toSel.value === 'offset') b.offset = Number(arg.value);
    if (toSel.value === 'timestamp') b.timestamp = /^\d+$/.test(arg.value) ? Number(arg.value) : Date.parse(arg.value);
    return b;
  };
  const dry = h('button', { type: 'button', class: 'reset-dry' }, 'Dry run');
  dry.addEventListener('click', () =>
    guarded(async () => {
      const b = body();
      const r = await post(`/v1/groups/${enc(group)}/offsets:reset`, { ...b, dry_run: true });
      const confirm = h(
        'button',
        { type: 'button', class: 'danger reset-confirm' },
        `Confirm reset of ${group} on ${topic}`,
      );
      confirm.addEventListener('click', () =>
        guarded(async () => {
          await post(`/v1/groups/${enc(group)}/offsets:reset`, { ...b, dry_run: false });
          refresh();
        }),
      );
      out.replaceChildren(
        h('p', { class: 'note' }, `dry run: ${r.to} — nothing committed yet`),
        table(
          ['partition', 'previous', 'new'],
          r.partitions.map((p) =>
            h(
              'tr',
              { 'data-partition': p.partition },
              h('td', { class: 'num' }, p.partition),
              h('td', { class: 'num' }, p.previous_offset ?? '—'),
              h('td', { class: 'num', 'data-field': 'new_offset' }, p.new_offset),
            ),
          ),
          { class: 'reset-preview' },
        ),
        confirm,
      );
    }),
  );
  return h('div', { class: 'panel' }, h('strong', {}, 'Reset offsets '), toSel, ' ', arg, ' ', dry, out);
}

async function deadLettersPage(root) {
  const names = await topicNames();
  const q = params();
  const topic = q.get('topic') ?? names[0]?.name;
  root.append(h('h2', {}, 'Dead letters'));
  if (!topic) return root.append(h('p', { class: 'note' }, 'No topic visible to this principal.'));
  const form = h(
    'form',
    { class: 'bar', id: 'dl-form' },
    h('label', {}, 'topic', topicSelect(names, topic, 'dl-topic')),
    h(
      'label',
      {},
      'state',
      h(
        'select',
        { id: 'dl-state' },
        ['active', 'replayed', 'archived', ''].map((s) =>
          h('option', { value: s, selected: (q.get('state') ?? 'active') === s }, s || '(all)'),
        ),
      ),
    ),
    h('label', {}, 'group', h('input', { id: 'dl-group', value: q.get('group') ?? '' })),
    h('button', { type: 'submit', id: 'dl-load' }, 'List'),
  );
  const out = h('div', { id: 'dl-out' });
  const replay = h('div', { id: 'dl-replay' });
  root.append(form, out, replay);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void guarded(async () => {
      const t = $('#dl-topic').value;
      const state = $('#dl-state').value;
      const group = $('#dl-group').value.trim();
      const qs = new URLSearchParams({ limit: '100', encoding: 'utf8' });
      if (state) qs.set('state', state);
      if (group) qs.set('group', group);
      const doc = await get(`/v1/topics/${enc(t)}/deadletters?${qs}`);
      out.replaceChildren(
        h(
          'p',
          { class: 'note', 'data-testid': 'dl-count' },
          `${doc.deadletters.length}${doc.next_cursor ? '+' : ''} entries`,
        ),
        table(
          ['id', 'origin', 'group', 'attempts', 'error', 'state', 'dead-lettered', 'key', 'value'],
          doc.deadletters.map((d) =>
            h(
              'tr',
              { 'data-id': d.id },
              h('td', {}, d.id),
              h('td', {}, `${d.partition}@${d.offset}`),
              h('td', {}, d.group),
              h('td', { class: 'num' }, d.attempts),
              h('td', {}, [d.error_class, d.last_error].filter(Boolean).join(': ')),
              h('td', { 'data-field': 'state' }, d.state),
              h('td', {}, time(d.dead_lettered_at)),
              h('td', {}, renderValue(d.key, d.key_b64, 'hex')),
              h('td', {}, renderValue(d.value, d.value_b64, 'hex')),
            ),
          ),
          { 'data-testid': 'dl-table' },
        ),
      );
      replay.replaceChildren(replayPanel(t, group));
    });
  });
  form.requestSubmit();
}

/** Replay: a dry run (what would be written), then a confirmation, then the job's progress. */
function replayPanel(topic, group) {
  const rate = h('input', { id: 'replay-rate', type: 'number', min: 1, value: 100, size: 6 });
  const out = h('div', { id: 'replay-out' });
  const filter = group ? { group } : {};
  const dry = h('button', { type: 'button', id: 'replay-dry' }, 'Dry run');
  dry.addEventListener('click', () =>
    guarded(async () => {
      const job = await post(`/v1/topics/${enc(topic)}/deadletters:replay`, {
        filter,
        rate_per_sec: Number(rate.value) || 100,
        dry_run: true,
      });
      const go = h(
        'button',
        { type: 'button', class: 'danger', id: 'replay-confirm' },
        `Replay ${job.matched} dead letters`,
      );
      go.addEventListener('click', () =>
        guarded(async () => {
          go.disabled = true;
          const started = await post(`/v1/topics/${enc(topic)}/deadletters:replay`, {
            filter,
            rate_per_sec: Number(rate.value) || 100,
            dry_run: false,
          });
          await followJob(started.job_id, out);
        }),
      );
      out.replaceChildren(
        h(
          'p',
          { 'data-testid': 'replay-dry-result' },
          `dry run: ${job.matched} would be replayed to their origin partitions (${job.skipped} already replayed); nothing written`,
        ),
        go,
      );
    }),
  );
  return h(
    'div',
    { class: 'panel' },
    h('strong', {}, `Replay active dead letters of ${topic}${group ? ` (group ${group})` : ''} `),
    h('label', {}, ' rate/s ', rate),
    ' ',
    dry,
    out,
  );
}

async function followJob(jobId, out) {
  const bar = h('progress', { max: 1, value: 0 });
  const line = h('span', { 'data-testid': 'job-progress' });
  const state = h('span', { 'data-testid': 'job-state' });
  out.replaceChildren(h('p', {}, `job ${jobId}: `, state, ' ', bar, ' ', line));
  for (;;) {
    const j = await get(`/v1/jobs/${enc(jobId)}`);
    bar.max = Math.max(1, j.matched);
    bar.value = j.written + j.skipped;
    line.textContent = `${j.written} written, ${j.skipped} skipped of ${j.matched}`;
    state.replaceChildren(badge(j.state === 'done' ? 'ok' : j.state === 'incomplete' ? 'bad' : 'warning', j.state));
    state.dataset.state = j.state;
    if (j.state !== 'running') return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function readinessPage(root) {
  root.append(h('h2', {}, 'Launch readiness'));
  const [r, hist] = await Promise.all([get('/v1/readiness'), get('/v1/readiness/history?limit=60')]);
  root.append(
    h(
      'p',
      {},
      'Overall: ',
      h('span', { 'data-testid': 'readiness-status' }, badge(r.status)),
      ` measured ${time(r.at)} — ${r.summary.ok} ok, ${r.summary.warning} warning, ${r.summary.not_ready} not ready, ${r.summary.unknown} unknown`,
    ),
    table(
      ['check', 'status', 'value', 'threshold', 'reason', `trend (last ${hist.snapshots.length} snapshots)`],
      r.checks.map((c) =>
        h(
          'tr',
          { 'data-check': c.id },
          h('td', {}, c.id),
          h('td', { 'data-field': 'status' }, badge(c.status)),
          h('td', { class: 'num', 'data-field': 'value' }, checkValue(c)),
          h(
            'td',
            {},
            c.threshold
              ? Object.entries(c.threshold)
                  .map(([k, v]) => `${k} > ${v}`)
                  .join(', ')
              : '—',
          ),
          h('td', {}, c.reason),
          h('td', {}, trend(hist.snapshots.map((s) => s.checks[c.id]?.status ?? 'unknown'))),
        ),
      ),
      { 'data-testid': 'readiness-checks' },
    ),
    h('h3', {}, 'Overall, over time'),
    h(
      'div',
      { 'data-testid': 'readiness-trend' },
      trend(hist.snapshots.map((s) => s.status)),
      h('span', { class: 'note' }, ` one snapshot every ${hist.interval_ms / 1000} s, ${hist.capacity} kept`),
    ),
  );
}

function checkValue(c) {
  if (c.value === null) return '—';
  if (c.unit === 'ratio' && typeof c.value === 'number') return `${Number((c.value * 100).toPrecision(3))}%`;
  return `${c.value}${c.unit ? ` ${c.unit}` : ''}`;
}

function trend(statuses) {
  return h(
    'span',
    { class: 'trend' },
    statuses.map((s) => h('span', { class: `s-${s}`, title: s })),
  );
}

// ---- routing and sign-in ---------------------------------------------------------------------

const PAGES = {
  topics: topicsPage,
  records: recordsPage,
  groups: groupsPage,
  deadletters: deadLettersPage,
  readiness: readinessPage,
};

async function guarded(fn) {
  showError(null);
  try {
    await fn();
  } catch (err) {
    showError(err);
  }
}

let rendering = 0;
async function render() {
  const name = (location.hash.replace(/^#\/?/, '').split('?')[0] || 'topics').toLowerCase();
  const page = PAGES[name] ?? topicsPage;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name);
  const root = $('#page');
  const mine = ++rendering;
  root.replaceChildren();
  root.dataset.ready = 'false';
  await guarded(() => page(root));
  if (mine === rendering) {
    root.dataset.page = name;
    root.dataset.ready = 'true';
  }
}

function signedIn() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  $('#who').textContent = t ? 'token set' : 'no token';
}

window.addEventListener('hashchange', () => void render());
document.addEventListener('DOMContentLoaded', () => {
  $('#signin').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#token').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $('#token').value = '';
    topicsCache = null;
    signedIn();
    void render();
  });
  $('#token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    topicsCache = null;
    signedIn();
    void render();
  });
  signedIn();
  void render();
});
