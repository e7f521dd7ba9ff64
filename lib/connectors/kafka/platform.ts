import { Partitioners } from "kafkajs";
import type { Kafka, Producer } from "kafkajs";
import type { Logger } from "pino";
import { SfError } from "../../errors.ts";
import type { Connections } from "../../runtime/connections.ts";
import type { ComponentContext, DeadLetterWriter, ReplayResult, Source, StreamPlatform } from "../../runtime/contracts.ts";
import type { FetchingSourceOptions } from "../../runtime/source-fetch.ts";
import { createKafka, kafkaSecurityError } from "./client.ts";
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
        throw kafkaSecurityError(err, connections, name) ?? new SfError("SF_ERR_SINK_NOT_CONNECTED", `Kafka producer cannot connect: ${(err as Error).message}`, { cause: err });
      },
    );
  }
  return e.producer;
}

/**
 * Fails at start when the connection's principal may not see `topic` (a Write ACL implies
 * Describe, so a topic it cannot describe it cannot write): a denied topic is a setting to
 * fix, not an outage to retry. Other answers (a topic not created yet) are left to the writes.
 */
export async function checkTopicAccess(connections: Connections, name: string, logger: Logger, topic: string): Promise<void> {
  const admin = entry(connections, name, logger).kafka.admin();
  try {
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [topic] });
  } catch (err) {
    const denied = kafkaSecurityError(err, connections, name, { topics: [topic] });
    if (denied) throw denied;
  } finally {
    await admin.disconnect();
  }
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
    try {
      await admin.connect();
      await createTopicsReady(admin, topics, partitions);
    } catch (err) {
      throw kafkaSecurityError(err, this.connections, "default", { topics }) ?? err;
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
