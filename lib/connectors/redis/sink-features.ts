import type { Redis } from "ioredis";
import { SfError } from "../../errors.ts";
import { compilePredicate } from "../../topology/predicate.ts";
import { compileGetter, compileValue } from "../../topology/template.ts";
import type { ComponentContext, ComponentSpec, RecordFailure, Sink, StreamRecord } from "../../runtime/contracts.ts";
import { bucketStart, keys, parseDuration } from "../../features/layout.ts";
import type { FeatureDef, ViewDef } from "../../features/layout.ts";
import { createRedis, ensureConnected, execPipeline, redisLifecycle } from "./client.ts";
import { featuresSinkSchema } from "./config.ts";
import type { FeatureConfig, FeaturesSinkConfig, ViewConfig } from "./config.ts";
import { compileEventTime, compileKey } from "./keys.ts";
import type { KeyFn } from "./keys.ts";
import { redisMetrics, timed } from "./metrics.ts";
import { callScript, defineScripts } from "./scripts.ts";

/** One feature update's script arguments for a record, undefined to leave the feature alone, or an Error for a bad record. */
type OpFn = (r: StreamRecord, eventTime: number) => [string, string, string, string] | undefined | Error;

/** Updates per EVALSHA: enough to amortise the call, small enough to keep Redis responsive. */
const CHUNK = 250;

interface PlannedCall {
  entity: string;
  args: Array<string | number>;
}

interface CompiledView {
  def: ViewDef;
  key: KeyFn;
  keySource: string;
  eventTime: (r: StreamRecord) => number;
  ops: OpFn[];
}

function toNumber(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

/** Compiles one feature into a closure producing its 4 script arguments (kind, name, value, param). */
function compileFeature(f: FeatureConfig): { def: FeatureDef; op: OpFn } {
  const when = f.when ? compilePredicate(f.when) : () => true;
  const get = f.field ? compileGetter(f.field) : () => undefined;
  const name = f.name;
  switch (f.kind) {
    case "latest":
    case "last_n": {
      const param = f.kind === "last_n" ? String(f.n) : "";
      const op: OpFn = (r) => {
        if (!when(r)) return undefined;
        const v = get(r);
        return v === undefined ? undefined : [f.kind, name, JSON.stringify(v), param];
      };
      return { def: { name, kind: f.kind, ...(f.n ? { n: f.n } : {}) }, op };
    }
    case "counter": {
      const by = compileValue(f.by ?? 1);
      const op: OpFn = (r) => {
        if (!when(r)) return undefined;
        const raw = by(r);
        const n = toNumber(raw);
        if (n === undefined) return new Error(`counter ${name}: \`by\` ${String(f.by)} gave ${JSON.stringify(raw)}, expected a number`);
        return n === 0 ? undefined : ["counter", name, String(n), ""];
      };
      return { def: { name, kind: "counter" }, op };
    }
    case "min":
    case "max": {
      const op: OpFn = (r) => {
        if (!when(r)) return undefined;
        const n = toNumber(get(r));
        return n === undefined ? undefined : [f.kind, name, String(n), ""];
      };
      return { def: { name, kind: f.kind }, op };
    }
    case "window_count":
    case "window_sum": {
      const size = parseDuration(f.window!);
      const counting = f.kind === "window_count";
      const op: OpFn = (r, t) => {
        if (!when(r)) return undefined;
        const n = counting ? 1 : toNumber(get(r));
        return n === undefined ? undefined : [f.kind, name, String(n), `${bucketStart(t, size)}:${size}:${f.buckets}`];
      };
      return { def: { name, kind: f.kind, window_ms: size, buckets: f.buckets }, op };
    }
  }
}

function compileView(v: ViewConfig): CompiledView {
  const compiled = v.features.map(compileFeature);
  return {
    def: { name: v.name, entity: v.entity, ...(v.ttl_seconds ? { ttl_seconds: v.ttl_seconds } : {}), features: compiled.map((c) => c.def) },
    key: compileKey(v.key),
    keySource: v.key,
    eventTime: compileEventTime(v.event_time),
    ops: compiled.map((c) => c.op),
  };
}

function invalid(record: StreamRecord, message: string, where: string): RecordFailure {
  return { record, error: new SfError("SF_ERR_SINK_RECORD_INVALID", message, { where }) };
}

/**
 * Writes one batch: one pipeline, one EVALSHA of features-apply.lua per record and view.
 * The script skips records at or below the entity's per-partition watermark (applied
 * already) and older `latest` values, so a retried batch changes nothing twice.
 */
export function createFeaturesSink(config: FeaturesSinkConfig, ctx: ComponentContext, client?: Redis): Sink {
  const redis = client ?? createRedis(ctx.connections, config.connection);
  defineScripts(redis);
  const views = config.views.map(compileView);
  const prefix = config.key_prefix;
  const metrics = redisMetrics(ctx.metrics);
  const applied = metrics.scriptResults.labels(ctx.topology, "features_apply", "applied");
  const duplicate = metrics.scriptResults.labels(ctx.topology, "features_apply", "duplicate");
  let registered = false;
  const count = (res: number[]) => {
    for (const x of res) (x === 1 ? applied : duplicate).inc();
  };
  const pipelineOf = (chunks: Array<Array<{ entity: string; args: Array<string | number> }>>) => {
    const p = redis.pipeline();
    for (const chunk of chunks) {
      const args: Array<string | number> = [];
      for (const c of chunk) args.push(c.args.length + 1, ...c.args);
      callScript(p, "featuresApply", chunk.map((c) => c.entity), args);
    }
    return p;
  };

  /**
   * The script calls for one record (one per view it updates), or why the record cannot be
   * written. `seq` numbers the records one source offset produced for one entity, in batch
   * order, so the (offset, seq) watermark also covers records a step fanned out.
   */
  function plan(r: StreamRecord, seq: Map<string, number>): PlannedCall[] | string {
    const planned: PlannedCall[] = [];
    const o = r.origin;
    for (const v of views) {
      const id = v.key(r);
      if (id === undefined) return `view ${v.def.name}: the entity key ${v.keySource} is missing from the record`;
      const t = v.eventTime(r);
      if (!Number.isFinite(t)) return `view ${v.def.name}: the event time is missing or unreadable`;
      const entity = keys.entity(prefix, v.def.name, id);
      const at = `${entity}\u0000${o.topic}\u0000${o.partition}\u0000${o.offset}`;
      const n = seq.get(at) ?? 0;
      const args: Array<string | number> = [`@o:${o.cluster}:${o.topic}:${o.partition}`, o.offset, n, v.def.ttl_seconds ?? 0, Math.trunc(t)];
      for (const op of v.ops) {
        const a = op(r, t);
        if (a instanceof Error) return `view ${v.def.name}: ${a.message}`;
        if (a) args.push(...a);
      }
      if (args.length > 5) {
        seq.set(at, n + 1);
        planned.push({ entity, args });
      }
    }
    return planned;
  }

  async function register(): Promise<void> {
    const p = redis.pipeline();
    for (const v of views) p.hset(keys.views(prefix), v.def.name, JSON.stringify(v.def));
    await execPipeline(redis, p, ctx.component);
    registered = true;
  }

  return {
    name: ctx.component,
    async open() {
      await ensureConnected(redis, ctx.component);
      await register();
    },
    async write(records) {
      await ensureConnected(redis, ctx.component);
      if (!registered) await register();
      const failed: RecordFailure[] = [];
      const calls: Array<{ record: StreamRecord; entity: string; args: Array<string | number> }> = [];
      const seq = new Map<string, number>();
      for (const r of records) {
        if (r.value === null || r.value === undefined) continue; // a tombstone carries no features
        const planned = plan(r, seq);
        if (typeof planned === "string") {
          failed.push(invalid(r, planned, ctx.component));
          continue;
        }
        for (const c of planned) calls.push({ record: r, ...c });
      }
      if (calls.length === 0) return failed.length ? { failed } : undefined;
      // One EVALSHA per chunk of updates, all chunks in one pipeline.
      const chunks: (typeof calls)[] = [];
      for (let i = 0; i < calls.length; i += CHUNK) chunks.push(calls.slice(i, i + CHUNK));
      const results = await timed(metrics, ctx.topology, "features", () => execPipeline(redis, pipelineOf(chunks), ctx.component));
      const retry: (typeof calls)[] = [];
      results.forEach(([err, res], i) => {
        if (err) retry.push(...chunks[i]!.map((c) => [c]));
        else count(res as number[]);
      });
      if (retry.length) {
        // A chunk that failed: each update alone, so only the bad record fails (applied ones are skipped by their watermark).
        const single = await execPipeline(redis, pipelineOf(retry), ctx.component);
        const rejected = new Set<StreamRecord>();
        single.forEach(([err, res], i) => {
          const record = retry[i]![0]!.record;
          if (!err) return count(res as number[]);
          if (!rejected.has(record)) failed.push(invalid(record, `Redis refused the feature update: ${err.message}`, ctx.component));
          rejected.add(record);
        });
      }
      return failed.length ? { failed } : undefined;
    },
    ...redisLifecycle(redis, !client, ctx.component),
  };
}

/** `redis.features`: the feature store sink. */
export const featuresSink: ComponentSpec<FeaturesSinkConfig, Sink> = {
  schema: featuresSinkSchema,
  description: "Maintain feature views in Redis (latest, counter, min, max, last_n, windowed count/sum), idempotent and order-safe.",
  create: (config, ctx) => createFeaturesSink(config, ctx),
};
