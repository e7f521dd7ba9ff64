import { z } from "zod";
import { CATALOGUE } from "../errors.ts";
import { codecSchema } from "../codecs/index.ts";
import { HOT_RELOAD, REGISTRY_AT_START, TEMPLATES, VALIDATE } from "./docs-prose.ts";
import type { Catalogue } from "./model.ts";
import { deliverySchema, errorPolicySchema, sourceSchema } from "./model.ts";

/**
 * The topology model as data for people and editors: a JSON Schema (for YAML completion)
 * and the reference docs, both derived from the same zod schemas that validate topologies.
 */
function documentedModel(cat: Catalogue) {
  const steps = [...cat.steps].map(([kind, spec]) =>
    z.object({ name: z.string().optional(), [kind]: spec.schema }).strict().describe(spec.description),
  );
  const sinks = [...cat.sinks].map(([type, spec]) =>
    z
      .object({ type: z.literal(type), name: z.string().optional(), routed_only: z.boolean().optional() })
      .and(spec.schema)
      .describe(spec.description),
  );
  return z
    .object({
      name: z.string().describe("Topology name: unique in the fleet"),
      description: z.string().optional(),
      source: sourceSchema,
      codec: z.object({ key: codecSchema.optional(), value: codecSchema.optional() }).optional(),
      steps: z.array(z.union(steps as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]])).optional(),
      sinks: z.array(z.union(sinks as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]])).min(1),
      errors: errorPolicySchema.optional(),
      delivery: deliverySchema.optional(),
      log_level: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).optional(),
    })
    .strict();
}

/** JSON Schema of a topology file (point your editor's YAML plugin at docs/topology.schema.json). */
export function topologyJsonSchema(cat: Catalogue): Record<string, unknown> {
  const schema = z.toJSONSchema(documentedModel(cat), { io: "input", unrepresentable: "any", cycles: "ref", reused: "inline" }) as Record<string, unknown>;
  return { ...schema, $id: "https://streamfleet.dev/schemas/topology.json", title: "streamfleet topology" };
}

type Json = Record<string, unknown>;

function fieldsTable(schema: Json): string {
  const props = (schema.properties ?? {}) as Record<string, Json>;
  const required = new Set((schema.required ?? []) as string[]);
  const rows = Object.entries(props).map(([k, p]) => {
    const type = typeOf(p);
    const def = p.default !== undefined ? `\`${JSON.stringify(p.default)}\`` : required.has(k) ? "required" : "—";
    return `| \`${k}\` | ${type} | ${def} | ${String(p.description ?? "").replace(/\|/g, "\\|").replace(/\n/g, " ")} |`;
  });
  return rows.length ? ["| Field | Type | Default | Meaning |", "| --- | --- | --- | --- |", ...rows].join("\n") : "(no fields)";
}

function typeOf(p: Json): string {
  if (p.enum) return (p.enum as unknown[]).map((e) => `\`${String(e)}\``).join(" \\| ");
  if (p.const !== undefined) return `\`${String(p.const)}\``;
  if (p.type === "array") return `array of ${typeOf((p.items ?? {}) as Json)}`;
  if (typeof p.type === "string") return p.type;
  if (p.anyOf || p.oneOf) return ((p.anyOf ?? p.oneOf) as Json[]).map(typeOf).join(" \\| ");
  return "any";
}

function componentSchema(spec: { schema: z.ZodType }): Json {
  return z.toJSONSchema(spec.schema, { io: "input", unrepresentable: "any", cycles: "ref", reused: "inline" }) as Json;
}

/** docs/topology.md: every field of a topology, every step and sink, from the schemas. */
export function renderTopologyDoc(cat: Catalogue): string {
  const out: string[] = [
    "# Topology reference",
    "",
    "Generated from the topology model (`lib/topology/model.ts` and each connector's `config.ts`) by",
    "`npx node scripts/gen-docs.ts`; a test fails when this file is stale. Editors can validate YAML",
    "against [topology.schema.json](topology.schema.json).",
    "",
    "Connections (URLs, users, passwords, TLS files) never appear in a topology: a component names a",
    "`connection`, and the worker reads it from the environment or a secret file (`<VAR>_FILE`).",
    "",
    "## Top level",
    "",
    fieldsTable(componentSchema({ schema: z.object({ name: z.string().describe("Topology name: unique in the fleet"), description: z.string().optional(), source: z.object({}).describe("See Source"), codec: z.object({}).optional().describe("Key and value codecs; see Codecs"), steps: z.array(z.unknown()).optional().describe("Ordered steps; see Steps"), sinks: z.array(z.unknown()).min(1).describe("One or more sinks; see Sinks"), errors: z.object({}).optional().describe("Retries and the dead-letter topic; see Errors"), delivery: deliverySchema, log_level: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).optional().describe("Log level of this topology") }) })),
    "",
    "## Source",
    "",
    fieldsTable(componentSchema({ schema: sourceSchema })),
    "",
    "## Codecs",
    "",
    "`codec.key` (default `{type: string}`) and `codec.value` (default `{type: avro}`), one of:",
    "",
  ];
  const codecJson = componentSchema({ schema: codecSchema });
  for (const variant of (codecJson.oneOf ?? codecJson.anyOf ?? []) as Json[]) {
    const t = ((variant.properties as Record<string, Json>).type?.const as string) ?? "?";
    out.push(`### \`${t}\``, "", String(variant.description ?? ""), "", fieldsTable(variant), "");
  }
  out.push(REGISTRY_AT_START, "## Errors", "", fieldsTable(componentSchema({ schema: errorPolicySchema })), "");
  out.push("## Steps", "", "Each step is `- <kind>: {...}`, optionally with `name:`.", "");
  for (const [kind, spec] of [...cat.steps].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`### \`${kind}\``, "", spec.description, "", fieldsTable(componentSchema(spec)), "");
  }
  out.push("## Sinks", "", "Each sink is `- type: <type>` with optional `name:` (for routing, logs, metrics) and `routed_only: true` (receives only what a route step sends it).", "");
  for (const [type, spec] of [...cat.sinks].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`### \`${type}\``, "", spec.description, "", fieldsTable(componentSchema(spec)), "");
  }
  out.push(TEMPLATES, VALIDATE, HOT_RELOAD);
  return `${out.join("\n").trimEnd()}\n`;
}

/** docs/errors.md: the error catalogue. */
export function renderErrorsDoc(): string {
  const rows = Object.entries(CATALOGUE).map(([code, e]) => `| \`${code}\` | ${e.retriable ? "yes" : "no"} | ${e.doc} |`);
  return [
    "# Error codes",
    "",
    "Every error streamfleet raises carries one of these codes (generated from `lib/errors.ts` by `npx node scripts/gen-docs.ts`).",
    "Retriable errors pause the partition and retry with back-off; the others send the record to the topology's DLQ",
    "(header `sf-error-code`) or stop start-up with a message naming what to fix.",
    "",
    "| Code | Retriable | Meaning |",
    "| --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}
