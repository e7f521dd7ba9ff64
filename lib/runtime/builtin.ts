import { z } from "zod";
import type { ConnectorDescriptor } from "./contracts.ts";
import { filterStep } from "./steps/filter.ts";
import { mapStep } from "./steps/map.ts";
import { routeStep } from "./steps/route.ts";
import { transformStep } from "./steps/transform.ts";
import { validateStep } from "./steps/validate.ts";

const nullSchema = z.object({}).strict();

/** The core's own steps and the `null` sink (acknowledges and discards; for benchmarks and dry runs). */
export const builtin = {
  name: "builtin",
  steps: { transform: transformStep, map: mapStep, filter: filterStep, validate: validateStep, route: routeStep },
  sinks: {
    null: {
      schema: nullSchema,
      description: "Acknowledges every record and keeps nothing.",
      create: (_config, ctx) => ({ name: ctx.component, async write() {}, async close() {} }),
    },
  },
} satisfies ConnectorDescriptor;
