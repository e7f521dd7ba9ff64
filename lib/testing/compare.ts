/**
 * Expected against actual, path by path: what a failing test case prints. Exact JSON
 * equality (object key order aside); each difference names its path and both sides.
 */

export interface Difference {
  /** Where, e.g. ["sinks", "user-cache", 0, "value", "email"]. */
  parts: (string | number)[];
  expected: unknown;
  actual: unknown;
}

/** Marks a side that has nothing at a path (a missing key or array item). */
export const ABSENT: unique symbol = Symbol("absent");

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Every difference between two JSON values, in document order. */
export function differences(expected: unknown, actual: unknown, at: (string | number)[] = []): Difference[] {
  if (Array.isArray(expected) && Array.isArray(actual)) {
    const out: Difference[] = [];
    for (let i = 0; i < Math.max(expected.length, actual.length); i++) {
      out.push(...differences(i < expected.length ? expected[i] : ABSENT, i < actual.length ? actual[i] : ABSENT, [...at, i]));
    }
    return out;
  }
  if (isObject(expected) && isObject(actual)) {
    const out: Difference[] = [];
    const keys = [...Object.keys(expected), ...Object.keys(actual).filter((k) => !(k in expected))];
    for (const k of keys) out.push(...differences(k in expected ? expected[k] : ABSENT, k in actual ? actual[k] : ABSENT, [...at, k]));
    return out;
  }
  if (Object.is(expected, actual) || (typeof expected === "number" && expected === actual)) return [];
  return [{ parts: at, expected, actual }];
}

/** One side of a difference as the report prints it. */
export function show(v: unknown): string {
  if (v === ABSENT) return "(nothing)";
  return JSON.stringify(v) ?? String(v);
}
