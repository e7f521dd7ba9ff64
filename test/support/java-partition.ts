/**
 * The partition the Java client (and kafkajs's default partitioner) picks for a key: murmur2,
 * positive, modulo. Written from the algorithm, apart from the writers' own, as the tests' oracle.
 */
export function javaPartition(key: string, partitions: number): number {
  const data = Buffer.from(key);
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ data.length) | 0;
  let i = 0;
  for (; i + 4 <= data.length; i += 4) {
    let k = data.readInt32LE(i);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = data.length - i;
  if (rest === 3) h ^= (data[i + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[i + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[i]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return (h & 0x7fffffff) % partitions;
}
