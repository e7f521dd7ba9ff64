import type { Redis } from "ioredis";
import { SfError } from "../../errors.ts";
import { writeAsOneBatch } from "../../runtime/sink-batch.ts";
import type { ComponentContext, ComponentSpec, RecordOrigin, Sink, SinkBatch, SinkFailure } from "../../runtime/contracts.ts";
import { keys } from "../../features/layout.ts";
import { createRedis, ensureConnected, execPipeline, redisLifecycle } from "./client.ts";
import { featuresSinkSchema } from "./config.ts";
import type { FeaturesSinkConfig } from "./config.ts";
import { BatchLog, compileView, encodeParts, viewHeader } from "./feature-log.ts";
import type { EntityLog } from "./feature-log.ts";
import { redisMetrics, timed } from "./metrics.ts";
import { callScript, defineScripts } from "./scripts.ts";

/** Entity updates per EVALSHA: enough to amortise the call, small enough to keep Redis responsive. */
const CHUNK = 100;

/** One entity update on its way to Redis: its logs (one per partition), the first record index (one log), the script group. */
interface Update {
  logs: EntityLog[];
  from: number;
  args: Array<string | number>;
}

/** A flush waiting for its turn: flushes that arrive while one is in Redis go together. */
interface Waiting {
  log: BatchLog;
  done(failed: SinkFailure[]): void;
  fail(err: unknown): void;
}

function invalid(origin: RecordOrigin, message: string, where: string): SinkFailure {
  return { origin, error: new SfError("SF_ERR_SINK_RECORD_INVALID", message, { where }) };
}

/**
 * The feature store sink. A batch's records are logged per (view, entity) as they come,
 * slice by slice (`batch().add`), and written once before the commit (`flush`): one
 * features-apply.lua update per entity carries the merged contributions of all its records
 * and the (offset, seq) range they span, so Redis reads and writes each entity once per
 * batch. Flushes of other partitions' batches that arrive while one is in Redis are sent
 * together, one update per entity for all of them (group commit). The script skips an
 * update whose records are at or below the entity's watermark for their partition (a
 * retried or replayed batch changes nothing twice) and reports a replay that overlaps in
 * part; the sink then sends the records after the watermark, one partition at a time.
 */
export function createFeaturesSink(config: FeaturesSinkConfig, ctx: ComponentContext, client?: Redis): Sink {
  const redis = client ?? createRedis(ctx.connections, config.connection);
  defineScripts(redis);
  const views = config.views.map(compileView);
  const headers = new Map(views.map((v) => [v, viewHeader(v.def)]));
  const prefix = config.key_prefix;
  const metrics = redisMetrics(ctx.metrics);
  const applied = metrics.scriptResults.labels(ctx.topology, "features_apply", "applied");
  const duplicate = metrics.scriptResults.labels(ctx.topology, "features_apply", "duplicate");
  let registered = false;
  const waiting: Waiting[] = [];
  let sending = false;

  async function register(): Promise<void> {
    const p = redis.pipeline();
    for (const v of views) p.hset(keys.views(prefix), v.def.name, JSON.stringify(v.def));
    await execPipeline(redis, p, ctx.component);
    registered = true;
  }

  function pipelineOf(chunks: Update[][]): ReturnType<Redis["pipeline"]> {
    const p = redis.pipeline();
    for (const chunk of chunks) {
      const args = headers.get(chunk[0]!.logs[0]!.view)!.slice();
      const entityKeys: string[] = [];
      for (const u of chunk) {
        entityKeys.push(u.logs[0]!.key);
        args.push(u.args.length + 1);
        for (const a of u.args) args.push(a);
      }
      callScript(p, "featuresApply", entityKeys, args);
    }
    return p;
  }

  /** Sends updates; returns those to send again (a partial replay, a split) and records the entities Redis refused. */
  async function send(updates: Update[], failed: Map<object, SinkFailure[]>): Promise<Update[]> {
    // one view per call: its header (feature kinds and names) is sent once per chunk
    const chunks: Update[][] = [];
    for (const v of views) {
      const mine = views.length === 1 ? updates : updates.filter((u) => u.logs[0]!.view === v);
      for (let i = 0; i < mine.length; i += CHUNK) chunks.push(mine.slice(i, i + CHUNK));
    }
    const results = await timed(metrics, ctx.topology, "features", () => execPipeline(redis, pipelineOf(chunks), ctx.component));
    const again: Update[] = [];
    const alone: Update[][] = [];
    results.forEach(([err, res], c) => {
      const chunk = chunks[c]!;
      // A chunk Redis refused: each update alone, so only the bad entity's records fail.
      if (err) return chunk.length > 1 ? alone.push(...chunk.map((u) => [u])) : refuse(chunk[0]!, err, failed);
      (res as Array<number | string>).forEach((r, i) => settle(chunk[i]!, r, again));
    });
    if (alone.length) {
      const single = await execPipeline(redis, pipelineOf(alone), ctx.component);
      single.forEach(([err, res], i) => (err ? refuse(alone[i]![0]!, err, failed) : settle(alone[i]![0]!, (res as Array<number | string>)[0]!, again)));
    }
    return again;
  }

  function settle(u: Update, result: number | string, again: Update[]): void {
    if (result === -1) {
      // some partition of a merged update was applied already: one update per partition
      for (const l of u.logs) again.push({ logs: [l], from: 0, args: l.encode(0)! });
      return;
    }
    const records = u.logs.reduce((n, l) => n + l.origins.length, 0) - u.from;
    if (result === 1) return applied.inc(records);
    if (result === 0) return duplicate.inc(records);
    // applied up to the stored watermark: send the records after it
    const log = u.logs[0]!;
    const [offset, seq] = String(result).split(":").map(Number) as [number, number];
    const from = log.after(offset, seq);
    duplicate.inc(from - u.from);
    const args = log.encode(from);
    if (args) again.push({ logs: [log], from, args });
  }

  function refuse(u: Update, err: Error, failed: Map<object, SinkFailure[]>): void {
    for (const log of u.logs) {
      const list = failed.get(log.owner) ?? [];
      failed.set(log.owner, list);
      const seen = new Set<RecordOrigin>();
      for (let i = u.from; i < log.origins.length; i++) {
        const o = log.origins[i]!;
        if (!seen.has(o)) list.push(invalid(o, `Redis refused the feature update of ${log.key}: ${err.message}`, ctx.component));
        seen.add(o);
      }
    }
  }

  /** Writes the logs of several batches: one update per entity, its partitions merged. */
  async function write(batches: BatchLog[]): Promise<Map<object, SinkFailure[]>> {
    await ensureConnected(redis, ctx.component);
    if (!registered) await register();
    const byEntity = new Map<string, EntityLog[]>();
    for (const b of batches) {
      for (const l of b.entities()) {
        const list = byEntity.get(l.key);
        if (list) list.push(l);
        else byEntity.set(l.key, [l]);
      }
    }
    let updates: Update[] = [];
    for (const logs of byEntity.values()) updates.push({ logs, from: 0, args: logs.length === 1 ? logs[0]!.encode(0)! : encodeParts(logs) });
    const failed = new Map<object, SinkFailure[]>();
    // A replay that overlaps the first try in part needs a second round; a third only
    // when another worker (a zombie past its session) writes the same entities meanwhile.
    for (let round = 0; updates.length > 0; round++) {
      if (round === 5) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", "feature watermarks kept moving under this batch (another worker writes the same partition?); the batch will be retried", { where: ctx.component });
      updates = await send(updates, failed);
    }
    return failed;
  }

  async function drain(): Promise<void> {
    sending = true;
    try {
      while (waiting.length > 0) {
        const group = waiting.splice(0);
        try {
          const failed = await write(group.map((w) => w.log));
          for (const w of group) w.done(failed.get(w.log) ?? []);
        } catch (err) {
          for (const w of group) w.fail(err);
        }
      }
    } finally {
      sending = false;
    }
  }

  function batch(): SinkBatch {
    const log = new BatchLog(views, prefix);
    return {
      add(records) {
        const failed: SinkFailure[] = [];
        for (const r of records) {
          const why = log.add(r);
          if (why !== undefined) failed.push(invalid(r.origin, why, ctx.component));
        }
        return failed;
      },
      async flush() {
        const failed = await new Promise<SinkFailure[]>((done, fail) => {
          waiting.push({ log, done, fail });
          if (!sending) void drain();
        });
        return failed.length ? { failed } : undefined;
      },
    };
  }

  return {
    name: ctx.component,
    async open() {
      await ensureConnected(redis, ctx.component);
      await register();
    },
    batch,
    write: (records) => writeAsOneBatch(batch(), records),
    ...redisLifecycle(redis, !client, ctx.component),
  };
}

/** `redis.features`: the feature store sink. */
export const featuresSink: ComponentSpec<FeaturesSinkConfig, Sink> = {
  schema: featuresSinkSchema,
  description: "Maintain feature views in Redis (latest, counter, min, max, last_n, windowed count/sum), idempotent and order-safe.",
  create: (config, ctx) => createFeaturesSink(config, ctx),
};
