/**
 * Replica slots: how a partition's StatefulSet holds RF replicas plus one spare ordinal, so that a
 * replica move adds the new replica before it removes the old one (DESIGN §7; docs/operator.md,
 * "Replica moves"). Pure functions.
 *
 * The StatefulSet has RF + 1 ordinals (slots). Every pod starts held by the scheduling gate
 * SPARE_GATE: it is not scheduled and runs nothing. The operator admits (removes the gate from) the
 * pods of the occupied slots; the one slot not occupied is the spare, and its pod stays gated — no
 * node, no CPU, and with a WaitForFirstConsumer storage class no volume. A move of the replica in
 * slot k admits the spare slot s (the replica there joins as a learner and is promoted by the
 * leader), then removes k from the group and deletes pod k with its claim: the StatefulSet makes
 * pod k again, gated, and k is the new spare. Which slot is spare is the Partition's annotation
 * SPARE_ANNOTATION (absent: the highest ordinal, RF, so a partition that never moved looks like a
 * StatefulSet of RF pods plus one gated pod).
 */
import type { PartitionOperation } from './crd-schema';
import type { PodInfo } from './status';

/** The scheduling gate every replica pod is created with; removed from the pods of occupied slots. */
export const SPARE_GATE = 'daftka.io/spare-slot';
/** Partition annotation: the ordinal of the spare slot (written by the rebalancer at the end of a move). */
export const SPARE_ANNOTATION = 'daftka.io/spare-slot';

/** Ordinals of the StatefulSet: RF replicas and one spare. */
export const slotCount = (replicationFactor: number): number => replicationFactor + 1;

/** The spare slot from the Partition's annotation; the highest ordinal when absent or invalid. */
export function spareSlotOf(replicationFactor: number, annotations: Record<string, string> | undefined): number {
  const raw = annotations?.[SPARE_ANNOTATION];
  const n = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= replicationFactor ? n : replicationFactor;
}

/**
 * The slots that hold a replica: all but the spare. During a move the spare is the move's target
 * and holds a replica too (RF + 1 slots until the old one is removed).
 */
export function occupiedSlots(replicationFactor: number, spare: number, operation?: PartitionOperation): number[] {
  const out: number[] = [];
  for (let o = 0; o < slotCount(replicationFactor); o++)
    if (o !== spare || (operation?.kind === 'move' && operation.target === spare)) out.push(o);
  return out;
}

/**
 * The slots whose gated pods may be admitted: the occupied ones, except, during a move, the slot
 * being vacated — its pod, made again after the old replica left, belongs to the next spare.
 */
export function admittableSlots(replicationFactor: number, spare: number, operation?: PartitionOperation): number[] {
  const occupied = occupiedSlots(replicationFactor, spare, operation);
  return operation?.kind === 'move' ? occupied.filter((o) => o !== operation.ordinal) : occupied;
}

/**
 * What the reconciler does to gated pods: admit those of admittable slots; recreate a spare pod made
 * from an old template (nothing runs in it, so deleting it costs nothing, and a move then starts
 * its replica on the current template rather than rolling it right after).
 */
export function gateActions(
  pods: Iterable<PodInfo>,
  admittable: readonly number[],
  updateRevision: string | undefined,
): { admit: PodInfo[]; recreate: PodInfo[] } {
  const admit: PodInfo[] = [];
  const recreate: PodInfo[] = [];
  for (const p of pods) {
    if (!p.gated || p.deleting) continue;
    if (admittable.includes(p.ordinal)) admit.push(p);
    else if (updateRevision !== undefined && p.revision !== undefined && p.revision !== updateRevision)
      recreate.push(p);
  }
  return { admit, recreate };
}
