import { SfError, errorMessage } from "../../errors.ts";
import { writeAsOneBatch } from "../../runtime/sink-batch.ts";
import type { ComponentContext, ComponentSpec, RecordOrigin, Sink, SinkBatch, SinkFailure } from "../../runtime/contracts.ts";
import { resolveStore } from "../../features/versions.ts";
import { offlineRecorder } from "../../features/offline-recorder.ts";
import { createRedisClient, ensureConnected, execPerNode, redisLifecycle, waitReplicas } from "./client.ts";
import type { RedisClient } from "./client.ts";
import { isCluster, keySlot } from "./cluster.ts";
import { featuresSinkSchema } from "./config.ts";
import type { FeaturesSinkConfig } from "./config.ts";
import { BatchLog, compileView, encodeUpdate, ExactEntity, viewHeader } from "./feature-log.ts";
import type { EncodedUpdate, EntityPart } from "./feature-log.ts";
import { redisMetrics, timed, viewFreshness } from "./metrics.ts";
import { callScript, defineScripts } from "./scripts.ts";

/** Entity updates per EVALSHA: enough to amortise the call, small enough to keep Redis responsive. */
const CHUNK = 100;

/** One entity update on its way to Redis: its parts (one per partition), the script group and its newest event time. */
interface Update extends EncodedUpdate {
  parts: EntityPart[];
}

/** A flush waiting for its turn: flushes that arrive while one is in Redis go together. */
interface Waiting {
  log: BatchLog;
  done(failed: SinkFailure[]): void;
  fail(err: unknown): void;
}

/** What a write found for one batch: records Redis refused, or that the batch must come again in exact mode. */
type Outcome = SinkFailure[] | "exact";

function invalid(origin: RecordOrigin, message: string, where: string): SinkFailure {
  return { origin, error: new SfError("SF_ERR_SINK_RECORD_INVALID", message, { where }) };
}

/** Set by `streamfleet features rebuild` on its own copy of the sink (never by a topology file: the schema is strict): view name → the store of the version it rebuilds. */
type Pinned = { __stores?: Readonly<Record<string, string>> };

/**
 * The feature store sink. A batch's records are folded per (view, entity) as they come,
 * slice by slice (`batch().add`), and written once before the commit (`flush`): one
 * features-apply.lua update per entity carries the merged contributions of all its records
 * and the (offset, seq) range they span, so Redis reads and writes each entity once per
 * batch. Flushes of other partitions' batches that arrive while one is in Redis are sent
 * together, one update per entity for all of them (group commit). The script skips an
 * update whose records are at or below the entity's watermark for their partition (a
 * retried or replayed batch changes nothing twice). A replay that overlaps an earlier write
 * in part (the batch ends elsewhere than the first try) needs the records after the stored
 * watermark: the flush asks for the batch again in exact mode (SF_ERR_SINK_REPLAY_OVERLAP),
 * which keeps every record's contributions and sends only those after it.
 */
export function createFeaturesSink(config: FeaturesSinkConfig & Pinned, ctx: ComponentContext, client?: RedisClient): Sink {
  const redis = client ?? createRedisClient(ctx.connections, config.connection);
  // on a Redis Cluster: entity keys hash-tagged, a script's entities all in one slot, a pipeline per node
  const cluster = isCluster(redis);
  const wait = waitReplicas(ctx.connections, config.connection);
  defineScripts(redis);
  const views = config.views.map(compileView);
  const headers = new Map(views.map((v) => [v, viewHeader(v.def)]));
  const offline = offlineRecorder(views, ctx);
  const prefix = config.key_prefix;
  const metrics = redisMetrics(ctx.metrics);
  const applied = metrics.scriptResults.labels(ctx.topology, "features_apply", "applied");
  const duplicate = metrics.scriptResults.labels(ctx.topology, "features_apply", "duplicate");
  const freshness = new Map(views.map((v, i) => [v, viewFreshness(ctx.metrics, ctx.topology, v.def.name, config.views[i]!.freshness_slo_seconds, ctx.now)]));
  /** When Redis answered the pipeline being settled: the apply lag's end. */
  let appliedAt = 0;
  let registered = false;
  const waiting: Waiting[] = [];
  let sending = false;

  /** Registers the views (or finds the version their definitions are: lib/features/versions.ts) and the store each one writes. */
  async function register(): Promise<void> {
    try {
      for (const v of views) v.store = await resolveStore(redis, prefix, v.def, config.__stores?.[v.def.name], ctx.logger);
    } catch (err) {
      throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `registering the feature views failed: ${errorMessage(err)}`, { where: ctx.component, cause: err });
    }
    registered = true;
  }

  /** One features-apply.lua call per chunk, in one pipeline (on a cluster: one per node); results in chunk order. */
  function execChunks(chunks: Update[][]): Promise<Array<[Error | null, unknown]>> {
    return execPerNode(
      redis,
      chunks.length,
      (c) => chunks[c]![0]!.parts[0]!.key,
      (p, c) => {
        const chunk = chunks[c]!;
        const args = headers.get(chunk[0]!.parts[0]!.view)!.slice();
        const entityKeys: string[] = [];
        for (const u of chunk) {
          entityKeys.push(u.parts[0]!.key);
          args.push(u.args.length + 1);
          for (const a of u.args) args.push(a);
        }
        callScript(p, "featuresApply", entityKeys, args);
      },
      ctx.component,
      wait,
    );
  }

  /** Chunks of at most CHUNK updates of one view; on a cluster also of one slot (a script's KEYS must share one). */
  function chunksOf(mine: Update[], chunks: Update[][]): void {
    if (!cluster) {
      for (let i = 0; i < mine.length; i += CHUNK) chunks.push(mine.slice(i, i + CHUNK));
      return;
    }
    const bySlot = new Map<number, Update[]>();
    for (const u of mine) {
      const slot = keySlot(u.parts[0]!.key);
      const list = bySlot.get(slot);
      if (!list) bySlot.set(slot, [u]);
      else if (list.length < CHUNK) list.push(u);
      else {
        chunks.push(list);
        bySlot.set(slot, [u]);
      }
    }
    for (const list of bySlot.values()) chunks.push(list);
  }

  const alone = (part: EntityPart): Update => ({ parts: [part], ...encodeUpdate([part]) });

  /** Sends updates; returns those to send again (a partial replay, a split), recording outcomes per batch. */
  async function send(updates: Update[], outcomes: Map<object, Outcome>): Promise<Update[]> {
    // one view per call: its header (feature kinds and names) is sent once per chunk
    const chunks: Update[][] = [];
    for (const v of views) {
      const mine = views.length === 1 ? updates : updates.filter((u) => u.parts[0]!.view === v);
      chunksOf(mine, chunks);
    }
    const results = await timed(metrics, ctx.topology, "features", () => execChunks(chunks));
    appliedAt = ctx.now();
    const again: Update[] = [];
    const single: Update[][] = [];
    results.forEach(([err, res], c) => {
      const chunk = chunks[c]!;
      // A chunk Redis refused: each update alone, so only the bad entity's records fail.
      if (err) return chunk.length > 1 ? single.push(...chunk.map((u) => [u])) : refuse(chunk[0]!, err, outcomes);
      (res as Array<number | string>).forEach((r, i) => settle(chunk[i]!, r, again, outcomes));
    });
    if (single.length) {
      const replies = await execChunks(single);
      appliedAt = ctx.now();
      replies.forEach(([err, res], i) => (err ? refuse(single[i]![0]!, err, outcomes) : settle(single[i]![0]!, (res as Array<number | string>)[0]!, again, outcomes)));
    }
    return again;
  }

  function settle(u: Update, result: number | string, again: Update[], outcomes: Map<object, Outcome>): void {
    if (result === -1) {
      // some partition of a merged update was applied already: one update per partition
      for (const p of u.parts) again.push(alone(p));
      return;
    }
    const records = u.parts.reduce((n, p) => n + p.count, 0);
    if (result === 1) {
      freshness.get(u.parts[0]!.view)!.applied(u.newest, appliedAt);
      return applied.inc(records);
    }
    if (result === 0) return duplicate.inc(records);
    // applied up to the stored watermark: only the records after it are to be sent
    const part = u.parts[0]!;
    if (!(part instanceof ExactEntity)) return void outcomes.set(part.owner, "exact");
    const [offset, seq] = String(result).split(":").map(Number) as [number, number];
    const left = part.skipTo(offset, seq);
    duplicate.inc(records - part.count);
    if (left) again.push(alone(part));
  }

  function refuse(u: Update, err: Error, outcomes: Map<object, Outcome>): void {
    for (const part of u.parts) {
      // a folded batch knows no records to blame: it comes again in exact mode
      if (!(part instanceof ExactEntity)) {
        outcomes.set(part.owner, "exact");
        continue;
      }
      const known = outcomes.get(part.owner);
      const list = Array.isArray(known) ? known : [];
      if (known !== "exact") outcomes.set(part.owner, list);
      const seen = new Set<RecordOrigin>();
      for (let i = part.from; i < part.origins.length; i++) {
        const o = part.origins[i]!;
        if (!seen.has(o)) list.push(invalid(o, `Redis refused the feature update of ${part.key}: ${err.message}`, ctx.component));
        seen.add(o);
      }
    }
  }

  /** Writes several batches: one update per entity, its partitions merged. */
  async function write(batches: BatchLog[]): Promise<Map<object, Outcome>> {
    await ensureConnected(redis, ctx.component);
    if (!registered) await register();
    // the offline log and Redis at once: both are idempotent and the flush (so the commit)
    // waits for both, so after a crash either may hold a batch the other lacks, and the
    // replay completes it in that one (docs/feature-store.md, "Offline feature log")
    const logged = offline?.record(batches.length === 1 ? batches[0]!.offline : batches.flatMap((b) => b.offline));
    logged?.catch(() => undefined); // awaited below, also when Redis fails first
    const byEntity = new Map<string, EntityPart[]>();
    for (const b of batches) {
      for (const part of b.entities()) {
        const list = byEntity.get(part.key);
        if (list) list.push(part);
        else byEntity.set(part.key, [part]);
      }
    }
    let updates: Update[] = [];
    for (const parts of byEntity.values()) updates.push({ parts, ...encodeUpdate(parts) });
    const outcomes = new Map<object, Outcome>();
    // A replay that overlaps the first try in part needs a second round; a third only
    // when another worker (a zombie past its session) writes the same entities meanwhile.
    try {
      for (let round = 0; updates.length > 0; round++) {
        if (round === 5) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", "feature watermarks kept moving under this batch (another worker writes the same partition?); the batch will be retried", { where: ctx.component });
        updates = await send(updates, outcomes);
      }
    } catch (err) {
      await logged?.catch(() => undefined); // no retry while this log write still runs
      throw err;
    }
    await logged;
    return outcomes;
  }

  async function drain(): Promise<void> {
    sending = true;
    try {
      while (waiting.length > 0) {
        const group = waiting.splice(0);
        try {
          const outcomes = await write(group.map((w) => w.log));
          for (const w of group) {
            const o = outcomes.get(w.log) ?? [];
            if (o === "exact") w.fail(new SfError("SF_ERR_SINK_REPLAY_OVERLAP", "a replayed batch overlaps an earlier feature write in part; it is taken again record by record", { where: ctx.component }));
            else w.done(o);
          }
        } catch (err) {
          for (const w of group) w.fail(err);
        }
      }
    } finally {
      sending = false;
    }
  }

  function batch(options?: { exact?: boolean }): SinkBatch {
    const log = new BatchLog(views, prefix, options?.exact ?? false, cluster);
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

  const lifecycle = redisLifecycle(redis, !client, ctx.component);
  return {
    name: ctx.component,
    async open() {
      await ensureConnected(redis, ctx.component);
      await register();
      await offline?.open();
    },
    batch,
    // a direct write keeps every record: it cannot ask for the records again
    write: (records) => writeAsOneBatch(batch({ exact: true }), records),
    ...lifecycle,
    async close() {
      await offline?.close();
      await lifecycle.close();
    },
  };
}

/** `redis.features`: the feature store sink. */
export const featuresSink: ComponentSpec<FeaturesSinkConfig, Sink> = {
  schema: featuresSinkSchema,
  description: "Maintain feature views in Redis (latest, counter, min, max, last_n, windowed count/sum), idempotent and order-safe.",
  create: (config, ctx) => createFeaturesSink(config, ctx),
};
