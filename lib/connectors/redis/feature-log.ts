/**
 * The feature sink's Node side, without Redis: a view's features compiled into per-record
 * contributions, a batch's contributions logged per (view, entity, source partition), and
 * each log folded into one features-apply.lua update by the feature algebra
 * (lib/features/algebra.ts). Records are not kept: a log holds numbers, JSON texts and
 * references to the records' origins (which the batch holds until its commit anyway).
 */
import { compilePredicate } from "../../topology/predicate.ts";
import { compileGetter, compileValue } from "../../topology/template.ts";
import type { RecordOrigin, StreamRecord } from "../../runtime/contracts.ts";
import { mergeContributions } from "../../features/algebra.ts";
import type { Merged } from "../../features/algebra.ts";
import { keys, parseDuration } from "../../features/layout.ts";
import type { FeatureDef, ViewDef } from "../../features/layout.ts";
import type { FeatureConfig, ViewConfig } from "./config.ts";
import { compileEventTime, compileKey } from "./keys.ts";
import type { KeyFn } from "./keys.ts";

/** A record's contribution value to one feature; undefined leaves the feature alone; an Error rejects the record. */
type ContributeFn = (r: StreamRecord) => number | string | undefined | Error;

export interface CompiledView {
  def: ViewDef;
  key: KeyFn;
  keySource: string;
  eventTime: (r: StreamRecord) => number;
  contribute: ContributeFn[];
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  if (typeof v === "bigint") return Number(v);
  return undefined;
}

function compileFeature(f: FeatureConfig): { def: FeatureDef; contribute: ContributeFn } {
  const when = f.when ? compilePredicate(f.when) : () => true;
  const get = f.field ? compileGetter(f.field) : () => undefined;
  const name = f.name;
  switch (f.kind) {
    case "latest":
    case "last_n": {
      const contribute: ContributeFn = (r) => {
        if (!when(r)) return undefined;
        const v = get(r);
        return v === undefined ? undefined : JSON.stringify(v);
      };
      return { def: { name, kind: f.kind, ...(f.n ? { n: f.n } : {}) }, contribute };
    }
    case "counter": {
      const by = compileValue(f.by ?? 1);
      const contribute: ContributeFn = (r) => {
        if (!when(r)) return undefined;
        const raw = by(r);
        const n = toNumber(raw);
        if (n === undefined) return new Error(`counter ${name}: \`by\` ${String(f.by)} gave ${JSON.stringify(raw)}, expected a number`);
        return n === 0 ? undefined : n;
      };
      return { def: { name, kind: "counter" }, contribute };
    }
    case "min":
    case "max":
      return { def: { name, kind: f.kind }, contribute: (r) => (when(r) ? toNumber(get(r)) : undefined) };
    case "window_count":
    case "window_sum": {
      const counting = f.kind === "window_count";
      const contribute: ContributeFn = (r) => (!when(r) ? undefined : counting ? 1 : toNumber(get(r)));
      return { def: { name, kind: f.kind, window_ms: parseDuration(f.window!), buckets: f.buckets }, contribute };
    }
  }
}

export function compileView(v: ViewConfig): CompiledView {
  const compiled = v.features.map(compileFeature);
  return {
    def: { name: v.name, entity: v.entity, ...(v.ttl_seconds ? { ttl_seconds: v.ttl_seconds } : {}), features: compiled.map((c) => c.def) },
    key: compileKey(v.key),
    keySource: v.key,
    eventTime: compileEventTime(v.event_time),
    contribute: compiled.map((c) => c.contribute),
  };
}

/** The contributions of one batch's records to one entity of one view, from one source partition, in record order. */
export class EntityLog {
  readonly view: CompiledView;
  /** The batch this log belongs to (whose flush reports its failures). */
  readonly owner: object;
  /** The entity hash key and the watermark field of the source partition. */
  readonly key: string;
  readonly watermark: string;
  readonly origins: RecordOrigin[] = [];
  readonly seqs: number[] = [];
  /** Per feature: record index, event time and value of each contribution. */
  readonly at: number[][];
  readonly ts: number[][];
  readonly vs: (number | string)[][];

  constructor(owner: object, view: CompiledView, key: string, watermark: string) {
    this.owner = owner;
    this.view = view;
    this.key = key;
    this.watermark = watermark;
    const n = view.def.features.length;
    this.at = Array.from({ length: n }, () => []);
    this.ts = Array.from({ length: n }, () => []);
    this.vs = Array.from({ length: n }, () => []);
  }

  /** Adds a record's contributions (`values[i]` for feature i, undefined for none). */
  add(origin: RecordOrigin, t: number, values: readonly (number | string | undefined)[]): void {
    const i = this.origins.length;
    const prev = this.origins[i - 1];
    // records one offset produced (a step fanned out) are adjacent: number them per entity
    this.seqs.push(prev !== undefined && prev.offset === origin.offset ? this.seqs[i - 1]! + 1 : 0);
    this.origins.push(origin);
    for (let f = 0; f < values.length; f++) {
      const v = values[f];
      if (v === undefined) continue;
      this.at[f]!.push(i);
      this.ts[f]!.push(t);
      this.vs[f]!.push(v);
    }
  }

  /** Index of the first record after position (offset, seq); the log's length when none. */
  after(offset: number, seq: number): number {
    for (let i = 0; i < this.origins.length; i++) {
      const o = Number(this.origins[i]!.offset);
      if (o > offset || (o === offset && this.seqs[i]! > seq)) return i;
    }
    return this.origins.length;
  }

  /** The features-apply.lua group (without its leading count) for records from index `from` on; undefined when none. */
  encode(from = 0): Array<string | number> | undefined {
    const last = this.origins.length - 1;
    if (from > last) return undefined;
    const args: Array<string | number> = [1];
    this.position(args, from);
    const features = this.view.def.features;
    for (let f = 0; f < features.length; f++) {
      const at = this.at[f]!;
      let start = 0;
      while (start < at.length && at[start]! < from) start++;
      const m = mergeContributions(features[f]!, this.ts[f]!, this.vs[f]!, start, at.length);
      if (m) encodeMerged(args, m);
      else args.push("");
    }
    return args;
  }

  /** Watermark field and the (offset, seq) range of the records from index `from` on. */
  position(args: Array<string | number>, from = 0): void {
    const last = this.origins.length - 1;
    args.push(this.watermark, this.origins[from]!.offset, this.seqs[from]!, this.origins[last]!.offset, this.seqs[last]!);
  }
}

/**
 * One features-apply.lua group for one entity's logs from several partitions' batches (each
 * log whole, taken in the given order: one interleaving of the partitions, as concurrent
 * partitions have no order between them).
 */
export function encodeParts(logs: readonly EntityLog[]): Array<string | number> {
  const args: Array<string | number> = [logs.length];
  for (const l of logs) l.position(args);
  const features = logs[0]!.view.def.features;
  for (let f = 0; f < features.length; f++) {
    const ts: number[] = [];
    const vs: (number | string)[] = [];
    for (const l of logs) {
      for (const t of l.ts[f]!) ts.push(t);
      for (const v of l.vs[f]!) vs.push(v);
    }
    const m = mergeContributions(features[f]!, ts, vs);
    if (m) encodeMerged(args, m);
    else args.push("");
  }
  return args;
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
      args.push(m.v, m.t);
      return;
    case "min":
    case "max":
      args.push(String(m.v), m.t);
      return;
    case "last_n":
      args.push(m.items.length);
      for (const it of m.items) args.push(it.v, it.t);
      return;
    case "window_count":
    case "window_sum":
      args.push(m.t, m.head, m.buckets.size);
      for (const [start, amount] of m.buckets) args.push(start, String(amount));
      return;
  }
}

/**
 * A batch's logs, by view and entity. `add` takes records slice by slice; a record is
 * checked against every view before any of its contributions is logged, so a record
 * rejected by one view changes no other.
 */
export class BatchLog {
  private readonly views: readonly CompiledView[];
  private readonly prefix: string;
  private readonly byView: Map<string, EntityLog>[];
  private readonly scratch: { id: string; t: number; values: (number | string | undefined)[] }[];
  private wmOrigin: RecordOrigin | undefined;
  private wmField = "";

  constructor(views: readonly CompiledView[], prefix: string) {
    this.views = views;
    this.prefix = prefix;
    this.byView = views.map(() => new Map());
    this.scratch = views.map((v) => ({ id: "", t: 0, values: new Array<number | string | undefined>(v.contribute.length) }));
  }

  /** Logs a record; returns why it cannot be written, or undefined. Tombstones carry no features. */
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
      for (let f = 0; f < view.contribute.length; f++) {
        const c = view.contribute[f]!(r);
        if (c instanceof Error) return `view ${view.def.name}: ${c.message}`;
        s.values[f] = c;
      }
    }
    const wm = this.watermarkOf(r.origin);
    for (let v = 0; v < views.length; v++) {
      const s = this.scratch[v]!;
      if (!s.values.some((x) => x !== undefined)) continue;
      const logs = this.byView[v]!;
      const mapKey = wm === this.wmField ? s.id : `${s.id}\u0000${wm}`;
      let log = logs.get(mapKey);
      if (!log) logs.set(mapKey, (log = new EntityLog(this, views[v]!, keys.entity(this.prefix, views[v]!.def.name, s.id), wm)));
      log.add(r.origin, s.t, s.values);
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

  /** Every entity log of the batch. */
  entities(): EntityLog[] {
    const out: EntityLog[] = [];
    for (const m of this.byView) for (const log of m.values()) out.push(log);
    return out;
  }
}
