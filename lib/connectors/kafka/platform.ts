import { Partitioners } from "kafkajs";
import type { Kafka, Producer } from "kafkajs";
import type { Logger } from "pino";
import { SfError } from "../../errors.ts";
import type { Connections } from "../../runtime/connections.ts";
import type { ComponentContext, DeadLetterWriter, ReplayResult, Source, StreamPlatform } from "../../runtime/contracts.ts";
import type { FetchingSourceOptions } from "../../runtime/source-fetch.ts";
import { createKafka } from "./client.ts";
import { KafkaDeadLetters } from "./dead-letters.ts";
import { replayDeadLetters } from "./replay.ts";
import { KafkaSource } from "./source.ts";
import { createTopicsReady } from "./topics.ts";

interface ClientEntry {
  kafka: Kafka;
  producer?: Promise<Producer>;
}

/** One kafkajs client (and idempotent producer) per named connection, per Connections. */
const clients = new WeakMap<Connections, Map<string, ClientEntry>>();

function entry(connections: Connections, name: string, logger: Logger): ClientEntry {
  let byName = clients.get(connections);
  if (!byName) clients.set(connections, (byName = new Map()));
  let e = byName.get(name);
  if (!e) byName.set(name, (e = { kafka: createKafka(connections, name, logger.child({ component: "kafka" })) }));
  return e;
}

/** The idempotent, acks=all producer of a connection, connected once and shared. */
export function sharedProducer(connections: Connections, name: string, logger: Logger): Promise<Producer> {
  const e = entry(connections, name, logger);
  if (!e.producer) {
    // The Java-compatible partitioner (kafkajs 2 default, named to silence its notice): same key, same partition as other clients.
    const producer = e.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true, createPartitioner: Partitioners.DefaultPartitioner });
    e.producer = producer.connect().then(
      () => producer,
      (err: unknown) => {
        e.producer = undefined;
        throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `Kafka producer cannot connect: ${(err as Error).message}`, { cause: err });
      },
    );
  }
  return e.producer;
}

export class KafkaPlatform implements StreamPlatform {
  private readonly connections: Connections;
  private readonly logger: Logger;
  constructor(connections: Connections, logger: Logger) {
    this.connections = connections;
    this.logger = logger;
  }

  source(options: FetchingSourceOptions, ctx: ComponentContext): Source {
    const { kafka } = entry(this.connections, options.connection, this.logger);
    return new KafkaSource(kafka, options, ctx.logger, ctx.metrics.forTopology(ctx.topology));
  }

  deadLetters(_ctx: ComponentContext): DeadLetterWriter {
    const producer = sharedProducer(this.connections, "default", this.logger);
    return {
      send: async (topic, letters) => new KafkaDeadLetters(await producer).send(topic, letters),
      close: async () => {},
    };
  }

  async ensureTopics(topics: string[], partitions = 3): Promise<void> {
    const admin = entry(this.connections, "default", this.logger).kafka.admin();
    await admin.connect();
    try {
      await createTopicsReady(admin, topics, partitions);
    } finally {
      await admin.disconnect();
    }
  }

  async replayDeadLetters(dlqTopic: string, group: string, options: { dryRun?: boolean } = {}): Promise<ReplayResult> {
    const { kafka } = entry(this.connections, "default", this.logger);
    const producer = await sharedProducer(this.connections, "default", this.logger);
    return replayDeadLetters(kafka, producer, dlqTopic, group, this.logger, options.dryRun);
  }

  async close(): Promise<void> {
    const byName = clients.get(this.connections);
    if (!byName) return;
    for (const e of byName.values()) {
      if (e.producer) await (await e.producer.catch(() => undefined))?.disconnect();
      e.producer = undefined;
    }
    clients.delete(this.connections);
  }
}
