/**
 * The CPU-bound transform of the scale-out benchmark (test/bench/scale.bench.ts): a score from
 * ROUNDS rounds of FNV-1a over the record's id, about 0.2 ms of one core per record — work
 * that only more cores make faster, so the measured speed-up is the fleet's, not I/O's.
 */
const ROUNDS = Number(process.env.SCALE_BENCH_ROUNDS ?? 800);

export function score(value: { id: number; text: string }): unknown {
  let h = 0x811c9dc5;
  for (let r = 0; r < ROUNDS; r++) {
    const s = value.text;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    h ^= r;
  }
  return { id: value.id, score: h >>> 0 };
}
