import { readAvsc } from "../../codecs/avro.ts";
import { errorMessage } from "../../errors.ts";
import type { ComponentSpec, ConnectorDescriptor, Sink } from "../../runtime/contracts.ts";
import { postgresSinkSchema } from "./config.ts";
import type { PostgresSinkConfig } from "./config.ts";
import { postgresEffect } from "./effects.ts";

/** Sink spec `postgres`. Its implementation, and pg, load only when a topology creates one (or /health checks PostgreSQL). */
export const postgresSink: ComponentSpec<PostgresSinkConfig, Sink> = {
  schema: postgresSinkSchema,
  description: "Appends records to a PostgreSQL table whose columns come from an Avro schema; multi-row insert per batch, ON CONFLICT DO NOTHING on the record key.",
  create: async (config, ctx) => (await import("./sink.ts")).createPostgresSink(config, ctx),
  effect: postgresEffect,
  verify(config, ctx) {
    if (!config.schema) return [];
    try {
      readAvsc(config.schema, ctx.baseDir);
      return [];
    } catch (err) {
      return [{ path: ["schema"], message: errorMessage(err) }];
    }
  },
};

/** PostgreSQL: appends records to analytics tables, idempotently (sink type `postgres`). */
export const postgres = {
  name: "postgres",
  sinks: { postgres: postgresSink },
  health: async (connections, signal) => (await import("./health.ts")).postgresHealth(connections, signal),
} satisfies ConnectorDescriptor;
