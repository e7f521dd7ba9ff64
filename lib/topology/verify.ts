import { readAvsc } from "../codecs/avro.ts";
import type { CodecConfig } from "../codecs/index.ts";
import { codecSchema } from "../codecs/index.ts";
import { errorMessage } from "../errors.ts";
import type { ComponentSpec, VerifyContext } from "../runtime/contracts.ts";
import type { Catalogue, SinkDef, StepDef, Topology } from "./model.ts";
import { componentSchemas, topologySchema } from "./model.ts";
import type { ValueShape } from "./shape.ts";
import { shapeOfAvro } from "./shape.ts";
import { templateProblems } from "./template-fields.ts";

/** A problem of one topology, by its path inside the topology. */
export interface RawIssue {
  path: PropertyKey[];
  message: string;
}

interface Parts {
  steps: { index: number; def?: StepDef }[];
  sinks: { index: number; def?: SinkDef }[];
  sinkNames: string[];
  codec: { key?: CodecConfig; value?: CodecConfig };
}

/**
 * Every check of a topology that can run, also when others failed: the schema (types,
 * values, template syntax), then per step and sink that parsed on its own, its own checks
 * (modules, sink names), its templates' field paths against what is known of the value at
 * that point, and the codecs' .avsc files. The topology comes back only when all pass.
 */
export async function checkTopology(raw: unknown, cat: Catalogue, baseDir: string): Promise<{ topology?: Topology; issues: RawIssue[] }> {
  const result = topologySchema(cat).safeParse(raw);
  const issues: RawIssue[] = result.success ? [] : result.error.issues.map((i) => ({ path: i.path, message: i.message }));
  const parts = result.success ? partsOf(result.data) : rawParts(raw, cat);
  const ctx: VerifyContext = { baseDir, sinkNames: parts.sinkNames };

  let shape: ValueShape | undefined;
  for (const side of ["key", "value"] as const) {
    const codec = parts.codec[side];
    if (codec?.type !== "avro" || !codec.schema) continue;
    try {
      const { type } = readAvsc(codec.schema, baseDir);
      if (side === "value") shape = shapeOfAvro(type);
    } catch (err) {
      issues.push({ path: ["codec", side, "schema"], message: `expected a readable Avro schema file: ${errorMessage(err)}` });
    }
  }

  for (const { index, def } of parts.steps) {
    if (!def) {
      shape = undefined; // what a step that did not parse leaves of the value is unknown
      continue;
    }
    const spec = cat.steps.get(def.kind)!;
    issues.push(...(await componentIssues(spec, def.config, ctx, shape, ["steps", index, def.kind])));
    shape = spec.shape?.(def.config, shape, ctx);
  }
  for (const { index, def } of parts.sinks) {
    if (def) issues.push(...(await componentIssues(cat.sinks.get(def.type)!, def.config, ctx, shape, ["sinks", index])));
  }
  return { topology: result.success && issues.length === 0 ? result.data : undefined, issues };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function componentIssues(spec: ComponentSpec<any, unknown>, config: unknown, ctx: VerifyContext, shape: ValueShape | undefined, prefix: PropertyKey[]): Promise<RawIssue[]> {
  const out: RawIssue[] = [];
  try {
    for (const v of (await spec.verify?.(config, ctx)) ?? []) out.push({ path: [...prefix, ...v.path], message: v.message });
  } catch (err) {
    out.push({ path: prefix, message: errorMessage(err) });
  }
  for (const v of templateProblems(spec.schema, config, shape)) out.push({ path: [...prefix, ...v.path], message: v.message });
  return out;
}

function partsOf(t: Topology): Parts {
  return {
    steps: t.steps.map((def, index) => ({ index, def })),
    sinks: t.sinks.map((def, index) => ({ index, def })),
    sinkNames: t.sinks.map((s) => s.name),
    codec: t.codec,
  };
}

/** The parts of a topology that parse on their own, when the whole does not. */
function rawParts(raw: unknown, cat: Catalogue): Parts {
  const obj = record(raw);
  const { step, sink } = componentSchemas(cat);
  const rawSinks = Array.isArray(obj.sinks) ? (obj.sinks as unknown[]) : [];
  const codec = record(obj.codec);
  return {
    steps: (Array.isArray(obj.steps) ? (obj.steps as unknown[]) : []).map((s, index) => ({ index, def: step.safeParse(s).data })),
    sinks: rawSinks.map((s, index) => ({ index, def: sink.safeParse(s).data })),
    // A sink whose config is wrong is still there: routes to it are not a second problem.
    sinkNames: rawSinks.map((s) => record(s)).map((s) => (typeof s.name === "string" ? s.name : s.type === null ? "null" : String(s.type))),
    codec: { key: codecSchema.safeParse(codec.key ?? { type: "string" }).data, value: codecSchema.safeParse(codec.value ?? { type: "avro" }).data },
  };
}

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
