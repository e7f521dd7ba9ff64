import type { ConnectorDescriptor } from "../../runtime/contracts.ts";
import { bullmqHealth } from "./health.ts";
import { bullmqSink } from "./sink.ts";

/** BullMQ: dispatches records as jobs (sink type `bullmq`). */
export const bullmq = {
  name: "bullmq",
  sinks: { bullmq: bullmqSink },
  health: bullmqHealth,
} satisfies ConnectorDescriptor;
