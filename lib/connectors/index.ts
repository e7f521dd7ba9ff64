/**
 * The one place where connectors are registered. Adding a connector is one folder under
 * lib/connectors/ and one line here (a test fails when a folder is missing from this list).
 */
import { builtin } from "../runtime/builtin.ts";
import { kafka } from "./kafka/index.ts";
import { bullmq } from "./bullmq/index.ts";
import { redis } from "./redis/index.ts";
import { rabbitmq } from "./rabbitmq/index.ts";
import { postgres } from "./postgres/index.ts";
import type { ConnectorDescriptor } from "../runtime/contracts.ts";

export const connectors = [
  builtin,
  kafka,
  bullmq,
  rabbitmq,
  postgres,
  redis,
] as const satisfies readonly ConnectorDescriptor[];
