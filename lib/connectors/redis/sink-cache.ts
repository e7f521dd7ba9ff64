import type { Redis } from "ioredis";
import { SfError } from "../../errors.ts";
import { compilePredicate } from "../../topology/predicate.ts";
import type { ComponentContext, ComponentSpec, RecordFailure, Sink, StreamRecord } from "../../runtime/contracts.ts";
import { createRedis, ensureConnected, execPipeline, redisLifecycle } from "./client.ts";
import { cacheSinkSchema } from "./config.ts";
import type { CacheSinkConfig } from "./config.ts";
import { compileKey } from "./keys.ts";
import { redisMetrics, timed } from "./metrics.ts";

function pick(value: unknown, fields: readonly string[] | undefined): unknown {
  if (!fields || value === null || typeof value !== "object") return value;
  const src = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (f in src) out[f] = src[f];
  return out;
}

/**
 * Writes each record's value as JSON under its key (SET ... EX), or deletes the key for a
 * delete event or a tombstone; one pipeline per batch, in record order, so the batch's last
 * word on a key wins and a replayed batch ends in the same state.
 */
export function createCacheSink(config: CacheSinkConfig, ctx: ComponentContext, client?: Redis): Sink {
  const redis = client ?? createRedis(ctx.connections, config.connection);
  const key = compileKey(config.key);
  const isDelete = config.delete_when ? compilePredicate(config.delete_when) : () => false;
  const metrics = redisMetrics(ctx.metrics);
  const prefix = config.key_prefix;
  return {
    name: ctx.component,
    async open() {
      await ensureConnected(redis, ctx.component);
    },
    async write(records) {
      await ensureConnected(redis, ctx.component);
      const failed: RecordFailure[] = [];
      const written: StreamRecord[] = [];
      const p = redis.pipeline();
      for (const r of records) {
        const k = key(r);
        if (k === undefined) {
          failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `the cache key ${config.key} is missing from the record`, { where: ctx.component }) });
          continue;
        }
        if (r.value === null || r.value === undefined || isDelete(r)) p.del(prefix + k);
        else if (config.ttl_seconds) p.set(prefix + k, JSON.stringify(pick(r.value, config.fields)), "EX", config.ttl_seconds);
        else p.set(prefix + k, JSON.stringify(pick(r.value, config.fields)));
        written.push(r);
      }
      if (written.length === 0) return failed.length ? { failed } : undefined;
      const results = await timed(metrics, ctx.topology, "cache", () => execPipeline(redis, p, ctx.component));
      results.forEach(([err], i) => {
        if (err) failed.push({ record: written[i]!, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `Redis refused the cache write: ${err.message}`, { where: ctx.component }) });
      });
      return failed.length ? { failed } : undefined;
    },
    ...redisLifecycle(redis, !client, ctx.component),
  };
}

/** `redis.cache`: the entity as JSON under a key template, with a TTL; deleted on delete events and tombstones. */
export const cacheSink: ComponentSpec<CacheSinkConfig, Sink> = {
  schema: cacheSinkSchema,
  description: "Cache each record's value as JSON under a key template with a TTL; delete events and tombstones delete the key.",
  create: (config, ctx) => createCacheSink(config, ctx),
};
