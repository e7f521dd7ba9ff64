/**
 * The ML system's job receiver, wired to Kafka: consumes training jobs from the RabbitMQ
 * queue ml.training-jobs (workers/rabbitmq-receiver.ts runs the training stand-in) and
 * reports each finished job as a `model_training_completed` Avro record (through the
 * schema registry) on ml.model-training-completed, which ml-model-alerts and ml-audit
 * consume.
 */
import fs from "node:fs";
import path from "node:path";
import type { Producer } from "kafkajs";
import type { Logger } from "pino";
import { parse } from "yaml";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { rabbitmqSinkSchema } from "../../lib/connectors/rabbitmq/config.ts";
import { amqpTarget, connectAmqp } from "../../lib/connectors/rabbitmq/connection.ts";
import { declareTopology } from "../../lib/connectors/rabbitmq/declare.ts";
import { createKafka } from "../../lib/connectors/kafka/client.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { startTrainingReceiver } from "../../workers/rabbitmq-receiver.ts";
import type { ModelTrainingCompleted, TrainingReceiverOptions } from "../../workers/rabbitmq-receiver.ts";

export const TRAINING_QUEUE = "ml.training-jobs";
export const COMPLETED_TOPIC = "ml.model-training-completed";
const SCHEMA = "../../schemas/ml/model-training-completed.avsc";
const DISPATCH_TOPOLOGY = path.join(import.meta.dirname, "training-dispatch.yaml");

export interface TrainingLoopOptions {
  /** Connection settings: KAFKA_BROKERS, SCHEMA_REGISTRY_URL(+_USERNAME/_PASSWORD), AMQP_URL... */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Override the training stand-in (tests, or a real trainer). */
  train?: TrainingReceiverOptions["train"];
}

export interface TrainingLoop {
  close(): Promise<void>;
}

/** The Avro value of ml.model-training-completed for a receiver's report. */
export function completedRecord(event: ModelTrainingCompleted) {
  return {
    event_id: `training:${event.request_id}`,
    request_id: event.request_id,
    model_id: event.model,
    accuracy: event.metrics.accuracy,
    loss: event.metrics.loss,
    dataset: event.dataset,
    duration_ms: event.duration_ms,
    completed_at: event.completed_at,
  };
}

/**
 * Declares the job queue exactly as ml-training-dispatch declares it (read from that
 * topology, so the two never disagree), so the receiver may start before the fleet.
 */
async function declareJobQueue(connections: Connections): Promise<void> {
  const topology = parse(fs.readFileSync(DISPATCH_TOPOLOGY, "utf8")) as { sinks: Array<Record<string, unknown>> };
  const { type: _type, name: _name, routed_only: _routed, ...sink } = topology.sinks.find((s) => s.type === "rabbitmq")!;
  const config = rabbitmqSinkSchema.parse(sink);
  const conn = await connectAmqp(amqpTarget(connections, config.connection), "streamfleet ml declare");
  try {
    await declareTopology(await conn.createChannel(), config.declare);
  } finally {
    await conn.close().catch(() => {});
  }
}

/**
 * Starts the training receiver on ml.training-jobs with a report() that produces
 * model_training_completed to Kafka (idempotent producer, acks=all; a failed send
 * re-queues the job). Call close() to stop consuming and disconnect.
 */
export async function startTrainingLoop(options: TrainingLoopOptions): Promise<TrainingLoop> {
  const connections = new Connections(options.env);
  const logger = options.logger.child({ component: "ml-training-receiver" });
  // SCHEMA_REGISTRY_URL, its credentials and SCHEMA_REGISTRY_CA_FILE, as a worker reads them
  const codecs = SchemaCodecs.fromConnections(connections);
  const { text, type } = readAvsc(SCHEMA, import.meta.dirname);
  const encode = codecs.encoder(await codecs.register(`${COMPLETED_TOPIC}-value`, text), type);
  await declareJobQueue(connections);

  const producer: Producer = createKafka(connections, "default", logger, "streamfleet-ml-training").producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const amqpDefault = amqpTarget(connections, "default");
  const receiver = await startTrainingReceiver({
    amqpUrl: amqpDefault.url,
    socketOptions: amqpDefault.socketOptions,
    queue: TRAINING_QUEUE,
    ...(options.train ? { train: options.train } : {}),
    report: async (event) => {
      const value = completedRecord(event);
      await producer.send({ topic: COMPLETED_TOPIC, acks: -1, messages: [{ key: value.model_id, value: encode(value) }] });
    },
    log: ({ msg, ...rest }) => logger.info(rest, String(msg)),
  });
  logger.info({ queue: TRAINING_QUEUE, topic: COMPLETED_TOPIC }, "training receiver started");
  return {
    async close() {
      await receiver.close();
      await producer.disconnect().catch(() => {});
    },
  };
}
