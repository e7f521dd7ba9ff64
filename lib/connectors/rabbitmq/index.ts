import type { ConnectorDescriptor } from "../../runtime/contracts.ts";
import { rabbitmqHealth } from "./health.ts";
import { rabbitmqSink } from "./sink.ts";

/** RabbitMQ: publishes records as persistent, confirmed messages (sink type `rabbitmq`). */
export const rabbitmq = {
  name: "rabbitmq",
  sinks: { rabbitmq: rabbitmqSink },
  health: rabbitmqHealth,
} satisfies ConnectorDescriptor;
