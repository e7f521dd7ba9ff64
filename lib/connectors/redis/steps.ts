import type { ChainableCommander } from "ioredis";
import { SfError } from "../../errors.ts";
import type { ComponentContext, ComponentSpec, RecordFailure, Step, StreamRecord, VerifyIssue } from "../../runtime/contracts.ts";
import { FeatureClient } from "../../features/client.ts";
import { bucketStart, keys } from "../../features/layout.ts";
import { createRedisClient, ensureConnected, execPerNode, redisStepLifecycle, toSfError } from "./client.ts";
import type { RedisClient } from "./client.ts";
import { dedupeStepSchema, enrichStepSchema, rateLimitStepSchema } from "./config.ts";
import type { DedupeStepConfig, EnrichStepConfig, RateLimitStepConfig } from "./config.ts";
import { compileKey } from "./keys.ts";
import { withFields } from "../../topology/shape.ts";
import { redisMetrics, timed } from "./metrics.ts";
import { callScript, defineScripts } from "./scripts.ts";

function withField(r: StreamRecord, field: string, value: unknown): StreamRecord | undefined {
  if (r.value === null || typeof r.value !== "object" || Array.isArray(r.value)) return undefined;
  return { ...r, value: { ...(r.value as Record<string, unknown>), [field]: value } };
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Reads a cached entity or a view's features for every record of the batch in one pipeline. */
export function createEnrichStep(config: EnrichStepConfig, ctx: ComponentContext, client?: RedisClient): Step {
  const redis = client ?? createRedisClient(ctx.connections, config.connection);
  const key = compileKey((config.cache ?? config.key)!);
  const features = config.view ? new FeatureClient({ redis, keyPrefix: config.key_prefix, now: ctx.now }) : undefined;
  const metrics = redisMetrics(ctx.metrics);

  async function lookup(ks: string[]): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>();
    if (ks.length === 0) return found;
    if (features) {
      if (!(await features.view(config.view!))) return found; // no sink has written this view yet
      const rows = await features.getFeatures(config.view!, ks, config.names);
      for (const row of rows) if (row.found) found.set(row.id, Object.fromEntries(Object.entries(row.features).map(([n, f]) => [n, f.value])));
      return found;
    }
    const results = await execPerNode(redis, ks.length, (i) => config.key_prefix + ks[i]!, (p, i) => p.get(config.key_prefix + ks[i]!), ctx.component);
    ks.forEach((k, i) => found.set(k, parseJson(results[i]![1] as string | null)));
    return found;
  }

  return {
    name: ctx.component,
    ...redisStepLifecycle(redis, !client, ctx.component),
    async process(records) {
      await ensureConnected(redis, ctx.component);
      const ks = records.map(key);
      const unique = [...new Set(ks.filter((k): k is string => k !== undefined))];
      let found: Map<string, unknown>;
      try {
        found = await timed(metrics, ctx.topology, "enrich", () => lookup(unique));
      } catch (err) {
        throw toSfError(err, redis, ctx.component);
      }
      const out: StreamRecord[] = [];
      const failed: RecordFailure[] = [];
      records.forEach((r, i) => {
        const k = ks[i];
        const next = withField(r, config.into, k === undefined ? null : (found.get(k) ?? null));
        if (next) out.push(next);
        else failed.push({ record: r, error: new SfError("SF_ERR_STEP_FAILED", `enrich sets field ${config.into}, but the record value is not an object`, { retriable: false, where: ctx.component }) });
      });
      return { records: out, ...(failed.length ? { failed } : {}) };
    },
  };
}

/**
 * One claim script per record, in one pipeline (on a Redis Cluster one per node): `claim`
 * names the record's key (undefined: the record has no key and passes) and `queue` queues its
 * script. Returns the indexes of the records whose claim the script refused (0).
 */
async function refusedClaims(
  redis: RedisClient,
  ctx: ComponentContext,
  metrics: ReturnType<typeof redisMetrics>,
  op: string,
  records: readonly StreamRecord[],
  claim: (r: StreamRecord) => string | undefined,
  queue: (p: ChainableCommander, key: string, r: StreamRecord) => void,
): Promise<Set<number>> {
  await ensureConnected(redis, ctx.component);
  const checked: number[] = [];
  const claimed: string[] = [];
  records.forEach((r, i) => {
    const k = claim(r);
    if (k === undefined) return;
    checked.push(i);
    claimed.push(k);
  });
  const refused = new Set<number>();
  if (checked.length === 0) return refused;
  const results = await timed(metrics, ctx.topology, op, () => execPerNode(redis, claimed.length, (j) => claimed[j]!, (p, j) => queue(p, claimed[j]!, records[checked[j]!]!), ctx.component));
  results.forEach(([err, res], j) => {
    if (err) throw toSfError(err, redis, ctx.component);
    if (res === 0) refused.add(checked[j]!);
  });
  return refused;
}

/** Drops a record whose dedupe key was claimed by another record within the window. */
export function createDedupeStep(config: DedupeStepConfig, ctx: ComponentContext, client?: RedisClient): Step {
  const redis = client ?? createRedisClient(ctx.connections, config.connection);
  defineScripts(redis);
  const key = compileKey(config.key);
  const scope = config.scope ?? ctx.topology;
  const windowMs = config.window_seconds * 1000;
  const metrics = redisMetrics(ctx.metrics);
  const [passed, dropped] = ["passed", "dropped"].map((res) => metrics.scriptResults.labels(ctx.topology, "dedupe", res));
  return {
    name: ctx.component,
    ...redisStepLifecycle(redis, !client, ctx.component),
    async process(records) {
      const drop = await refusedClaims(
        redis,
        ctx,
        metrics,
        "dedupe",
        records,
        (r) => {
          const k = key(r);
          // no key: nothing to compare on, the record goes on
          return k === undefined ? undefined : keys.dedupe(config.key_prefix, scope, k);
        },
        (p, k, r) => callScript(p, "dedupe", [k], [r.id, windowMs]),
      );
      const out = records.filter((_, i) => !drop.has(i));
      passed!.inc(out.length);
      dropped!.inc(drop.size);
      return { records: out, filtered: drop.size };
    },
  };
}

/** Admits `limit` records per key and fixed interval; the rest are dropped or routed to one sink. */
export function createRateLimitStep(config: RateLimitStepConfig, ctx: ComponentContext, client?: RedisClient): Step {
  const redis = client ?? createRedisClient(ctx.connections, config.connection);
  defineScripts(redis);
  const key = compileKey(config.key);
  const scope = config.scope ?? ctx.topology;
  const intervalMs = config.interval_seconds * 1000;
  const overflow = config.over_limit === "drop" ? undefined : Object.freeze([config.over_limit.route]);
  const metrics = redisMetrics(ctx.metrics);
  const [passed, limited] = ["passed", "limited"].map((res) => metrics.scriptResults.labels(ctx.topology, "rate_limit", res));
  return {
    name: ctx.component,
    ...redisStepLifecycle(redis, !client, ctx.component),
    async process(records) {
      const over = await refusedClaims(
        redis,
        ctx,
        metrics,
        "rate_limit",
        records,
        (r) => {
          const k = key(r);
          // windows follow the Kafka timestamp, so a replayed record lands in the window it counted in
          return k === undefined ? undefined : keys.rate(config.key_prefix, scope, k, bucketStart(r.origin.timestamp, intervalMs));
        },
        (p, windowKey, r) => callScript(p, "rateLimit", [windowKey], [r.id, config.limit, intervalMs * 2]),
      );
      passed!.inc(records.length - over.size);
      limited!.inc(over.size);
      if (!overflow) return { records: records.filter((_, i) => !over.has(i)), filtered: over.size };
      return { records: records.map((r, i) => (over.has(i) ? { ...r, targets: overflow } : r)) };
    },
  };
}

export const enrichStep: ComponentSpec<EnrichStepConfig, Step> = {
  schema: enrichStepSchema,
  description: "Set a cached JSON entity or a feature view's features (read from Redis, one pipeline per batch) into a field of the record value.",
  shape: (config, input) => withFields(input, `${input?.describe} with ${config.into}`, [[config.into, undefined]]),
  create: (config, ctx) => createEnrichStep(config, ctx),
};

export const dedupeStep: ComponentSpec<DedupeStepConfig, Step> = {
  schema: dedupeStepSchema,
  description: "Drop a record whose key template was seen (claimed by another record) within window_seconds; counted as filtered.",
  shape: (_config, input) => input,
  create: (config, ctx) => createDedupeStep(config, ctx),
};

export const rateLimitStep: ComponentSpec<RateLimitStepConfig, Step> = {
  schema: rateLimitStepSchema,
  description: "Admit at most `limit` records per key template and interval; drop the rest (filtered) or route them to one sink.",
  verify(config, ctx) {
    const issues: VerifyIssue[] = [];
    if (config.over_limit !== "drop" && !ctx.sinkNames.includes(config.over_limit.route)) {
      issues.push({ path: ["over_limit", "route"], message: `expected a sink name of this topology (${ctx.sinkNames.join(", ")}), got "${config.over_limit.route}"` });
    }
    return issues;
  },
  shape: (_config, input) => input,
  create: (config, ctx) => createRateLimitStep(config, ctx),
};
