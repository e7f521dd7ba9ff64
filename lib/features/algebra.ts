/**
 * The feature algebra: what every feature kind means, defined once, as pure functions.
 *
 * - A record *contributes* to a feature: `{ t, v }` (its event time and a number, or for
 *   latest/last_n any value).
 * - Contributions, in record order, *merge* into one `Merged` update per feature
 *   (`accumulate`, one at a time; `mergeContributions` for a run): counters and sums add,
 *   min/max fold, `latest` keeps the newest by event time, `last_n` the n newest, windows add
 *   per window. Two runs' updates *combine* (`combineMerged`) as their concatenation would.
 * - A merged update is *applied* to a feature's stored state (`applyMerged`).
 *
 * The laws every writer relies on (test/unit/feature-algebra.test.ts):
 *   applyMerged(s, merge(c1..ck)) == applyMerged(...applyMerged(s, merge([c1]))..., merge([ck]))
 *   combineMerged(merge(x), merge(y)) == merge(x ++ y)
 * so a batch aggregated in Node leaves Redis exactly as its records applied one at a time
 * (sums of non-integers up to float rounding, see docs/feature-store.md).
 * features-apply.lua applies a `Merged` to an entity hash by these same rules; the
 * integration test test/integration/redis-features-aggregate.test.ts holds it to them.
 */
import type { FeatureDef } from "./layout.ts";
import { bucketStart } from "./layout.ts";

/** One record's contribution to one feature: event time (epoch ms) and value (a number; latest/last_n: any value, opaque here). */
export interface Contribution {
  t: number;
  v: unknown;
}

/** One item of a last_n list: value and event time. */
export interface TimedValue {
  v: unknown;
  t: number;
}

/** The merged update of one feature for a run of contributions. */
export type Merged =
  | { kind: "counter"; sum: number; t: number }
  | { kind: "latest"; v: unknown; t: number }
  | { kind: "min" | "max"; v: number; t: number }
  | { kind: "last_n"; items: TimedValue[] }
  | { kind: "window_count" | "window_sum"; buckets: Map<number, number>; t: number; head: number };

/** A feature's stored state, decoded (what a reader sees, plus what ordering needs). */
export interface FeatureState {
  /** counter/min/max: a number; latest: the value; last_n: items newest first; window_*: unused. */
  value?: unknown;
  /** Event time of the newest event that changed the feature. */
  t?: number;
  /** window_*: start of the newest window written, and the kept windows' sums. */
  head?: number;
  buckets?: Map<number, number>;
}

/** Inserts into a newest-first list: before the first item with an event time ≤ t (a tie goes first: it came later). */
function insertNewest(items: TimedValue[], item: TimedValue, n: number): boolean {
  let pos = items.length;
  for (let j = 0; j < items.length; j++) {
    if (item.t >= items[j]!.t) {
      pos = j;
      break;
    }
  }
  if (pos >= n) return false;
  items.splice(pos, 0, item);
  if (items.length > n) items.length = n;
  return true;
}

/** Adds one contribution (the next in record order) to a merged update, in place; returns the update (a new one when `m` is undefined). */
export type Accumulator = (m: Merged | undefined, t: number, v: unknown) => Merged;

/**
 * The accumulator of one feature: how a record's contribution joins the update of the
 * records before it — the one place where a record meets a feature. Built once per feature
 * (a function per kind, so the hot path does not switch on the kind per record).
 */
export function accumulator(def: FeatureDef): Accumulator {
  switch (def.kind) {
    case "counter":
      return (m, t, v) => {
        if (m === undefined) return { kind: "counter", sum: v as number, t };
        const c = m as { sum: number; t: number };
        c.sum += v as number;
        if (t > c.t) c.t = t;
        return m;
      };
    case "latest":
      return (m, t, v) => {
        if (m === undefined) return { kind: "latest", v, t };
        const l = m as { v: unknown; t: number };
        if (t >= l.t) {
          l.v = v;
          l.t = t;
        }
        return m;
      };
    case "min":
    case "max": {
      const kind = def.kind;
      const min = kind === "min";
      return (m, t, v) => {
        if (m === undefined) return { kind, v: v as number, t };
        const e = m as { v: number; t: number };
        if (min ? (v as number) < e.v : (v as number) > e.v) {
          e.v = v as number;
          e.t = t;
        }
        return m;
      };
    }
    case "last_n": {
      const n = def.n!;
      return (m, t, v) => {
        const l = (m ?? { kind: "last_n", items: [] }) as { kind: "last_n"; items: TimedValue[] };
        insertNewest(l.items, { v, t }, n);
        return l;
      };
    }
    case "window_count":
    case "window_sum": {
      const kind = def.kind;
      const size = def.window_ms!;
      return (m, t, v) => {
        const w = (m ?? { kind, buckets: new Map<number, number>(), t: -Infinity, head: -Infinity }) as { buckets: Map<number, number>; t: number; head: number } & Merged;
        const b = bucketStart(t, size);
        w.buckets.set(b, (w.buckets.get(b) ?? 0) + (v as number));
        if (t > w.t) {
          w.t = t;
          w.head = b;
        }
        return w;
      };
    }
  }
}

/** `accumulator(def)` applied once (tests and one-off uses; hot paths keep the accumulator). */
export function accumulate(def: FeatureDef, m: Merged | undefined, t: number, v: unknown): Merged {
  return accumulator(def)(m, t, v);
}

/** Drops what cannot matter whatever the stored state: windows older than the kept ones behind the update's newest. */
export function finishMerge(def: FeatureDef, m: Merged): Merged {
  if (m.kind === "window_count" || m.kind === "window_sum") {
    const oldest = m.head - def.buckets! * def.window_ms!;
    for (const b of m.buckets.keys()) if (b <= oldest) m.buckets.delete(b);
  }
  return m;
}

/**
 * Merges contributions (in record order) into one update; undefined when there are none.
 * `from`/`to` select a run of the arrays; `stride`/`offset` read the values of one feature out
 * of an array that interleaves several (value i at vs[i * stride + offset]; undefined: none).
 */
export function mergeContributions(def: FeatureDef, ts: readonly number[], vs: readonly unknown[], from = 0, to = ts.length, stride = 1, offset = 0): Merged | undefined {
  const add = accumulator(def);
  let m: Merged | undefined;
  for (let i = from; i < to; i++) {
    const v = vs[i * stride + offset];
    if (v !== undefined) m = add(m, ts[i]!, v);
  }
  return m && finishMerge(def, m);
}

/**
 * Combines the updates of two runs, `a` before `b`, into the update of the whole run:
 * combineMerged(merge(x), merge(y)) == merge(x ++ y). Neither input is changed.
 */
export function combineMerged(def: FeatureDef, a: Merged, b: Merged): Merged {
  switch (a.kind) {
    case "counter": {
      const y = b as typeof a;
      return { kind: "counter", sum: a.sum + y.sum, t: Math.max(a.t, y.t) };
    }
    case "latest":
      return (b as typeof a).t >= a.t ? b : a;
    case "min":
    case "max": {
      const y = b as typeof a;
      return (a.kind === "min" ? y.v < a.v : y.v > a.v) ? b : a;
    }
    case "last_n": {
      const items = [...a.items];
      const later = (b as typeof a).items;
      for (let i = later.length - 1; i >= 0; i--) insertNewest(items, later[i]!, def.n!);
      return { kind: "last_n", items };
    }
    case "window_count":
    case "window_sum": {
      const y = b as typeof a;
      const buckets = new Map(a.buckets);
      for (const [k, v] of y.buckets) buckets.set(k, (buckets.get(k) ?? 0) + v);
      const newer = y.t > a.t ? y : a;
      return finishMerge(def, { kind: a.kind, buckets, t: newer.t, head: newer.head });
    }
  }
}

/** Applies a merged update to a feature's state; returns the new state (the input is not changed). */
export function applyMerged(def: FeatureDef, state: FeatureState, m: Merged): FeatureState {
  switch (m.kind) {
    case "counter":
      return { value: ((state.value as number | undefined) ?? 0) + m.sum, t: state.t === undefined || m.t > state.t ? m.t : state.t };
    case "latest":
      return state.t === undefined || m.t >= state.t ? { value: m.v, t: m.t } : state;
    case "min":
    case "max": {
      const old = state.value as number | undefined;
      const better = old === undefined || (m.kind === "min" ? m.v < old : m.v > old);
      return better ? { value: m.v, t: m.t } : state;
    }
    case "last_n": {
      const items = [...((state.value as TimedValue[] | undefined) ?? [])];
      let changed = false;
      // the merged items are newest first; inserting oldest first keeps ties in arrival order
      for (let i = m.items.length - 1; i >= 0; i--) changed = insertNewest(items, m.items[i]!, def.n!) || changed;
      return changed ? { value: items, t: items[0]!.t } : state;
    }
    case "window_count":
    case "window_sum": {
      const size = def.window_ms!;
      const keep = def.buckets! * size;
      const h0 = state.head;
      if (h0 !== undefined && m.head <= h0 - keep) return state; // every event is older than the kept windows
      const head = h0 === undefined || m.head > h0 ? m.head : h0;
      const buckets = new Map<number, number>();
      for (const [b, v] of state.buckets ?? []) if (b > head - keep) buckets.set(b, v);
      for (const [b, v] of m.buckets) if (b > head - keep) buckets.set(b, (buckets.get(b) ?? 0) + v);
      return { head, buckets, t: state.t === undefined || m.t > state.t ? m.t : state.t };
    }
  }
}

/** The value a reader sees for a state, as of `asOf` (windows: the window holding asOf); null when never written. */
export function readValue(def: FeatureDef, state: FeatureState, asOf: number): unknown {
  if (def.kind === "window_count" || def.kind === "window_sum") return state.buckets?.get(bucketStart(asOf, def.window_ms!)) ?? 0;
  if (state.value === undefined) return null;
  if (def.kind === "last_n") return (state.value as TimedValue[]).map((x) => x.v);
  return state.value;
}
