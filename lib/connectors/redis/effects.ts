/**
 * What the Redis sinks would write, without Redis: the offline test runner (`streamfleet
 * test`) compares these renderings. Each one is built from the code its sink writes with —
 * the same key templates, predicates and field picks; for the feature store, the same
 * BatchLog that folds a batch into entity updates and the feature algebra that applies an
 * update (here to an empty entity), so the rendered values are what a reader would see.
 */
import { SfError } from "../../errors.ts";
import { applyMerged, combineMerged } from "../../features/algebra.ts";
import type { FeatureState, Merged, TimedValue } from "../../features/algebra.ts";
import { keys } from "../../features/layout.ts";
import type { FeatureDef } from "../../features/layout.ts";
import type { EffectContext, RecordFailure, SinkEffects, StreamRecord } from "../../runtime/contracts.ts";
import { compilePredicate } from "../../topology/predicate.ts";
import { compileValue } from "../../topology/template.ts";
import type { CacheSinkConfig, FeaturesSinkConfig, PublishSinkConfig } from "./config.ts";
import { BatchLog, compileView } from "./feature-log.ts";
import { compileKey } from "./keys.ts";

function invalid(record: StreamRecord, message: string, where: string): RecordFailure {
  return { record, error: new SfError("SF_ERR_SINK_RECORD_INVALID", message, { where }) };
}

function pick(value: unknown, fields: readonly string[] | undefined): unknown {
  if (!fields || value === null || typeof value !== "object") return value;
  const src = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (f in src) out[f] = src[f];
  return out;
}

/**
 * `redis.cache`: the batch's last word per key, in the order keys first appear — a
 * `{ set, value, ttl_seconds }` (the cached JSON, parsed back) or a `{ del }`.
 */
export function cacheEffect(config: CacheSinkConfig, records: readonly StreamRecord[], ctx: EffectContext): SinkEffects {
  const key = compileKey(config.key);
  const isDelete = config.delete_when ? compilePredicate(config.delete_when) : () => false;
  const last = new Map<string, unknown>();
  const failed: RecordFailure[] = [];
  for (const r of records) {
    const k = key(r);
    if (k === undefined) {
      failed.push(invalid(r, `the cache key ${config.key} is missing from the record`, ctx.component));
      continue;
    }
    last.set(k, r.value === null || r.value === undefined || isDelete(r) ? undefined : r.value);
  }
  const effects = [...last].map(([k, value]) => {
    const redisKey = config.key_prefix + k;
    if (value === undefined) return { del: redisKey };
    const cached = JSON.parse(JSON.stringify(pick(value, config.fields))) as unknown;
    return config.ttl_seconds ? { set: redisKey, value: cached, ttl_seconds: config.ttl_seconds } : { set: redisKey, value: cached };
  });
  return { effects, failed };
}

/** `redis.publish`: one `{ channel, message }` per record, in record order (the message parsed back from its JSON). */
export function publishEffect(config: PublishSinkConfig, records: readonly StreamRecord[], ctx: EffectContext): SinkEffects {
  const channel = compileKey(config.channel);
  const mapping = config.fields ? Object.entries(config.fields).map(([k, v]) => [k, compileValue(v)] as const) : undefined;
  const effects: unknown[] = [];
  const failed: RecordFailure[] = [];
  for (const r of records) {
    const c = channel(r);
    if (c === undefined) {
      failed.push(invalid(r, `the channel ${config.channel} is missing a field in the record`, ctx.component));
      continue;
    }
    let message: unknown = r.value ?? null;
    if (mapping) message = Object.fromEntries(mapping.map(([k, get]) => [k, get(r)]));
    effects.push({ channel: config.key_prefix + c, message: JSON.parse(JSON.stringify(message)) as unknown });
  }
  return { effects, failed };
}

/** What a reader sees of one feature: its value; windows as `{ <window start, ISO>: amount }` for every kept window. */
function shown(def: FeatureDef, s: FeatureState): unknown {
  if (def.kind === "window_count" || def.kind === "window_sum") {
    const out: Record<string, number> = {};
    for (const [start, amount] of [...(s.buckets ?? new Map<number, number>())].sort((a, b) => a[0] - b[0])) out[new Date(start).toISOString()] = amount;
    return out;
  }
  if (s.value === undefined) return null;
  return def.kind === "last_n" ? (s.value as TimedValue[]).map((x) => x.v) : s.value;
}

/**
 * `redis.features`: each entity the batch touches, with its features' values after the
 * batch applied to an empty entity — `{ view, entity, key, features: { name: value } }`,
 * features the records left alone omitted. The batch is folded by the sink's own BatchLog
 * (per view, entity and source partition) and applied by the feature algebra.
 */
export function featuresEffect(config: FeaturesSinkConfig, records: readonly StreamRecord[], ctx: EffectContext): SinkEffects {
  const views = config.views.map(compileView);
  const log = new BatchLog(views, config.key_prefix, false);
  const failed: RecordFailure[] = [];
  for (const r of records) {
    const why = log.add(r);
    if (why !== undefined) failed.push(invalid(r, why, ctx.component));
  }
  // an entity's parts (one per source partition) merge as the sink's group commit merges them
  const byKey = new Map<string, { view: (typeof views)[number]; merged: (Merged | undefined)[] }>();
  for (const part of log.entities()) {
    const features = part.view.def.features;
    const next = part.merged();
    const seen = byKey.get(part.key);
    if (!seen) byKey.set(part.key, { view: part.view, merged: next });
    else seen.merged = seen.merged.map((m, f) => (m === undefined ? next[f] : next[f] === undefined ? m : combineMerged(features[f]!, m, next[f]!)));
  }
  const effects = [...byKey].map(([key, { view, merged }]) => {
    const features: Record<string, unknown> = {};
    view.def.features.forEach((def, f) => {
      const m = merged[f];
      if (m) features[def.name] = JSON.parse(JSON.stringify(shown(def, applyMerged(def, {}, m)))) as unknown;
    });
    const entity = key.slice(keys.entity(config.key_prefix, view.def.name, "").length);
    return { view: view.def.name, entity, key, features };
  });
  return { effects, failed };
}
