import { ControlVerifier, signControl, type ControlAuth } from '../../../common/control-auth';
import { parseControlRequest, type ControlRequest } from '../../../common/control-subjects';
import { topicAdminSecret } from '../../../common/topic-credentials';
import { adminKeyOf } from '../../../protocol/rpc-auth';

const INSTALL = 'i'.repeat(48);
/** What the operator signs with, and what the replicas of `orders` check with (their DAFTKA_ADMIN_SECRET). */
const key = (topic: string) => adminKeyOf(topicAdminSecret(INSTALL, topic));
const NOW = 1_800_000_000_000;
const transfer: ControlRequest = { v: 1, op: 'transferLeadership', to: '2.abc' };

/** Through JSON and the boundary parser, as a replica receives it. */
function received(req: unknown): ControlRequest & { auth?: ControlAuth } {
  const parsed = parseControlRequest(JSON.parse(JSON.stringify(req)));
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

describe('signed control requests (common/control-auth.ts)', () => {
  it('a request signed with the topic admin key is taken once; the same bytes again are a replay', () => {
    const v = new ControlVerifier(key('orders'));
    const signed = received(signControl(key('orders'), 'orders', 0, transfer, NOW));
    expect(v.check('orders', 0, signed, NOW + 500)).toBeNull();
    expect(v.check('orders', 0, signed, NOW + 600)).toBe('this request was already taken (replayed)');
  });

  it('unsigned, wrong key, another topic or partition, or a changed target: refused', () => {
    const v = new ControlVerifier(key('orders'));
    expect(v.check('orders', 0, received(transfer), NOW)).toBe(
      "transferLeadership needs a request signed with the topic's admin key",
    );
    // The installation's own key, or another topic's: not the key these replicas hold.
    expect(v.check('orders', 0, received(signControl(adminKeyOf(INSTALL), 'orders', 0, transfer, NOW)), NOW)).toBe(
      'bad signature',
    );
    expect(v.check('orders', 0, received(signControl(key('payments'), 'orders', 0, transfer, NOW)), NOW)).toBe(
      'bad signature',
    );
    const forOther = received(signControl(key('orders'), 'orders', 1, transfer, NOW));
    expect(v.check('orders', 0, forOther, NOW)).toBe('bad signature');
    const signed = received(signControl(key('orders'), 'orders', 0, { v: 1, op: 'removeMember', id: '1.x' }, NOW));
    expect(v.check('orders', 0, { ...signed, id: '0.y' } as ControlRequest, NOW)).toBe('bad signature');
    const learner = received(
      signControl(key('orders'), 'orders', 0, { v: 1, op: 'addLearner', id: '3.z', endpoint: 'a:1' }, NOW),
    );
    expect(v.check('orders', 0, { ...learner, endpoint: 'evil:1' } as ControlRequest, NOW)).toBe('bad signature');
    expect(v.check('orders', 0, learner, NOW)).toBeNull();
  });

  it('a request signed more than 30 s from the replica clock is refused, either way', () => {
    const v = new ControlVerifier(key('orders'));
    const old = received(signControl(key('orders'), 'orders', 0, transfer, NOW - 30_001));
    expect(v.check('orders', 0, old, NOW)).toBe("signed 30 s from this replica's clock (more than 30 s)");
    const ahead = received(signControl(key('orders'), 'orders', 0, transfer, NOW + 31_000));
    expect(v.check('orders', 0, ahead, NOW)).toBe("signed -31 s from this replica's clock (more than 30 s)");
    expect(
      v.check('orders', 0, received(signControl(key('orders'), 'orders', 0, transfer, NOW - 29_000)), NOW),
    ).toBeNull();
  });

  it('nonces are bounded: past the bound requests are refused until the window has passed', () => {
    const v = new ControlVerifier(key('orders'), { maxNonces: 2 });
    const sign = (at: number) => received(signControl(key('orders'), 'orders', 0, transfer, at));
    expect(v.check('orders', 0, sign(NOW), NOW)).toBeNull();
    expect(v.check('orders', 0, sign(NOW), NOW)).toBeNull();
    expect(v.check('orders', 0, sign(NOW), NOW)).toBe('too many control requests; retry later');
    // Once the first ones may be forgotten (ts + 30 s), room again.
    expect(v.check('orders', 0, sign(NOW + 30_001), NOW + 30_001)).toBeNull();
  });

  it('status is never signed nor checked; a replica without an admin key takes unsigned requests', () => {
    expect(signControl(key('orders'), 'orders', 0, { v: 1, op: 'status' }, NOW)).toEqual({ v: 1, op: 'status' });
    expect(new ControlVerifier(key('orders')).check('orders', 0, { v: 1, op: 'status' }, NOW)).toBeNull();
    expect(new ControlVerifier(null).check('orders', 0, received(transfer), NOW)).toBeNull();
  });

  it('the boundary refuses a malformed auth field with a precise message', () => {
    expect(parseControlRequest({ ...transfer, auth: 'x' })).toBe('"auth" must be an object {ts, nonce, sig}');
    expect(parseControlRequest({ ...transfer, auth: { ts: -1, nonce: 'a'.repeat(22), sig: 'b'.repeat(43) } })).toBe(
      '"auth.ts" must be milliseconds',
    );
    expect(parseControlRequest({ ...transfer, auth: { ts: NOW, nonce: 'short', sig: 'b'.repeat(43) } })).toBe(
      '"auth.nonce" must be 16 bytes, base64url',
    );
    expect(parseControlRequest({ ...transfer, auth: { ts: NOW, nonce: 'a'.repeat(22), sig: 'b' } })).toBe(
      '"auth.sig" must be 32 bytes, base64url',
    );
  });
});
