import type { ComponentSpec, ConnectorDescriptor, Sink } from "../../runtime/contracts.ts";
import { bullmqSinkSchema } from "./config.ts";
import type { BullmqSinkConfig } from "./config.ts";
import { bullmqEffect } from "./effects.ts";

/** Sink spec `bullmq`. Its implementation, and bullmq itself, load only when a topology creates one. */
export const bullmqSink: ComponentSpec<BullmqSinkConfig, Sink> = {
  schema: bullmqSinkSchema,
  description: "Dispatches each record as a BullMQ job (one addBulk per batch); the job id comes from the record so a replay adds no second job.",
  create: async (config, ctx) => (await import("./sink.ts")).createBullmqSink(config, ctx),
  effect: bullmqEffect,
};

/** BullMQ: dispatches records as jobs (sink type `bullmq`). */
export const bullmq = {
  name: "bullmq",
  sinks: { bullmq: bullmqSink },
  health: async (connections, signal) => (await import("./health.ts")).bullmqHealth(connections, signal),
} satisfies ConnectorDescriptor;
