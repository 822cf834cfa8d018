import type { PartitionOperation } from '../../../operator/crd-schema';
import {
  SPARE_ANNOTATION,
  admittableSlots,
  gateActions,
  occupiedSlots,
  slotCount,
  spareSlotOf,
} from '../../../operator/slots';
import type { PodInfo } from '../../../operator/status';

const move = (ordinal: number, target: number): PartitionOperation => ({
  kind: 'move',
  reason: 'drain',
  ordinal,
  target,
  pod: `t-0-${ordinal}`,
  startedAt: '2026-01-01T00:00:00Z',
});

const pod = (ordinal: number, o: Partial<PodInfo> = {}): PodInfo => ({
  name: `t-0-${ordinal}`,
  uid: `uid-${ordinal}`,
  ordinal,
  ready: false,
  deleting: false,
  gated: true,
  revision: 'rev1',
  ...o,
});

describe('replica slots: RF replicas and one spare ordinal', () => {
  it('a StatefulSet has RF + 1 ordinals', () => {
    expect([1, 3, 5, 7].map(slotCount)).toEqual([2, 4, 6, 8]);
  });

  it('the spare is the annotated ordinal, else the highest (a partition that never moved)', () => {
    expect(spareSlotOf(3, undefined)).toBe(3);
    expect(spareSlotOf(3, { [SPARE_ANNOTATION]: '1' })).toBe(1);
    for (const bad of ['4', '-1', 'x', '', '1.5']) expect(spareSlotOf(3, { [SPARE_ANNOTATION]: bad })).toBe(3);
  });

  it('occupied: every slot but the spare; during a move the target (the spare) as well', () => {
    expect(occupiedSlots(3, 3)).toEqual([0, 1, 2]);
    expect(occupiedSlots(3, 0)).toEqual([1, 2, 3]);
    expect(occupiedSlots(3, 3, move(1, 3))).toEqual([0, 1, 2, 3]);
    const roll: PartitionOperation = { ...move(1, 3), kind: 'roll' };
    expect(occupiedSlots(3, 3, roll)).toEqual([0, 1, 2]);
  });

  it('admittable: the occupied slots, but never the slot a move is vacating (its new pod is the next spare)', () => {
    expect(admittableSlots(3, 3)).toEqual([0, 1, 2]);
    expect(admittableSlots(3, 3, move(1, 3))).toEqual([0, 2, 3]);
  });

  it('gated pods of admittable slots are admitted; a gated spare on an old template is replaced', () => {
    const pods = [
      pod(0, { gated: undefined, node: 'n1' }), // running: nothing to do
      pod(1), // recreated after a roll or an eviction: admit
      pod(2, { deleting: true }), // on its way out: leave it
      pod(3, { revision: 'rev0' }), // the spare, made from an old template
    ];
    const { admit, recreate } = gateActions(pods, [0, 1, 2], 'rev1');
    expect(admit.map((p) => p.name)).toEqual(['t-0-1']);
    expect(recreate.map((p) => p.name)).toEqual(['t-0-3']);
    // Without a known update revision nothing is replaced.
    expect(gateActions(pods, [0, 1, 2], undefined).recreate).toEqual([]);
  });
});
