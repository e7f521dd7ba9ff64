import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFeatures, fieldsToRead } from "../../lib/features/layout.ts";
import type { FeatureDef, ViewDef } from "../../lib/features/layout.ts";
import { readPlan } from "../../lib/features/read-plan.ts";

const feature = (i: number) =>
  fc.oneof(
    fc.constantFrom<FeatureDef["kind"]>("latest", "counter", "min", "max", "last_n").map((kind) => ({ name: `f${i}`, kind })),
    fc.record({ kind: fc.constantFrom<FeatureDef["kind"]>("window_count", "window_sum"), window_ms: fc.constantFrom(1000, 60_000, 3_600_000) }).map((w) => ({ name: `f${i}`, ...w })),
  );
const view = fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => feature(i)))).map((features): ViewDef => ({ name: "v", entity: "e", features }));
// what an entity hash may hold: JSON text, bare strings another writer left, numbers, nothing
const stored = fc.oneof(fc.constant(null), fc.json(), fc.string(), fc.integer().map(String), fc.double().map(String), fc.constantFrom(" 3 ", "\u2028", "[1, 2]", "1e400", "-0", "1.0"));

describe("the feature server's read plan", () => {
  it("writes the JSON of what decodeFeatures returns, for every reply", () => {
    fc.assert(
      fc.property(view, fc.integer({ min: 0, max: 2 ** 42 }), fc.string(), fc.array(stored, { minLength: 12, maxLength: 12 }), fc.array(fc.option(fc.integer({ min: 0, max: 2 ** 42 }).map(String)), { minLength: 6, maxLength: 6 }), (v, asOf, id, values, times) => {
        const names = v.features.map((f) => f.name);
        const plan = readPlan(v, names);
        expect(plan.fields(asOf)).toEqual(fieldsToRead(v, names, asOf));
        const reply = names.flatMap((_, i) => [values[i]!, times[i] ?? null]);
        const expected = { id, found: reply.some((x) => x !== null), features: decodeFeatures(v, names, reply, asOf) };
        expect(JSON.parse(plan.entityJson(id, reply, asOf))).toEqual(JSON.parse(JSON.stringify(expected)));
      }),
      { numRuns: 500 },
    );
  });

  it("re-reads the window fields when a window rolls over", () => {
    const v: ViewDef = { name: "v", entity: "e", features: [{ name: "n", kind: "window_count", window_ms: 1000 }] };
    const plan = readPlan(v, ["n"]);
    expect(plan.fields(1500)).toEqual(["n|1000", "n@t"]);
    expect(plan.fields(1999)).toEqual(["n|1000", "n@t"]);
    expect(plan.fields(2000)).toEqual(["n|2000", "n@t"]);
  });
});
