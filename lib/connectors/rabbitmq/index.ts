import type { ComponentSpec, ConnectorDescriptor, Sink } from "../../runtime/contracts.ts";
import { rabbitmqSinkSchema } from "./config.ts";
import type { RabbitmqSinkConfig } from "./config.ts";
import { rabbitmqEffect } from "./effects.ts";

/** Sink spec `rabbitmq`. Its implementation, and amqplib, load only when a topology creates one (or /health checks RabbitMQ). */
export const rabbitmqSink: ComponentSpec<RabbitmqSinkConfig, Sink> = {
  schema: rabbitmqSinkSchema,
  description: "Publishes each record as a persistent message on a confirm channel; a batch succeeds only when the broker confirmed all of it, routed.",
  create: async (config, ctx) => (await import("./sink.ts")).createRabbitmqSink(config, ctx),
  effect: rabbitmqEffect,
};

/** RabbitMQ: publishes records as persistent, confirmed messages (sink type `rabbitmq`). */
export const rabbitmq = {
  name: "rabbitmq",
  sinks: { rabbitmq: rabbitmqSink },
  health: async (connections, signal) => (await import("./health.ts")).rabbitmqHealth(connections, signal),
} satisfies ConnectorDescriptor;
