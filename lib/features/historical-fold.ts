/**
 * Point-in-time values from one entity's offline log, by the feature algebra
 * (lib/features/algebra.ts) the online store is written with: the log's contributions, in
 * event-time order (ties in source position order), are accumulated exactly as the sink
 * accumulates a batch, and read as a reader reads the state (`readValue`). So a feature "as
 * of t" is what the online store holds once every record with event time ≤ t, and none
 * later, has been applied (docs/feature-store.md, "Point-in-time semantics").
 */
import { accumulator, readValue } from "./algebra.ts";
import type { Accumulator, FeatureState, Merged } from "./algebra.ts";
import type { FeatureDef, ViewDef } from "./layout.ts";

/** One log row as read back: event time and contributions by feature name. */
export interface LogEntry {
  t: number;
  c: Record<string, unknown>;
}

/** What folding needs per requested feature, built once per request. */
export interface FoldPlan {
  readonly names: readonly string[];
  readonly defs: readonly FeatureDef[];
  readonly accumulate: readonly Accumulator[];
}

export function foldPlan(view: ViewDef, names: readonly string[]): FoldPlan {
  const defs = names.map((n) => view.features.find((f) => f.name === n)!);
  return { names, defs, accumulate: defs.map(accumulator) };
}

/** The state a reader would decode from a merged update of everything so far (nothing copied). */
function stateOf(m: Merged | undefined): FeatureState {
  if (m === undefined) return {};
  switch (m.kind) {
    case "counter":
      return { value: m.sum, t: m.t };
    case "last_n":
      return { value: m.items };
    case "window_count":
    case "window_sum":
      return { buckets: m.buckets, head: m.head, t: m.t };
    default:
      return { value: m.v, t: m.t };
  }
}

/**
 * The values of the plan's features for each time in `asks` (any order; the answer is in
 * the same order), from one entity's log sorted by event time then source position.
 * Contributions with event time ≤ the asked time count; nothing later does.
 */
export function foldAsOf(plan: FoldPlan, log: readonly LogEntry[], asks: readonly number[]): unknown[][] {
  const order = asks.map((_, i) => i).sort((a, b) => asks[a]! - asks[b]!);
  const merged: (Merged | undefined)[] = plan.defs.map(() => undefined);
  const out: unknown[][] = new Array<unknown[]>(asks.length);
  let next = 0;
  for (const i of order) {
    const t = asks[i]!;
    for (; next < log.length && log[next]!.t <= t; next++) {
      const e = log[next]!;
      for (let f = 0; f < plan.names.length; f++) {
        const v = e.c[plan.names[f]!];
        if (v !== undefined) merged[f] = plan.accumulate[f]!(merged[f], e.t, v);
      }
    }
    out[i] = plan.defs.map((def, f) => readValue(def, stateOf(merged[f]), t));
  }
  return out;
}
