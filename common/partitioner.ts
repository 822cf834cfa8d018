/**
 * Key → partition, exactly as Kafka's default partitioner does it for keyed records, so that
 * existing Kafka tooling agrees with Daftka on where a key lives:
 *   partition = toPositive(murmur2(keyBytes)) % numPartitions
 * (org.apache.kafka.common.utils.Utils.murmur2 / toPositive, clients/…/BuiltInPartitioner).
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/** Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with Kafka's seed, as a signed 32-bit integer. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i << 2;
    // Java sums four bytes shifted into an int; bitwise OR is the same once wrapped to 32 bits.
    let k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  // The tail: up to three bytes, mixed in the same order as Java's fall-through switch.
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2] << 16;
  if (rest >= 2) h ^= data[tail + 1] << 8;
  if (rest >= 1) {
    h ^= data[tail];
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's `Utils.toPositive`: clears the sign bit (not Math.abs, which breaks on −2³¹). */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/** The partition a key belongs to among `numPartitions`. */
export function partitionForKey(key: Uint8Array, numPartitions: number): number {
  return toPositive(murmur2(key)) % numPartitions;
}

/**
 * Where records without key and without explicit partition go: every such record of one request
 * goes to one partition ("sticky per request", like Kafka's sticky partitioner per batch), so a
 * request stays one replica batch. The partition is
 *  - derived from the Idempotency-Key when there is one, so a retry of the same request lands on
 *    the same partitions with the same payloads and is deduplicated, not written twice;
 *  - otherwise the next in a per-topic round-robin across requests.
 */
export class StickyPartitioner {
  private readonly next = new Map<string, number>();
  /** Topic names come from the catalog, so this map is bounded by the number of topics. */
  choose(topic: string, numPartitions: number, idempotencyKey: string | undefined): number {
    if (idempotencyKey !== undefined) return partitionForKey(Buffer.from(idempotencyKey, 'utf8'), numPartitions);
    // Start each topic at a random partition so that gateways do not all begin on partition 0.
    const n = this.next.get(topic) ?? Math.floor(Math.random() * numPartitions);
    this.next.set(topic, (n + 1) % 0x40000000);
    return n % numPartitions;
  }
}
