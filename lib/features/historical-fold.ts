/**
 * Point-in-time values from one entity's offline log, by the feature algebra
 * (lib/features/algebra.ts) the online store is written with. The log is read in *segments*:
 * for an entity asked at times t1 < t2 < …, segment k holds its contributions with event time
 * in (t(k-1), tk], merged per feature by PostgreSQL (historical-sql.ts) as the algebra merges a
 * batch: counters and sums add, min/max keep the extreme, latest the newest, last_n the n
 * newest, windows the sum in the window holding tk (no earlier window can matter to a later
 * ask). Segments are then accumulated in time order exactly as the sink accumulates records,
 * and read as a reader reads the state (`readValue`). So a feature "as of t" is what the
 * online store holds once every record with event time ≤ t, and none later, has been applied
 * (docs/feature-store.md, "Point-in-time semantics").
 */
import { accumulator, readValue } from "./algebra.ts";
import type { Accumulator, FeatureState, Merged } from "./algebra.ts";
import type { FeatureDef, ViewDef } from "./layout.ts";

/**
 * One segment of an entity's log, merged per feature: its closing time and, per feature name,
 * the merged value (null: the segment does not touch the feature). latest: `[the newest value]`
 * (wrapped, as a JSON null is a value a record can write); last_n: the segment's n newest
 * values, newest first.
 */
export interface Segment {
  t: number;
  c: Record<string, unknown>;
  /**
   * A snapshot the segment starts from (lib/features/snapshots.ts): its time and, in the form of a
   * segment's `c`, everything up to it of the features without windows. Folding restarts from
   * it as from a first segment ending there; the segment then holds the rows after the snapshot,
   * and for windows every row of the window holding t.
   */
  base?: { t: number; c: Record<string, unknown> };
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

/** A tumbling-window feature: read from the window holding t, never kept in a snapshot. */
export const windowed = (def: FeatureDef): boolean => def.kind === "window_count" || def.kind === "window_sum";

/**
 * What a snapshot keeps: everything folded so far of the features without windows, in the form
 * of one segment's merged values (counters the sum, min/max the extreme, latest `[the value]`,
 * last_n the values newest first), as JSON text; a feature with nothing yet is left out.
 */
function stateText(plan: FoldPlan, merged: readonly (Merged | undefined)[]): string {
  const out: Record<string, unknown> = {};
  plan.defs.forEach((def, f) => {
    const m = merged[f];
    if (m === undefined || windowed(def)) return;
    if (m.kind === "counter") out[plan.names[f]!] = m.sum;
    else if (m.kind === "latest") out[plan.names[f]!] = [m.v];
    else if (m.kind === "last_n") out[plan.names[f]!] = m.items.map((i) => i.v);
    else if (m.kind === "min" || m.kind === "max") out[plan.names[f]!] = m.v;
  });
  return JSON.stringify(out);
}

/**
 * The values of the plan's features as of each segment's closing time, from one entity's
 * segments in time order: contributions with event time ≤ that time count, nothing later does.
 * `state`, when given, receives after each segment the merged updates a snapshot at its time keeps.
 */
export function foldSegments(plan: FoldPlan, segments: readonly Segment[], state?: (k: number, text: string) => void): unknown[][] {
  let merged: (Merged | undefined)[] = plan.defs.map(() => undefined);
  const add = (t: number, c: Record<string, unknown>) => {
    for (let f = 0; f < plan.names.length; f++) {
      const v = c[plan.names[f]!];
      if (v === undefined || v === null) continue;
      const accumulate = plan.accumulate[f]!;
      const kind = plan.defs[f]!.kind;
      if (kind === "latest") merged[f] = accumulate(merged[f], t, (v as unknown[])[0]);
      else if (kind !== "last_n") merged[f] = accumulate(merged[f], t, v);
      // oldest first at one time: the algebra puts the later of a tie first, so they end newest first
      else for (let i = (v as unknown[]).length - 1; i >= 0; i--) merged[f] = accumulate(merged[f], t, (v as unknown[])[i]);
    }
  };
  return segments.map((seg, k) => {
    if (seg.base) {
      merged = plan.defs.map(() => undefined);
      add(seg.base.t, seg.base.c);
    }
    add(seg.t, seg.c);
    if (state) state(k, stateText(plan, merged));
    return plan.defs.map((def, f) => readValue(def, stateOf(merged[f]), seg.t));
  });
}

/** A row of segmentsSql's answer: entity, closing time, the snapshot it starts from (base, state) if any, f0, f1, … */
export interface SegmentRow {
  entity: string;
  t: number;
  base: number | null;
  state: Record<string, unknown> | null;
  [f: string]: unknown;
}

/** Segment rows per entity, each entity's in time order. */
export function segmentsByEntity(rows: readonly SegmentRow[]): Map<string, SegmentRow[]> {
  const byEntity = new Map<string, SegmentRow[]>();
  for (const r of rows) {
    const list = byEntity.get(r.entity);
    if (list) list.push(r);
    else byEntity.set(r.entity, [r]);
  }
  for (const list of byEntity.values()) list.sort((a, b) => a.t - b.t);
  return byEntity;
}

/** One entity's segment rows as the fold takes them (f<k>: the k-th of `names`). */
export function toSegments(names: readonly string[], list: readonly SegmentRow[]): Segment[] {
  return list.map((r) => ({ t: r.t, c: Object.fromEntries(names.map((n, f) => [n, r[`f${f}`]])), base: r.base === null ? undefined : { t: r.base, c: r.state ?? {} } }));
}
