/**
 * The feature algebra: what every feature kind means, defined once, as pure functions.
 *
 * - A record *contributes* to a feature: `{ t, v }` (its event time and a number or a JSON
 *   text, by kind).
 * - Contributions, in record order, *merge* into one `Merged` update per feature
 *   (`mergeContributions`): counters and sums add, min/max fold, `latest` keeps the newest
 *   by event time, `last_n` the n newest, windows add per window.
 * - A merged update is *applied* to a feature's stored state (`applyMerged`).
 *
 * The law every writer relies on (test/unit/feature-algebra.test.ts):
 *   applyMerged(s, merge(c1..ck)) == applyMerged(...applyMerged(s, merge([c1]))..., merge([ck]))
 * so a batch aggregated in Node leaves Redis exactly as its records applied one at a time
 * (sums of non-integers up to float rounding, see docs/feature-store.md).
 * features-apply.lua applies a `Merged` to an entity hash by these same rules; the
 * integration test test/integration/redis-features-aggregate.test.ts holds it to them.
 */
import type { FeatureDef } from "./layout.ts";
import { bucketStart } from "./layout.ts";

/** One record's contribution to one feature: event time (epoch ms) and value (number, or JSON text for latest/last_n). */
export interface Contribution {
  t: number;
  v: number | string;
}

/** One item of a last_n list: JSON text and event time. */
export interface TimedValue {
  v: string;
  t: number;
}

/** The merged update of one feature for a run of contributions. */
export type Merged =
  | { kind: "counter"; sum: number; t: number }
  | { kind: "latest"; v: string; t: number }
  | { kind: "min" | "max"; v: number; t: number }
  | { kind: "last_n"; items: TimedValue[] }
  | { kind: "window_count" | "window_sum"; buckets: Map<number, number>; t: number; head: number };

/** A feature's stored state, decoded (what a reader sees, plus what ordering needs). */
export interface FeatureState {
  /** counter/min/max: a number; latest: JSON text; last_n: items newest first; window_*: unused. */
  value?: number | string | TimedValue[];
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

/**
 * Merges contributions (in record order) into one update; undefined when there are none.
 * `from`/`to` select a run of the arrays without copying them.
 */
export function mergeContributions(def: FeatureDef, ts: readonly number[], vs: readonly (number | string)[], from = 0, to = ts.length): Merged | undefined {
  if (to <= from) return undefined;
  switch (def.kind) {
    case "counter": {
      let sum = 0;
      let t = -Infinity;
      for (let i = from; i < to; i++) {
        sum += vs[i] as number;
        if (ts[i]! > t) t = ts[i]!;
      }
      return { kind: "counter", sum, t };
    }
    case "latest": {
      let best = from;
      for (let i = from + 1; i < to; i++) if (ts[i]! >= ts[best]!) best = i;
      return { kind: "latest", v: vs[best] as string, t: ts[best]! };
    }
    case "min":
    case "max": {
      let best = from;
      const min = def.kind === "min";
      for (let i = from + 1; i < to; i++) {
        const v = vs[i] as number;
        if (min ? v < (vs[best] as number) : v > (vs[best] as number)) best = i;
      }
      return { kind: def.kind, v: vs[best] as number, t: ts[best]! };
    }
    case "last_n": {
      const items: TimedValue[] = [];
      for (let i = from; i < to; i++) insertNewest(items, { v: vs[i] as string, t: ts[i]! }, def.n!);
      return { kind: "last_n", items };
    }
    case "window_count":
    case "window_sum": {
      const size = def.window_ms!;
      const keep = def.buckets! * size;
      let t = -Infinity;
      for (let i = from; i < to; i++) if (ts[i]! > t) t = ts[i]!;
      const head = bucketStart(t, size);
      const buckets = new Map<number, number>();
      for (let i = from; i < to; i++) {
        const b = bucketStart(ts[i]!, size);
        if (b <= head - keep) continue; // falls out of the kept windows whatever the order
        buckets.set(b, (buckets.get(b) ?? 0) + (vs[i] as number));
      }
      return { kind: def.kind, buckets, t, head };
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
  if (def.kind === "latest") return JSON.parse(state.value as string);
  if (def.kind === "last_n") return (state.value as TimedValue[]).map((x) => JSON.parse(x.v) as unknown);
  return state.value;
}
