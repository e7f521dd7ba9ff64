import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyMerged, combineMerged, mergeContributions, readValue } from "../../lib/features/algebra.ts";
import type { FeatureState } from "../../lib/features/algebra.ts";
import type { FeatureDef } from "../../lib/features/layout.ts";

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);

const DEFS: FeatureDef[] = [
  { name: "c", kind: "counter" },
  { name: "l", kind: "latest" },
  { name: "lo", kind: "min" },
  { name: "hi", kind: "max" },
  { name: "r", kind: "last_n", n: 3 },
  { name: "w", kind: "window_sum", window_ms: HOUR, buckets: 2 },
  { name: "wc", kind: "window_count", window_ms: HOUR, buckets: 3 },
];

/** Event times over 6 hours in 10-minute steps: many ties, so order and window boundaries matter. */
const time = fc.integer({ min: -18, max: 18 }).map((m) => T0 + m * 10 * 60_000);

function contributions(def: FeatureDef) {
  const value =
    def.kind === "latest" || def.kind === "last_n"
      ? fc.constantFrom<unknown>("a", "b", "c", 1, 2, true, { x: 1 }, null)
      : def.kind === "window_count"
        ? fc.constant(1)
        : fc.integer({ min: -5, max: 9 }).filter((n) => def.kind !== "counter" || n !== 0);
  return fc.array(fc.record({ t: time, v: value as fc.Arbitrary<unknown> }), { minLength: 1, maxLength: 40 });
}

/** Applies runs of contributions (each merged first) to a state. */
function applyRuns(def: FeatureDef, start: FeatureState, cs: { t: number; v: unknown }[], cuts: number[]): FeatureState {
  const ts = cs.map((c) => c.t);
  const vs = cs.map((c) => c.v);
  const bounds = [...new Set([0, ...cuts.map((c) => c % (cs.length + 1)), cs.length])].sort((a, b) => a - b);
  let s = start;
  for (let i = 0; i + 1 < bounds.length; i++) {
    const m = mergeContributions(def, ts, vs, bounds[i], bounds[i + 1]);
    if (m) s = applyMerged(def, s, m);
  }
  return s;
}

function oneByOne(def: FeatureDef, start: FeatureState, cs: { t: number; v: unknown }[]): FeatureState {
  return applyRuns(
    def,
    start,
    cs,
    cs.map((_, i) => i),
  );
}

describe("feature algebra: merged == one record at a time", () => {
  for (const def of DEFS) {
    it(`${def.kind}: any split into runs, from any earlier state`, () => {
      fc.assert(
        fc.property(contributions(def), contributions(def), fc.array(fc.nat(), { maxLength: 6 }), (before, cs, cuts) => {
          const start = oneByOne(def, {}, before);
          expect(applyRuns(def, start, cs, cuts)).toEqual(oneByOne(def, start, cs));
        }),
        { numRuns: 300 },
      );
    });
  }

  for (const def of DEFS) {
    it(`${def.kind}: combining two runs' updates == merging the runs together`, () => {
      fc.assert(
        fc.property(contributions(def), contributions(def), (x, y) => {
          const merge = (cs: { t: number; v: unknown }[]) => mergeContributions(def, cs.map((c) => c.t), cs.map((c) => c.v))!;
          expect(combineMerged(def, merge(x), merge(y))).toEqual(merge([...x, ...y]));
        }),
        { numRuns: 300 },
      );
    });
  }

  it("counter sums of non-integers differ from one-by-one only by float rounding", () => {
    const def: FeatureDef = { name: "s", kind: "counter" };
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((x) => x !== 0), { minLength: 1, maxLength: 50 }), (xs) => {
        const cs = xs.map((v, i) => ({ t: T0 + i, v }));
        const merged = applyRuns(def, {}, cs, []).value as number;
        const single = oneByOne(def, {}, cs).value as number;
        const scale = xs.reduce((a, x) => a + Math.abs(x), 0);
        expect(Math.abs(merged - single)).toBeLessThanOrEqual(scale * 1e-12);
      }),
    );
  });
});

describe("feature algebra: what a reader sees", () => {
  it("latest keeps the newest by event time; a tie goes to the later record", () => {
    const def: FeatureDef = { name: "l", kind: "latest" };
    const m = mergeContributions(def, [T0 + 5, T0 + 9, T0 + 9, T0 + 1], ["a", "b", "c", "d"])!;
    expect(readValue(def, applyMerged(def, {}, m), T0)).toBe("c");
  });

  it("a window reads the sum of the window holding the read time, 0 when it has none", () => {
    const def: FeatureDef = { name: "w", kind: "window_sum", window_ms: HOUR, buckets: 2 };
    const m = mergeContributions(def, [T0 - 1, T0, T0 + HOUR - 1, T0 + HOUR], [1, 2, 4, 8])!;
    const s = applyMerged(def, {}, m);
    expect(readValue(def, s, T0 + 10)).toBe(6);
    expect(readValue(def, s, T0 + HOUR)).toBe(8);
    expect(readValue(def, s, T0 - 1)).toBe(0); // fell out of the 2 kept windows
  });

  it("last_n keeps the n newest by event time, newest first", () => {
    const def: FeatureDef = { name: "r", kind: "last_n", n: 2 };
    const m = mergeContributions(def, [T0 + 3, T0 + 1, T0 + 2], ["x", "y", "z"])!;
    expect(readValue(def, applyMerged(def, {}, m), T0)).toEqual(["x", "z"]);
  });
});
