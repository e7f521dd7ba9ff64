import { z } from "zod";
import { compilePredicate, predicateSchema } from "../../topology/predicate.ts";
import type { ComponentSpec, Step } from "../contracts.ts";

const schema = z
  .object({
    keep: predicateSchema.optional().describe("Records matching this predicate go on"),
    drop: predicateSchema.optional().describe("Records matching this predicate are dropped"),
  })
  .strict()
  .refine((c) => (c.keep ? 1 : 0) + (c.drop ? 1 : 0) === 1, { message: "expected exactly one of `keep` or `drop`" });

/** `filter`: keeps or drops records by a declarative predicate. */
export const filterStep: ComponentSpec<z.infer<typeof schema>, Step> = {
  schema,
  description: "Keep or drop records by a declarative predicate (field comparisons with all/any/not).",
  shape: (_config, input) => input,
  create(config, ctx) {
    const keep = config.keep ? compilePredicate(config.keep) : undefined;
    const drop = config.drop ? compilePredicate(config.drop) : undefined;
    const pass = keep ?? ((r) => !drop!(r));
    return {
      name: ctx.component,
      async process(records) {
        const out = records.filter(pass);
        return { records: out, filtered: records.length - out.length };
      },
    };
  },
};
