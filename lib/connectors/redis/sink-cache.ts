import type { ChainableCommander } from "ioredis";
import { SfError } from "../../errors.ts";
import { writeAsOneBatch } from "../../runtime/sink-batch.ts";
import { compilePredicate } from "../../topology/predicate.ts";
import type { ComponentContext, ComponentSpec, RecordOrigin, Sink, SinkBatch, SinkFailure } from "../../runtime/contracts.ts";
import { createRedisClient, ensureConnected, execPerNode, redisLifecycle, waitReplicas } from "./client.ts";
import type { RedisClient } from "./client.ts";
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

/** The last word of a batch on one key: the value to cache (undefined: delete) and the record that said it. */
interface LastWrite {
  value: unknown;
  origin: RecordOrigin;
}

/**
 * Caches each record's value as JSON under its key (SET ... EX), or deletes the key for a
 * delete event or a tombstone. A cache holds the newest state per key, so a batch is
 * collapsed to its last word per key (records are taken in partition order) and written
 * once, one pipeline, before the commit: a replayed batch ends in the same state.
 */
export function createCacheSink(config: CacheSinkConfig, ctx: ComponentContext, client?: RedisClient): Sink {
  const redis = client ?? createRedisClient(ctx.connections, config.connection);
  const key = compileKey(config.key);
  const isDelete = config.delete_when ? compilePredicate(config.delete_when) : () => false;
  const metrics = redisMetrics(ctx.metrics);
  const prefix = config.key_prefix;
  const ttl = config.ttl_seconds;
  const fields = config.fields;
  const wait = waitReplicas(ctx.connections, config.connection);

  function batch(): SinkBatch {
    const last = new Map<string, LastWrite>();
    return {
      add(records) {
        const failed: SinkFailure[] = [];
        for (const r of records) {
          const k = key(r);
          if (k === undefined) {
            failed.push({ origin: r.origin, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `the cache key ${config.key} is missing from the record`, { where: ctx.component }) });
            continue;
          }
          const value = r.value === null || r.value === undefined || isDelete(r) ? undefined : r.value;
          const w = last.get(k);
          if (w) {
            w.value = value;
            w.origin = r.origin;
          } else last.set(k, { value, origin: r.origin });
        }
        return failed;
      },
      async flush() {
        if (last.size === 0) return;
        await ensureConnected(redis, ctx.component);
        // one pipeline (on a Redis Cluster one per node, sent at once)
        const writes = [...last];
        const origins: RecordOrigin[] = writes.map(([, w]) => w.origin);
        const add = (p: ChainableCommander, i: number) => {
          const [k, w] = writes[i]!;
          if (w.value === undefined) p.del(prefix + k);
          else if (ttl) p.set(prefix + k, JSON.stringify(pick(w.value, fields)), "EX", ttl);
          else p.set(prefix + k, JSON.stringify(pick(w.value, fields)));
        };
        const results = await timed(metrics, ctx.topology, "cache", () => execPerNode(redis, writes.length, (i) => prefix + writes[i]![0], add, ctx.component, wait));
        const failed: SinkFailure[] = [];
        results.forEach(([err], i) => {
          if (err) failed.push({ origin: origins[i]!, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `Redis refused the cache write: ${err.message}`, { where: ctx.component }) });
        });
        return failed.length ? { failed } : undefined;
      },
    };
  }

  return {
    name: ctx.component,
    async open() {
      await ensureConnected(redis, ctx.component);
    },
    batch,
    write: (records) => writeAsOneBatch(batch(), records),
    ...redisLifecycle(redis, !client, ctx.component),
  };
}

/** `redis.cache`: the entity as JSON under a key template, with a TTL; deleted on delete events and tombstones. */
export const cacheSink: ComponentSpec<CacheSinkConfig, Sink> = {
  schema: cacheSinkSchema,
  description: "Cache each record's value as JSON under a key template with a TTL; delete events and tombstones delete the key.",
  create: (config, ctx) => createCacheSink(config, ctx),
};
