import { z } from "zod";
import { codecSchema } from "../codecs/index.ts";
import type { ComponentSpec, ConnectorDescriptor, Sink, Step } from "../runtime/contracts.ts";

/**
 * The topology model: declared once here, from the connectors' own config schemas. It
 * validates YAML and TypeScript topologies, and is the source of the JSON Schema and the
 * reference docs (lib/topology/docs.ts).
 */
export interface Catalogue {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  sinks: Map<string, ComponentSpec<any, Sink>>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  steps: Map<string, ComponentSpec<any, Step>>;
  connectors: readonly ConnectorDescriptor[];
}

export function buildCatalogue(connectors: readonly ConnectorDescriptor[]): Catalogue {
  const sinks = new Map();
  const steps = new Map();
  for (const c of connectors) {
    for (const [k, v] of Object.entries(c.sinks ?? {})) {
      if (sinks.has(k)) throw new Error(`sink type ${k} is registered twice (connector ${c.name})`);
      sinks.set(k, v);
    }
    for (const [k, v] of Object.entries(c.steps ?? {})) {
      if (steps.has(k)) throw new Error(`step kind ${k} is registered twice (connector ${c.name})`);
      steps.set(k, v);
    }
  }
  return { sinks, steps, connectors };
}

const NAME = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * The source's fetch sizes by default: what a worker draining a backlog holds at once
 * (BENCHMARKS.md, "memory under a backlog" and issue 11; kafkajs's own defaults are 1 MiB and
 * 10 MiB). 64 KiB per partition: a fetch's records are alive until the runner has taken all of
 * them, and a fetch small enough to be taken between two young-generation collections dies
 * young instead of being promoted to the old generation (a 256 KiB fetch of a 3-partition
 * backlog promoted ~5 MB per scavenge: the old generation, and the RSS, grew with it).
 */
export const FETCH_DEFAULTS = { maxBytesPerPartition: 64 * 1024, maxBytesPerFetch: 1024 * 1024 } as const;

export const sourceSchema = z
  .object({
    topics: z.array(z.string().min(1)).min(1).optional().describe("Topics to consume"),
    pattern: z.string().min(1).optional().describe("A regular expression of topics to consume, instead of `topics`"),
    group: z.string().min(1).optional().describe("Consumer group; defaults to streamfleet.<topology name>. Workers sharing it split the partitions."),
    start: z.enum(["earliest", "latest"]).default("earliest").describe("Where a new group starts reading"),
    concurrency: z.number().int().min(1).max(64).default(3).describe("Partitions processed at once (bounded in-flight batches)"),
    max_batch_records: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(500)
      .describe("Records taken through steps and sinks together; a larger fetched batch goes through in slices of this size, committed once"),
    max_bytes_per_partition: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(FETCH_DEFAULTS.maxBytesPerPartition)
      .describe(
        "Bytes fetched from one partition at once (Kafka's max.partition.fetch.bytes). What a worker holds while it catches up grows with it: decoded, a fetched batch takes about 15 times its size in memory, and a fetch too large to be taken between two young-generation collections is promoted to the old generation whole. Smaller fetches bound memory and bring the first commit sooner; each fetch is one round trip to the broker. A record batch larger than this still comes whole",
      ),
    max_bytes_per_fetch: z
      .number()
      .int()
      .min(1024)
      .max(256 * 1024 * 1024)
      .default(FETCH_DEFAULTS.maxBytesPerFetch)
      .describe(
        "Bytes one fetch from a broker brings for all of its partitions together (Kafka's fetch.max.bytes). One fetch per broker is in flight, and the next starts once its batches were taken: with many partitions per worker, this bounds what is held at once",
      ),
    commit_interval_ms: z
      .number()
      .int()
      .min(0)
      .max(600_000)
      .default(1000)
      .describe(
        "A partition's offsets are committed this often (and when `commit_max_records` were taken): fetched batches are resolved as they go and committed together once every sink acknowledged them. Combining sinks (redis.features, redis.cache) write once per commit, merging everything taken since the last one, so their writes become visible up to this late; 0 commits after every fetched batch",
      ),
    commit_max_records: z.number().int().min(1).max(10_000_000).default(100_000).describe("A partition commits at the latest after taking this many records (see `commit_interval_ms`)"),
    session_timeout_ms: z.number().int().min(6000).max(300_000).default(30_000).describe("How long the group waits for a silent worker before moving its partitions"),
    connection: z.string().default("default").describe("Named Kafka connection (KAFKA_BROKERS, or KAFKA_BROKERS__<NAME>)"),
  })
  .strict()
  .refine((s) => (s.topics ? 1 : 0) + (s.pattern ? 1 : 0) === 1, { message: "expected exactly one of `topics` or `pattern`" });

export const errorPolicySchema = z
  .object({
    retries: z.number().int().min(0).max(100).default(3).describe("Attempts after the first before a failing record goes to the DLQ"),
    backoff_ms: z.number().int().min(1).default(100).describe("First retry delay; doubles each attempt"),
    max_backoff_ms: z.number().int().min(1).default(10_000).describe("Longest delay between retries (also for a sink outage)"),
    dlq: z
      .object({
        topic: z.string().min(1).optional().describe("Dead-letter topic; defaults to <topology name>.dlq"),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({ retries: 3, backoff_ms: 100, max_backoff_ms: 10_000, dlq: {} });

export const deliverySchema = z
  .enum(["at_least_once", "exactly_once"])
  .default("at_least_once")
  .describe(
    "at_least_once: every sink gets every record at least once, made effectively-once by idempotent sinks. exactly_once (every sink a `kafka` topic on the source's connection, KAFKA_CLIENT=platformatic): output records, dead letters and consumed offsets commit in one Kafka transaction per commit unit, and read_committed readers see each input's output exactly once (docs/kafka-clients.md)",
  );

const sinkBase = z
  .object({
    // `type: null` in YAML is a null, not the string: accept it for the null sink.
    type: z.preprocess((v) => (v === null ? "null" : v), z.string()).describe("The sink type"),
    name: z.string().regex(NAME).optional().describe("Name for routing, logs and metrics; defaults to the type"),
    routed_only: z.boolean().default(false).describe("Receive only records a route step sends here"),
  })
  .passthrough();

export interface StepDef {
  kind: string;
  name: string;
  /** Path inside the topology, e.g. steps[2].transform. */
  path: string;
  config: unknown;
}
export interface SinkDef {
  type: string;
  name: string;
  routedOnly: boolean;
  path: string;
  config: unknown;
}

/** Re-emits a component schema's issues under the component's path. */
function checkComponent(spec: ComponentSpec<unknown, unknown>, value: unknown, ctx: z.RefinementCtx, prefix: (string | number)[]) {
  const r = spec.schema.safeParse(value);
  if (!r.success) {
    for (const issue of r.error.issues) ctx.addIssue({ ...issue, path: [...prefix, ...issue.path] } as never);
    return undefined;
  }
  return r.data;
}

/** The schemas of one step and one sink of a topology (also parsed alone when the file as a whole does not parse). */
export function componentSchemas(cat: Catalogue) {
  const stepKinds = [...cat.steps.keys()];
  const step = z
    .record(z.string(), z.unknown())
    .transform((obj, ctx): StepDef => {
      const kinds = Object.keys(obj).filter((k) => k !== "name");
      const unknown = kinds.filter((k) => !cat.steps.has(k));
      if (kinds.length !== 1 || unknown.length) {
        ctx.addIssue({
          code: "custom",
          message: `expected exactly one step kind (${stepKinds.join(", ")}), got ${kinds.length ? kinds.join(", ") : "none"}`,
          path: unknown.length ? [unknown[0]!] : [],
        });
        return z.NEVER;
      }
      const kind = kinds[0]!;
      const config = checkComponent(cat.steps.get(kind)!, obj[kind], ctx, [kind]);
      return { kind, name: typeof obj.name === "string" ? obj.name : kind, path: "", config };
    });
  const sink = sinkBase.transform((obj, ctx): SinkDef => {
    const spec = cat.sinks.get(obj.type);
    if (!spec) {
      ctx.addIssue({ code: "custom", message: `expected a sink type (${[...cat.sinks.keys()].join(", ")}), got "${obj.type}"`, path: ["type"] });
      return z.NEVER;
    }
    const { type, name, routed_only, ...rest } = obj;
    const config = checkComponent(spec, rest, ctx, []);
    return { type, name: name ?? type, routedOnly: routed_only, path: "", config };
  });
  return { step, sink };
}

export function topologySchema(cat: Catalogue) {
  const { step, sink } = componentSchemas(cat);
  return z
    .object({
      name: z.string().regex(NAME, "expected lower-case letters, digits, '.', '_' or '-'").describe("Topology name: unique in the fleet"),
      description: z.string().optional(),
      source: sourceSchema,
      codec: z
        .object({ key: codecSchema.default({ type: "string" }), value: codecSchema.default({ type: "avro" }) })
        .strict()
        .default({ key: { type: "string" }, value: { type: "avro" } }),
      steps: z.array(step).default([]),
      sinks: z.array(sink).min(1, "expected at least one sink"),
      errors: errorPolicySchema,
      delivery: deliverySchema,
      log_level: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).optional(),
    })
    .strict()
    .superRefine((t, ctx) => {
      const seen = new Map<string, number>();
      t.sinks.forEach((s, i) => {
        if (!s) return; // a sink that did not parse
        if (seen.has(s.name)) ctx.addIssue({ code: "custom", message: `sink name "${s.name}" is used twice (also sinks[${seen.get(s.name)}]); give one a \`name\``, path: ["sinks", i, "name"] });
        seen.set(s.name, i);
      });
      if (t.delivery === "exactly_once") {
        t.sinks.forEach((s, i) => {
          if (s && !cat.sinks.get(s.type)?.transactional) {
            ctx.addIssue({ code: "custom", message: `delivery: exactly_once needs every sink to write inside the Kafka transaction (type kafka); "${s.type}" cannot: give it its own topology reading the output topic, or use delivery: at_least_once`, path: ["sinks", i, "type"] });
            return;
          }
          // One transaction spans one cluster: a transactional sink writes through the source's connection.
          const connection = (s?.config as { connection?: unknown } | undefined)?.connection;
          if (typeof connection === "string" && connection !== t.source.connection) {
            ctx.addIssue({ code: "custom", message: `delivery: exactly_once writes in the source's Kafka transaction: expected connection "${t.source.connection}" (the source's), got "${connection}"`, path: ["sinks", i, "connection"] });
          }
        });
      }
    })
    .transform((t) => {
      t.steps.forEach((s, i) => (s.path = `steps[${i}].${s.kind}`));
      t.sinks.forEach((s, i) => (s.path = `sinks[${i}]`));
      return t;
    });
}

export type TopologySchema = ReturnType<typeof topologySchema>;
export type Topology = z.output<TopologySchema>;
/** What a user writes (YAML or `defineTopology`), before defaults. */
export type TopologyInput = z.input<TopologySchema>;
