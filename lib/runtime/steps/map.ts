import { z } from "zod";
import { compileValue, wholePlaceholder } from "../../topology/template.ts";
import type { ValueShape } from "../../topology/shape.ts";
import { shapeAt, withFields } from "../../topology/shape.ts";
import { valueTemplate } from "../../topology/template-fields.ts";
import type { ComponentSpec, Step } from "../contracts.ts";

const schema = z
  .object({
    fields: z
      .record(z.string(), valueTemplate(z.unknown()))
      .describe('Output field -> value: "{path}" keeps the type, "a:{b}" is a string template, anything else a literal'),
    merge: z.boolean().default(false).describe("Keep the input's other fields (true) or emit only `fields` (false)"),
    key: valueTemplate(z.string()).optional().describe("A template for the record's new key"),
  })
  .strict();

/** `map`: declarative field mapping with templates compiled once. */
export const mapStep: ComponentSpec<z.infer<typeof schema>, Step> = {
  schema,
  description: "Build a new value from templates and dotted paths; optionally set the key.",
  shape(config, input) {
    const describe = "the output of a map step";
    // A field that is one placeholder keeps what is known of its source; others are unknown.
    const mapped = Object.entries(config.fields).map(([k, v]): [string, ValueShape | undefined] => {
      const whole = typeof v === "string" ? wholePlaceholder(v) : undefined;
      return [k, whole === undefined || whole.startsWith("$") ? undefined : shapeAt(input, whole.split("."))];
    });
    return config.merge ? withFields(input, describe, mapped) : { describe, fields: new Map(mapped) };
  },
  create(config, ctx) {
    const entries = Object.entries(config.fields).map(([k, v]) => [k, compileValue(v)] as const);
    const key = config.key !== undefined ? compileValue(config.key) : undefined;
    return {
      name: ctx.component,
      async process(records) {
        return {
          records: records.map((r) => {
            const value: Record<string, unknown> = config.merge && r.value && typeof r.value === "object" ? { ...(r.value as object) } : {};
            for (const [k, get] of entries) value[k] = get(r);
            return { ...r, value, key: key ? key(r) : r.key };
          }),
        };
      },
    };
  },
};
