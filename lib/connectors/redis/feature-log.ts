/**
 * The feature sink's Node side, without Redis: a view's features compiled into per-record
 * contributions, a batch's contributions merged per (view, entity, source partition) by the
 * feature algebra (lib/features/algebra.ts), and each entity's update encoded for
 * features-apply.lua. Records are not kept.
 *
 * Two ways to take a batch:
 * - folded (the default): each record is folded into its entity's running update at once,
 *   nothing per record is kept but the update's first and last position;
 * - exact: each entity keeps its records' contributions, so an update can be rebuilt from
 *   any record on — what a replay that overlaps an earlier write in part needs (the sink
 *   asks the runner for the batch again in this mode when Redis reports such an overlap).
 */
import { compilePredicate } from "../../topology/predicate.ts";
import { compileGetter, compileValue } from "../../topology/template.ts";
import type { RecordOrigin, StreamRecord } from "../../runtime/contracts.ts";
import { accumulator, combineMerged, finishMerge, mergeContributions } from "../../features/algebra.ts";
import type { Accumulator, Merged } from "../../features/algebra.ts";
import { keys, parseDuration } from "../../features/layout.ts";
import type { FeatureDef, ViewDef } from "../../features/layout.ts";
import type { FeatureConfig, OfflineConfig, ViewConfig } from "./config.ts";
import { compileEventTime, compileKey } from "./keys.ts";
import type { KeyFn } from "./keys.ts";

/** A record's contribution value to one feature; undefined leaves the feature alone; an Error rejects the record. */
type ContributeFn = (r: StreamRecord) => unknown;

export interface CompiledView {
  def: ViewDef;
  key: KeyFn;
  keySource: string;
  eventTime: (r: StreamRecord) => number;
  contribute: ContributeFn[];
  accumulate: Accumulator[];
  /** Where the offline feature log of the view is kept; undefined: online only. */
  offline?: OfflineConfig;
  /** Where the view's data goes: the view name (version 1), or the store of the version the sink found it is (lib/features/versions.ts). */
  store: string;
}

/**
 * One record's contributions to one view, as the offline feature log keeps them (only for
 * views with `offline`): its entity, event time, source position and one value per feature
 * (undefined: the record leaves the feature alone).
 */
export interface OfflineRow {
  view: CompiledView;
  entity: string;
  t: number;
  cluster: string;
  topic: string;
  partition: number;
  offset: string;
  seq: number;
  values: unknown[];
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

function compileFeature(f: FeatureConfig): { def: FeatureDef; contribute: ContributeFn } {
  const when = f.when ? compilePredicate(f.when) : undefined;
  const get = f.field ? compileGetter(f.field) : () => undefined;
  const name = f.name;
  switch (f.kind) {
    case "latest":
    case "last_n":
      return { def: { name, kind: f.kind, ...(f.n ? { n: f.n } : {}) }, contribute: when ? (r) => (when(r) ? get(r) : undefined) : get };
    case "counter": {
      const by = compileValue(f.by ?? 1);
      const contribute: ContributeFn = (r) => {
        if (when && !when(r)) return undefined;
        const raw = by(r);
        const n = typeof raw === "number" && Number.isFinite(raw) ? raw : toNumber(raw);
        if (n === undefined) return new Error(`counter ${name}: \`by\` ${String(f.by)} gave ${JSON.stringify(raw)}, expected a number`);
        return n === 0 ? undefined : n;
      };
      return { def: { name, kind: "counter" }, contribute };
    }
    case "min":
    case "max":
      return { def: { name, kind: f.kind }, contribute: (r) => (when && !when(r) ? undefined : toNumber(get(r))) };
    case "window_count":
    case "window_sum": {
      const counting = f.kind === "window_count";
      const contribute: ContributeFn = (r) => (when && !when(r) ? undefined : counting ? 1 : toNumber(get(r)));
      return { def: { name, kind: f.kind, window_ms: parseDuration(f.window!), buckets: f.buckets }, contribute };
    }
  }
}

export function compileView(v: ViewConfig): CompiledView {
  const compiled = v.features.map(compileFeature);
  // the registry names the offline log's table (never its connection) so readers find it
  const offline = v.offline ? { offline: { schema: v.offline.schema, table: v.offline.table } } : {};
  const def: ViewDef = { name: v.name, entity: v.entity, ...(v.ttl_seconds ? { ttl_seconds: v.ttl_seconds } : {}), features: compiled.map((c) => c.def), ...offline };
  return {
    def,
    key: compileKey(v.key),
    keySource: v.key,
    store: v.name,
    eventTime: compileEventTime(v.event_time),
    contribute: compiled.map((c) => c.contribute),
    accumulate: compiled.map((c) => accumulator(c.def)),
    ...(v.offline ? { offline: v.offline } : {}),
  };
}

/** One entity's part of a batch, from one source partition: its update and the (offset, seq) range it spans. */
export interface EntityPart {
  /** The batch this part belongs to (whose flush reports its failures). */
  readonly owner: object;
  readonly view: CompiledView;
  /** The entity hash key and the watermark field of the source partition. */
  readonly key: string;
  readonly watermark: string;
  /** Records taken. */
  readonly count: number;
  /** The merged update of every feature (undefined: the records leave it alone). */
  merged(): (Merged | undefined)[];
  /** Watermark field and position range, as features-apply.lua reads them. */
  position(args: Array<string | number>): void;
}

/** Folded: a running update per feature; no record kept. */
class FoldedEntity implements EntityPart {
  readonly owner: object;
  readonly view: CompiledView;
  readonly key: string;
  readonly watermark: string;
  count = 0;
  private first = "";
  private firstSeq = 0;
  private last = "";
  private lastSeq = 0;
  private readonly updates: (Merged | undefined)[];

  constructor(owner: object, view: CompiledView, key: string, watermark: string) {
    this.owner = owner;
    this.view = view;
    this.key = key;
    this.watermark = watermark;
    this.updates = new Array<Merged | undefined>(view.def.features.length).fill(undefined);
  }

  /** Takes a record's contributions; returns its seq (records of one offset for this entity are numbered from 0). */
  add(origin: RecordOrigin, t: number, values: readonly unknown[]): number {
    // records one offset produced (a step fanned out) are adjacent: number them per entity.
    // Only the offset is kept: an origin object would keep its whole fetched batch alive.
    const seq = this.count > 0 && this.last === origin.offset ? this.lastSeq + 1 : 0;
    if (this.count++ === 0) {
      this.first = origin.offset;
      this.firstSeq = seq;
    }
    this.last = origin.offset;
    this.lastSeq = seq;
    const add = this.view.accumulate;
    const updates = this.updates;
    for (let f = 0; f < values.length; f++) {
      const v = values[f];
      if (v !== undefined) updates[f] = add[f]!(updates[f], t, v);
    }
    return seq;
  }

  merged(): (Merged | undefined)[] {
    const features = this.view.def.features;
    return this.updates.map((m, f) => m && finishMerge(features[f]!, m));
  }

  position(args: Array<string | number>): void {
    args.push(this.watermark, this.first, this.firstSeq, this.last, this.lastSeq);
  }
}

/** Exact: every record's contributions (features interleaved), so the update can start at any record. */
export class ExactEntity implements EntityPart {
  readonly owner: object;
  readonly view: CompiledView;
  readonly key: string;
  readonly watermark: string;
  readonly origins: RecordOrigin[] = [];
  private readonly seqs: number[] = [];
  private readonly ts: number[] = [];
  private readonly vs: unknown[] = [];
  /** The first record the update covers (after a partial replay: the first after the stored watermark). */
  from = 0;

  constructor(owner: object, view: CompiledView, key: string, watermark: string) {
    this.owner = owner;
    this.view = view;
    this.key = key;
    this.watermark = watermark;
  }

  get count(): number {
    return this.origins.length - this.from;
  }

  add(origin: RecordOrigin, t: number, values: readonly unknown[]): number {
    const i = this.origins.length;
    const seq = i > 0 && this.origins[i - 1] === origin ? this.seqs[i - 1]! + 1 : 0;
    this.seqs.push(seq);
    this.origins.push(origin);
    this.ts.push(t);
    for (const v of values) this.vs.push(v);
    return seq;
  }

  /** Moves the update's start past position (offset, seq); false when no record is left. */
  skipTo(offset: number, seq: number): boolean {
    let i = this.from;
    while (i < this.origins.length) {
      const o = Number(this.origins[i]!.offset);
      if (o > offset || (o === offset && this.seqs[i]! > seq)) break;
      i++;
    }
    this.from = i;
    return i < this.origins.length;
  }

  merged(): (Merged | undefined)[] {
    const features = this.view.def.features;
    return features.map((def, f) => mergeContributions(def, this.ts, this.vs, this.from, this.ts.length, features.length, f));
  }

  position(args: Array<string | number>): void {
    const last = this.origins.length - 1;
    args.push(this.watermark, this.origins[this.from]!.offset, this.seqs[this.from]!, this.origins[last]!.offset, this.seqs[last]!);
  }
}

/** An entity update as features-apply.lua takes it, and the newest event time it carries. */
export interface EncodedUpdate {
  args: Array<string | number>;
  /**
   * The newest event time (epoch ms) of the merged update's features (for min/max: the
   * time of the extreme value) — what freshness and apply lag are measured from.
   */
  newest: number;
}

/** The newest event time one feature's merged update carries. */
function newestOf(m: Merged): number {
  return m.kind === "last_n" ? (m.items[0]?.t ?? -Infinity) : m.t;
}

/**
 * One features-apply.lua group for one entity's parts (one per partition, taken in the given
 * order: one interleaving of partitions that have no order between them).
 */
export function encodeUpdate(parts: readonly EntityPart[]): EncodedUpdate {
  const args: Array<string | number> = [parts.length];
  for (const p of parts) p.position(args);
  const features = parts[0]!.view.def.features;
  let merged = parts[0]!.merged();
  for (let i = 1; i < parts.length; i++) {
    const next = parts[i]!.merged();
    merged = merged.map((m, f) => (m === undefined ? next[f] : next[f] === undefined ? m : combineMerged(features[f]!, m, next[f]!)));
  }
  let newest = -Infinity;
  for (const m of merged) {
    if (m) {
      encodeMerged(args, m);
      const t = newestOf(m);
      if (t > newest) newest = t;
    } else args.push("");
  }
  return { args, newest };
}

/** The features-apply.lua arguments that describe a view, before its entities' groups. */
export function viewHeader(def: ViewDef): Array<string | number> {
  const args: Array<string | number> = [def.features.length, def.ttl_seconds ?? 0];
  for (const f of def.features) {
    if (f.kind === "last_n") args.push(f.kind, f.name, f.n!, "");
    else if (f.kind === "window_count" || f.kind === "window_sum") args.push(f.kind, f.name, f.window_ms!, f.buckets!);
    else args.push(f.kind, f.name, "", "");
  }
  return args;
}

function encodeMerged(args: Array<string | number>, m: Merged): void {
  switch (m.kind) {
    case "counter":
      args.push(String(m.sum), m.t);
      return;
    case "latest":
      args.push(JSON.stringify(m.v), m.t);
      return;
    case "min":
    case "max":
      args.push(String(m.v), m.t);
      return;
    case "last_n":
      args.push(m.items.length);
      for (const it of m.items) args.push(JSON.stringify(it.v), it.t);
      return;
    case "window_count":
    case "window_sum":
      args.push(m.t, m.head, m.buckets.size);
      for (const [start, amount] of m.buckets) args.push(start, String(amount));
      return;
  }
}

/**
 * A batch's entity parts, by view and entity. `add` takes records slice by slice; a record is
 * checked against every view before any of its contributions is taken, so a record
 * rejected by one view changes no other.
 */
export class BatchLog {
  readonly exact: boolean;
  /** Per record and view with `offline`, its row of the offline feature log (empty when no view has one). */
  readonly offline: OfflineRow[] = [];
  private readonly views: readonly CompiledView[];
  private readonly prefix: string;
  private readonly byView: Map<string, FoldedEntity | ExactEntity>[];
  private readonly scratch: { id: string; t: number; any: boolean; values: unknown[] }[];
  private wmOrigin: RecordOrigin | undefined;
  private wmField = "";
  /** Entity keys in their Redis Cluster form (the id a hash tag). */
  private readonly cluster: boolean;

  constructor(views: readonly CompiledView[], prefix: string, exact: boolean, cluster = false) {
    this.views = views;
    this.prefix = prefix;
    this.exact = exact;
    this.cluster = cluster;
    this.byView = views.map(() => new Map());
    this.scratch = views.map((v) => ({ id: "", t: 0, any: false, values: new Array<unknown>(v.contribute.length).fill(undefined) }));
  }

  /** Takes a record; returns why it cannot be written, or undefined. Tombstones carry no features. */
  add(r: StreamRecord): string | undefined {
    if (r.value === null || r.value === undefined) return undefined;
    const views = this.views;
    for (let v = 0; v < views.length; v++) {
      const view = views[v]!;
      const s = this.scratch[v]!;
      const id = view.key(r);
      if (id === undefined) return `view ${view.def.name}: the entity key ${view.keySource} is missing from the record`;
      const t = view.eventTime(r);
      if (!Number.isFinite(t)) return `view ${view.def.name}: the event time is missing or unreadable`;
      s.id = id;
      s.t = Math.trunc(t);
      s.any = false;
      const contribute = view.contribute;
      for (let f = 0; f < contribute.length; f++) {
        const c = contribute[f]!(r);
        if (c instanceof Error) return `view ${view.def.name}: ${c.message}`;
        if (c !== undefined) s.any = true;
        s.values[f] = c;
      }
    }
    const wm = this.watermarkOf(r.origin);
    for (let v = 0; v < views.length; v++) {
      const s = this.scratch[v]!;
      if (!s.any) continue;
      const parts = this.byView[v]!;
      const mapKey = wm === this.wmField ? s.id : `${s.id}\u0000${wm}`;
      let part = parts.get(mapKey);
      if (part === undefined) {
        const key = keys.entity(this.prefix, views[v]!.store, s.id, this.cluster);
        part = this.exact ? new ExactEntity(this, views[v]!, key, wm) : new FoldedEntity(this, views[v]!, key, wm);
        parts.set(mapKey, part);
      }
      const seq = part.add(r.origin, s.t, s.values);
      if (views[v]!.offline) {
        const o = r.origin;
        this.offline.push({ view: views[v]!, entity: s.id, t: s.t, cluster: o.cluster, topic: o.topic, partition: o.partition, offset: o.offset, seq, values: s.values.slice() });
      }
    }
    return undefined;
  }

  private watermarkOf(o: RecordOrigin): string {
    const w = this.wmOrigin;
    if (w !== undefined && (w === o || (w.partition === o.partition && w.topic === o.topic && w.cluster === o.cluster))) return this.wmField;
    const field = `@o:${o.cluster}:${o.topic}:${o.partition}`;
    if (w === undefined) {
      this.wmOrigin = o;
      this.wmField = field;
    }
    return field;
  }

  /** Every entity part of the batch. */
  entities(): (FoldedEntity | ExactEntity)[] {
    const out: (FoldedEntity | ExactEntity)[] = [];
    for (const m of this.byView) for (const part of m.values()) out.push(part);
    return out;
  }
}
