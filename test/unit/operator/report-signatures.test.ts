/**
 * What the operator believes on NATS (operator/report-table.ts subscribeReports): status reports
 * and leader announcements of a topic whose client key it holds must be signed with that key —
 * every replica shares one NATS user, so any of them could publish another topic's subjects.
 */
import type { NatsConnection } from 'nats';
import { reportSig } from '../../../common/control-auth';
import { SUBJECTS, type LeaderAnnouncement, type StatusReport } from '../../../common/control-subjects';
import { createLogger } from '../../../common/log';
import { ReportTable, subscribeReports } from '../../../operator/report-table';
import { clientKeyOf, leaderSig } from '../../../protocol/rpc-auth';
import { HEALTH } from './fixtures';

const KEY = clientKeyOf('p'.repeat(44), 'orders');
const OTHER = clientKeyOf('q'.repeat(44), 'payments');

/** A stand-in NATS connection: subscribe() keeps the callbacks; deliver() calls them as the server would. */
function fakeNats() {
  const subs = new Map<string, (err: Error | null, msg: { data: Uint8Array; subject: string }) => void>();
  const nc = {
    subscribe: (
      subject: string,
      o: { callback: (err: Error | null, msg: { data: Uint8Array; subject: string }) => void },
    ) => {
      subs.set(subject, o.callback);
      return { unsubscribe: () => undefined };
    },
  } as unknown as NatsConnection;
  const deliver = (all: string, subject: string, body: unknown) =>
    subs.get(all)!(null, { subject, data: new TextEncoder().encode(JSON.stringify(body)) });
  return { nc, deliver };
}

function setup(keys: Record<string, Buffer>) {
  const table = new ReportTable({ settings: HEALTH, onChange: () => undefined });
  const { nc, deliver } = fakeNats();
  const seen: Array<[string, boolean]> = [];
  subscribeReports(nc, table, {
    logger: createLogger('operator', { level: 'error' }),
    onMessage: (kind, ok) => seen.push([kind, ok]),
    keyFor: (t) => keys[t],
  });
  return {
    table,
    seen,
    status: (r: StatusReport) => deliver(SUBJECTS.statusAll, SUBJECTS.status(r.topic, r.partition, r.replicaId), r),
    leader: (a: LeaderAnnouncement) => deliver(SUBJECTS.leaderAll, SUBJECTS.leader(a.topic, a.partition), a),
  };
}

const report = (replicaId: string, term: number): StatusReport => ({
  v: 1,
  topic: 'orders',
  partition: 0,
  replicaId,
  incarnation: replicaId.split('.')[1],
  role: 'leader',
  term,
  leaderId: replicaId,
  lastIndex: 10,
  commitIndex: 10,
  appliedIndex: 10,
  highWatermark: 5,
  logStartOffset: 0,
  logBytes: 100,
  voters: [replicaId],
  learners: [],
  ready: true,
  ts: 1,
});
const signed = (r: StatusReport, key = KEY): StatusReport => ({ ...r, sig: reportSig(key, r) });

describe('replica reports on NATS: signatures (operator)', () => {
  it("a report signed with the topic's client key is taken; one signed with another topic's key is dropped", () => {
    const s = setup({ orders: KEY, payments: OTHER });
    s.status(signed(report('0.aaaa', 3)));
    s.status(signed(report('1.evil', 99), OTHER));
    expect(s.seen).toEqual([
      ['status', true],
      ['status', false],
    ]);
    expect(s.table.reports('orders', 0).map((e) => e.report.replicaId)).toEqual(['0.aaaa']);
  });

  it('a changed field breaks the signature', () => {
    const s = setup({ orders: KEY });
    s.status({ ...signed(report('0.aaaa', 3)), term: 4 });
    expect(s.seen).toEqual([['status', false]]);
    expect(s.table.reports('orders', 0)).toEqual([]);
  });

  it("unsigned reports are taken only until the topic's first signed one (replicas from before signing, during an upgrade)", () => {
    const s = setup({ orders: KEY });
    s.status(report('0.old0', 3));
    s.status(signed(report('1.new1', 3)));
    s.status(report('2.evil', 99));
    expect(s.seen.map(([, ok]) => ok)).toEqual([true, true, false]);
    expect(
      s.table
        .reports('orders', 0)
        .map((e) => e.report.replicaId)
        .sort(),
    ).toEqual(['0.old0', '1.new1']);
  });

  it('announcements: badly signed ones dropped, unsigned ones after a signed one dropped', () => {
    const s = setup({ orders: KEY });
    const a: LeaderAnnouncement = {
      v: 1,
      topic: 'orders',
      partition: 0,
      term: 3,
      leaderId: '0.aaaa',
      endpoint: 'orders-0-0:9092',
      highWatermark: 5,
      ts: 1,
    };
    s.leader({ ...a, sig: leaderSig(KEY, a) });
    s.leader({ ...a, term: 99, leaderId: '9.evil', sig: leaderSig(OTHER, { ...a, term: 99, leaderId: '9.evil' }) });
    s.leader({ ...a, term: 99, leaderId: '9.evil' });
    expect(s.seen.map(([, ok]) => ok)).toEqual([true, false, false]);
    expect(s.table.announcement('orders', 0)?.announcement.leaderId).toBe('0.aaaa');
  });

  it('a topic whose key the operator does not hold yet: reports are taken as they come', () => {
    const s = setup({});
    s.status(report('0.aaaa', 3));
    expect(s.seen).toEqual([['status', true]]);
  });
});
