import { z } from "zod";
import { compilePredicate, predicateSchema } from "../../topology/predicate.ts";
import type { ComponentSpec, Step, VerifyIssue } from "../contracts.ts";

const schema = z
  .object({
    rules: z
      .array(z.object({ when: predicateSchema, to: z.array(z.string()).min(1).describe("Sink names") }).strict())
      .min(1)
      .describe("First matching rule decides the sinks"),
    default: z.array(z.string()).optional().describe("Sinks for records no rule matches; omitted: every sink that is not routed_only"),
  })
  .strict();
type Config = z.infer<typeof schema>;

/** `route`: sends each record to the sinks of the first rule it matches. */
export const routeStep: ComponentSpec<Config, Step> = {
  schema,
  description: "Send records to different sinks by predicate.",
  shape: (_config, input) => input,
  verify(config, ctx) {
    const issues: VerifyIssue[] = [];
    const known = new Set(ctx.sinkNames);
    config.rules.forEach((rule, i) =>
      rule.to.forEach((s, j) => {
        if (!known.has(s)) issues.push({ path: ["rules", i, "to", j], message: `expected a sink name of this topology (${ctx.sinkNames.join(", ")}), got "${s}"` });
      }),
    );
    config.default?.forEach((s, j) => {
      if (!known.has(s)) issues.push({ path: ["default", j], message: `expected a sink name of this topology (${ctx.sinkNames.join(", ")}), got "${s}"` });
    });
    return issues;
  },
  create(config, ctx) {
    const rules = config.rules.map((r) => ({ when: compilePredicate(r.when), to: Object.freeze([...r.to]) }));
    const fallback = config.default ? Object.freeze([...config.default]) : undefined;
    return {
      name: ctx.component,
      async process(records) {
        return {
          records: records.map((r) => {
            const rule = rules.find((x) => x.when(r));
            const targets = rule ? rule.to : fallback;
            return targets ? { ...r, targets } : r;
          }),
        };
      },
    };
  },
};
