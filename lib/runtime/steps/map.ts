import { z } from "zod";
import { compileValue } from "../../topology/template.ts";
import type { ComponentSpec, Step } from "../contracts.ts";

const schema = z
  .object({
    fields: z
      .record(z.string(), z.unknown())
      .describe('Output field -> value: "{path}" keeps the type, "a:{b}" is a string template, anything else a literal'),
    merge: z.boolean().default(false).describe("Keep the input's other fields (true) or emit only `fields` (false)"),
    key: z.string().optional().describe("A template for the record's new key"),
  })
  .strict();

/** `map`: declarative field mapping with templates compiled once. */
export const mapStep: ComponentSpec<z.infer<typeof schema>, Step> = {
  schema,
  description: "Build a new value from templates and dotted paths; optionally set the key.",
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
