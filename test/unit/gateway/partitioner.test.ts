import { murmur2, partitionForKey, StickyPartitioner, toPositive } from '../../../common/partitioner';

const bytes = (s: string) => Buffer.from(s, 'utf8');

describe('murmur2 (Kafka Utils.murmur2)', () => {
  // Kafka's own vectors: clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java#testMurmur2
  test.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ])('hashes %j to Kafka’s known value %d', (key, expected) => {
    expect(murmur2(bytes(key))).toBe(expected);
  });

  // Further results computed with the Java client's Utils.murmur2 (Akka's Murmur2Spec; kafkajs's
  // defaultJava/murmur2.spec.js, "generated with Test.java").
  test.each([
    ['1', -1993445489],
    ['12', 126087238],
    ['123', -267702483],
    ['1234', -1614185708],
    ['12345', -1188365604],
    ['0', 971027396],
    ['128', -326012175],
    ['2187', -1508407203],
    ['16384', -325739742],
    ['10000000', -1830336757],
    ['170859375', -1658323481],
    ['100:48069', 1009543857],
  ])('agrees with the Java client on %j', (key, expected) => {
    expect(murmur2(bytes(key))).toBe(expected);
  });

  test('hashes the empty key and bytes with the high bit set without overflow', () => {
    expect(Number.isInteger(murmur2(new Uint8Array(0)))).toBe(true);
    const h = murmur2(Uint8Array.from([0xff, 0xfe, 0x80, 0x81, 0x7f]));
    expect(h).toBeGreaterThanOrEqual(-(2 ** 31));
    expect(h).toBeLessThan(2 ** 31);
  });
});

describe('partitionForKey', () => {
  test('is toPositive(murmur2(key)) % n, as Kafka’s default partitioner', () => {
    expect(toPositive(-973932308)).toBe(-973932308 & 0x7fffffff);
    expect(partitionForKey(bytes('21'), 10)).toBe((-973932308 & 0x7fffffff) % 10);
    expect(partitionForKey(bytes('foobar'), 3)).toBe((-790332482 & 0x7fffffff) % 3);
    expect(partitionForKey(bytes('abc'), 7)).toBe(479470107 % 7);
  });

  test('toPositive maps −2³¹ to 0, unlike Math.abs', () => {
    expect(toPositive(-(2 ** 31))).toBe(0);
  });
});

describe('StickyPartitioner', () => {
  test('rotates across requests without an idempotency key', () => {
    const p = new StickyPartitioner();
    const seen = [0, 1, 2, 3, 4, 5].map(() => p.choose('t', 3, undefined));
    expect(new Set(seen).size).toBe(3);
    expect(seen[3]).toBe(seen[0]);
  });

  test('is a function of the idempotency key, so a retry lands on the same partition', () => {
    const a = new StickyPartitioner();
    const b = new StickyPartitioner();
    expect(a.choose('t', 12, 'req-42')).toBe(b.choose('t', 12, 'req-42'));
    expect(a.choose('t', 12, 'req-42')).toBe(partitionForKey(bytes('req-42'), 12));
  });
});
