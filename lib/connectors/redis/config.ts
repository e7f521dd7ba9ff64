import { z } from "zod";
import { predicateSchema } from "../../topology/predicate.ts";
import { parseDuration } from "../../features/layout.ts";
import { fieldPath, template, valueTemplate } from "../../topology/template-fields.ts";

/**
 * Config schemas of the Redis sinks and steps: the spec from which types, topology
 * validation errors and docs come. Every field says what it is, with its default.
 */

const FEATURE_NAME = /^[a-z][a-z0-9_]*$/;
const VIEW_NAME = /^[a-z][a-z0-9_.-]*$/;

const connection = z.string().min(1).default("default").describe("Connection name: `default` reads REDIS_URL, any other name REDIS_URL__<NAME> (plus REDIS_USERNAME/REDIS_PASSWORD/REDIS_TLS_CA_FILE with the same suffix)");
const keyPrefix = z.string().default("").describe("Prefix put before every key and channel this component uses (tests isolate with it); empty by default");
const duration = z
  .union([z.string(), z.number().positive()])
  .refine((d) => Number.isFinite(parseDuration(d)) && parseDuration(d) > 0, { message: 'expected a duration such as "30s", "5m", "1h", "1d" or a number of seconds' });

export const FEATURE_KINDS = ["latest", "counter", "min", "max", "last_n", "window_count", "window_sum"] as const;

export const featureSchema = z
  .object({
    name: z.string().regex(FEATURE_NAME, "expected lower-case letters, digits and _").describe("Feature name, unique in its view"),
    kind: z.enum(FEATURE_KINDS).describe("latest: a field's newest value by event time; counter: adds `by`; min/max: extreme of a field; last_n: the n newest values; window_count/window_sum: count or sum per tumbling window"),
    field: fieldPath(z.string().min(1)).optional().describe("Dotted path of the value the feature reads (latest, min, max, last_n, window_sum)"),
    by: valueTemplate(z.union([z.number(), z.string()])).optional().describe('counter: amount added per record, a number or a value template such as "{delta}" (may be negative); default 1'),
    when: predicateSchema.optional().describe("Only records matching this predicate update the feature"),
    n: z.number().int().min(1).max(1000).optional().describe("last_n: how many values are kept (newest first)"),
    window: duration.optional().describe('window_*: tumbling window length, e.g. "1h" or "24h"; windows are aligned to the Unix epoch'),
    buckets: z.number().int().min(1).max(1000).default(2).describe("window_*: how many windows (current included) are kept, so late events still count in their own window"),
  })
  .strict()
  .superRefine((f, ctx) => {
    const needsField = f.kind === "latest" || f.kind === "min" || f.kind === "max" || f.kind === "last_n" || f.kind === "window_sum";
    if (needsField && !f.field) ctx.addIssue({ code: "custom", path: ["field"], message: `expected \`field\` for a ${f.kind} feature` });
    if (f.kind === "last_n" && f.n === undefined) ctx.addIssue({ code: "custom", path: ["n"], message: "expected `n` for a last_n feature" });
    if ((f.kind === "window_count" || f.kind === "window_sum") && f.window === undefined) ctx.addIssue({ code: "custom", path: ["window"], message: `expected \`window\` for a ${f.kind} feature` });
    if (f.by !== undefined && f.kind !== "counter") ctx.addIssue({ code: "custom", path: ["by"], message: "`by` only applies to counter features" });
  });

const PG_NAME = /^[a-z_][a-z0-9_]*$/;

export const offlineSchema = z
  .object({
    connection: z.string().min(1).default("default").describe("PostgreSQL connection name, as for the `postgres` sink: `default` reads DATABASE_URL, any other name DATABASE_URL__<NAME> (plus PGPASSWORD/PGSSLMODE/PGSSLROOTCERT with the same suffix)"),
    schema: z.string().regex(PG_NAME, "expected a lower-case PostgreSQL identifier").default("streamfleet").describe("PostgreSQL schema of the feature log table (created when missing)"),
    table: z.string().regex(PG_NAME, "expected a lower-case PostgreSQL identifier").max(40).default("feature_log").describe("The feature log table, one partition per view (created when missing); layout in docs/feature-store.md"),
  })
  .strict();
export type OfflineConfig = z.infer<typeof offlineSchema>;

export const viewSchema = z
  .object({
    name: z.string().regex(VIEW_NAME, "expected lower-case letters, digits, '.', '_' or '-'").describe("Feature view name, unique in the Redis database (readers ask for it)"),
    entity: z.string().min(1).describe("The entity the view describes, e.g. resident, building, user, product"),
    key: template(z.string().min(1)).describe('Template of the entity id, e.g. "{userId}"; a record without it is rejected to the DLQ'),
    event_time: fieldPath(z.string().min(1)).optional().describe("Field holding the event time (epoch ms, ISO string); default: the Kafka record timestamp"),
    ttl_seconds: z.number().int().min(1).optional().describe("The entity's features expire this long after its last write; default: never"),
    features: z.array(featureSchema).min(1).describe("The features of the view"),
    freshness_slo_seconds: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("Freshness objective: the view should never be older than this (now minus the event time of the newest update applied to it). Exported as streamfleet_feature_freshness_slo_seconds; the StreamfleetFeatureViewStale alert fires when streamfleet_feature_freshness_seconds stays above it for 5 minutes. Default: none (freshness is exported, nothing alerts)"),
    offline: offlineSchema
      .optional()
      .describe("Offline feature log: every record the sink applies to the view is also recorded, per entity and source record, in this PostgreSQL table (with the Redis write and before the commit, idempotently) for point-in-time training sets (`streamfleet features export`). Default: none (online only)"),
  })
  .strict()
  .superRefine((v, ctx) => {
    const seen = new Set<string>();
    v.features.forEach((f, i) => {
      if (seen.has(f.name)) ctx.addIssue({ code: "custom", path: ["features", i, "name"], message: `feature "${f.name}" is declared twice in view ${v.name}` });
      seen.add(f.name);
    });
  });

export const featuresSinkSchema = z
  .object({
    connection,
    key_prefix: keyPrefix,
    views: z.array(viewSchema).min(1).describe("The feature views this sink maintains"),
  })
  .strict();
export type FeaturesSinkConfig = z.infer<typeof featuresSinkSchema>;
export type FeatureConfig = z.infer<typeof featureSchema>;
export type ViewConfig = z.infer<typeof viewSchema>;

export const cacheSinkSchema = z
  .object({
    connection,
    key_prefix: keyPrefix,
    key: template(z.string().min(1)).describe('Key template of the cached entity, e.g. "complaint:{id}" (use "{$key}" when tombstones must delete)'),
    ttl_seconds: z.number().int().min(1).optional().describe("Entry TTL; default: no expiry"),
    fields: z.array(fieldPath(z.string().min(1))).optional().describe("Only these top-level fields are cached; default: the whole value"),
    delete_when: predicateSchema.optional().describe("Records matching this predicate delete the key (a tombstone, value null, always does)"),
  })
  .strict();
export type CacheSinkConfig = z.infer<typeof cacheSinkSchema>;

export const publishSinkSchema = z
  .object({
    connection,
    key_prefix: keyPrefix,
    channel: template(z.string().min(1)).describe('Channel template, e.g. "complaints:{buildingId}"'),
    fields: z.record(z.string(), valueTemplate(z.unknown())).optional().describe('Message = these fields (value templates: "{path}" keeps the type); default: the whole value as JSON'),
  })
  .strict();
export type PublishSinkConfig = z.infer<typeof publishSinkSchema>;

export const enrichStepSchema = z
  .object({
    connection,
    key_prefix: keyPrefix,
    cache: template(z.string().min(1)).optional().describe('Key template of a cached JSON entity to read, e.g. "building:{buildingId}"'),
    view: z.string().min(1).optional().describe("Feature view to read (instead of `cache`)"),
    key: template(z.string().min(1)).optional().describe('view: template of the entity id, e.g. "{residentId}"'),
    names: z.array(z.string().min(1)).optional().describe("view: only these features; default: all"),
    into: z.string().min(1).describe("Top-level field of the record value that receives the entity or the features (null when absent)"),
  })
  .strict()
  .refine((c) => (c.cache ? 1 : 0) + (c.view ? 1 : 0) === 1, { message: "expected exactly one of `cache` or `view`" })
  .refine((c) => !c.view || c.key, { message: "expected `key` (entity id template) with `view`", path: ["key"] });
export type EnrichStepConfig = z.infer<typeof enrichStepSchema>;

export const dedupeStepSchema = z
  .object({
    connection,
    key_prefix: keyPrefix,
    key: template(z.string().min(1)).describe('Template of what makes records duplicates, e.g. "{eventId}"'),
    window_seconds: z.number().int().min(1).describe("A record whose key was seen within this many seconds is dropped"),
    scope: z.string().min(1).optional().describe("Namespace of the keys; default: the topology name"),
  })
  .strict();
export type DedupeStepConfig = z.infer<typeof dedupeStepSchema>;

export const rateLimitStepSchema = z
  .object({
    connection,
    key_prefix: keyPrefix,
    key: template(z.string().min(1)).describe('Template of what is limited, e.g. "{userId}"'),
    limit: z.number().int().min(1).describe("Records admitted per key and interval"),
    interval_seconds: z.number().int().min(1).describe("Fixed window length, aligned to the epoch, by the record's Kafka timestamp"),
    over_limit: z
      .union([z.literal("drop"), z.object({ route: z.string().min(1).describe("Sink that receives records over the limit") }).strict()])
      .default("drop")
      .describe("What happens over the limit: `drop` (counted as filtered) or `{route: <sink name>}`"),
    scope: z.string().min(1).optional().describe("Namespace of the keys; default: the topology name"),
  })
  .strict();
export type RateLimitStepConfig = z.infer<typeof rateLimitStepSchema>;
