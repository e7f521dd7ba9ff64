import type { ConnectorDescriptor } from "../../runtime/contracts.ts";
import { classifySourceFailures } from "./group-access.ts";
import { kafkaHealth } from "./health.ts";
import { KafkaPlatform } from "./platform.ts";
import { kafkaSink } from "./sink.ts";
import { withTransactions } from "./transactions.ts";
import { kafkaEffect } from "./effects.ts";

export { DLQ_HEADERS } from "./dead-letters.ts";

/** Kafka: the stream platform (sources, DLQ) and the `kafka` sink that chains topologies. */
export const kafka = {
  name: "kafka",
  sinks: { kafka: { ...kafkaSink, effect: kafkaEffect } },
  health: kafkaHealth,
  platform: (connections, logger) => withTransactions(classifySourceFailures(new KafkaPlatform(connections, logger), connections), connections, logger),
} satisfies ConnectorDescriptor;
