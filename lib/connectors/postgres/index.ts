import type { ConnectorDescriptor } from "../../runtime/contracts.ts";
import { postgresHealth } from "./health.ts";
import { postgresSink } from "./sink.ts";

/** PostgreSQL: appends records to analytics tables, idempotently (sink type `postgres`). */
export const postgres = {
  name: "postgres",
  sinks: { postgres: postgresSink },
  health: postgresHealth,
} satisfies ConnectorDescriptor;
