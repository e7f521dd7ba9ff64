import type { Kafka, Producer } from "kafkajs";
import type { Logger } from "pino";
import { SfError } from "../../errors.ts";
import type { Connections } from "../../runtime/connections.ts";
import type { ComponentContext, DeadLetterWriter, ReplayResult, Source, StreamPlatform } from "../../runtime/contracts.ts";
import type { FetchingSourceOptions } from "../../runtime/source-fetch.ts";
import { KafkaDeadLetters } from "./dead-letters.ts";
import type * as KafkajsSide from "./kafkajs-side.ts";
import { clientKind, platformaticSecurityError } from "./platformatic/options.ts";
import type * as PlatformaticSide from "./platformatic/index.ts";
import type { KafkaClientKind } from "./platformatic/options.ts";
import type { KafkaWriter } from "./writer.ts";

/** The kafkajs side, imported by the first connection that uses it (see kafkajs-side.ts). */
let kafkajsModule: Promise<typeof KafkajsSide> | undefined;
const kafkajs = () => (kafkajsModule ??= import("./kafkajs-side.ts"));

/** The @platformatic/kafka side, imported by the first connection that uses it (see platformatic/index.ts). */
let platformaticModule: Promise<typeof PlatformaticSide> | undefined;
const platformatic = () => (platformaticModule ??= import("./platformatic/index.ts"));

/** A source created (its client imported, its group checked) when it starts: `StreamPlatform.source` is synchronous. */
class LazySource implements Source {
  private inner: Source | undefined;
  private readonly create: () => Promise<Source>;
  /** Stopped while its client was still loading: it never joins the group. */
  private stopped = false;
  constructor(create: () => Promise<Source>) {
    this.create = create;
  }
  async run(handler: Parameters<Source["run"]>[0]): Promise<void> {
    const inner = await this.create();
    if (this.stopped) return;
    this.inner = inner;
    await inner.run(handler);
  }
  async stop(beforeLeave?: () => Promise<void>): Promise<void> {
    this.stopped = true;
    await this.inner?.stop(beforeLeave);
  }
  ready(): boolean {
    return this.inner?.ready() ?? false;
  }
  async lag(): Promise<Array<{ topic: string; partition: number; lag: number }>> {
    return (await this.inner?.lag?.()) ?? [];
  }
}

interface ClientEntry {
  /** Which client the connection uses (KAFKA_CLIENT). */
  kind: KafkaClientKind;
  /** kafkajs: created when first used (connects nothing until then). */
  kafka?: Promise<Kafka>;
  producer?: Promise<Producer>;
  writer?: Promise<KafkaWriter>;
}

/** One client (and idempotent producer) per named connection, per Connections. */
const clients = new WeakMap<Connections, Map<string, ClientEntry>>();

function entry(connections: Connections, name: string): ClientEntry {
  let byName = clients.get(connections);
  if (!byName) clients.set(connections, (byName = new Map()));
  let e = byName.get(name);
  if (!e) byName.set(name, (e = { kind: clientKind(connections, name) }));
  return e;
}

/** The kafkajs client of a connection (its module imported on first use). */
function kafkaOf(e: ClientEntry, connections: Connections, name: string, logger: Logger): Promise<Kafka> {
  return (e.kafka ??= kafkajs().then(({ createKafka }) => createKafka(connections, name, logger.child({ component: "kafka" }))));
}

/** The idempotent, acks=all kafkajs producer of a connection, connected once and shared. */
export function sharedProducer(connections: Connections, name: string, logger: Logger): Promise<Producer> {
  const e = entry(connections, name);
  if (!e.producer) {
    e.producer = (async () => {
      const [{ Partitioners, kafkaSecurityError }, kafka] = await Promise.all([kafkajs(), kafkaOf(e, connections, name, logger)]);
      // The Java-compatible partitioner (kafkajs 2 default, named to silence its notice): same key, same partition as other clients.
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true, createPartitioner: Partitioners.DefaultPartitioner });
      try {
        await producer.connect();
      } catch (err) {
        e.producer = undefined;
        throw kafkaSecurityError(err, connections, name) ?? new SfError("SF_ERR_SINK_NOT_CONNECTED", `Kafka producer cannot connect: ${(err as Error).message}`, { cause: err });
      }
      return producer;
    })();
  }
  return e.producer;
}

/** A connection's shared producer behind the client-neutral KafkaWriter (kafkajs or @platformatic/kafka, per KAFKA_CLIENT). */
export function sharedWriter(connections: Connections, name: string, logger: Logger): Promise<KafkaWriter> {
  const e = entry(connections, name);
  if (!e.writer) {
    if (e.kind === "platformatic") {
      e.writer = platformatic()
        .then((p) => p.platformaticWriter(connections, name))
        .catch((err: unknown) => {
        e.writer = undefined;
        throw platformaticSecurityError(err, connections, name) ?? new SfError("SF_ERR_SINK_NOT_CONNECTED", `Kafka producer cannot connect: ${(err as Error).message}`, { cause: err });
      });
    } else {
      e.writer = Promise.all([kafkajs(), sharedProducer(connections, name, logger)]).then(
        ([{ sendAll, kafkaSecurityError }, producer]): KafkaWriter => ({
          send: (topic, messages) => sendAll(producer, topic, messages),
          securityError: (err, resource) => kafkaSecurityError(err, connections, name, resource),
          close: async () => {},
        }),
        (err: unknown) => {
          e.writer = undefined;
          throw err;
        },
      );
    }
  }
  return e.writer;
}

/**
 * Fails at start when the connection's principal may not see `topic` (a Write ACL implies
 * Describe, so a topic it cannot describe it cannot write): a denied topic is a setting to
 * fix, not an outage to retry. Other answers (a topic not created yet) are left to the writes.
 */
export async function checkTopicAccess(connections: Connections, name: string, logger: Logger, topic: string): Promise<void> {
  const e = entry(connections, name);
  if (e.kind === "platformatic") {
    try {
      const { withAdmin } = await platformatic();
      await withAdmin(connections, name, (admin) => admin.metadata({ topics: [topic], autocreateTopics: false }));
    } catch (err) {
      const denied = platformaticSecurityError(err, connections, name, { topics: [topic] });
      if (denied) throw denied;
    }
    return;
  }
  const { kafkaSecurityError } = await kafkajs();
  const admin = (await kafkaOf(e, connections, name, logger)).admin();
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

/**
 * Fails at start when the connection's principal may not use consumer group `group`: a denied
 * group is a setting to fix, not a coordinator lookup to retry forever. @platformatic/kafka
 * here; kafkajs keeps the broker's GROUP_AUTHORIZATION_FAILED out of its coordinator lookup, so
 * its source asks the broker itself when the first join fails (group-access.ts).
 */
async function checkGroupAccess(connections: Connections, name: string, group: string, topics?: string[]): Promise<void> {
  try {
    const { withAdmin } = await platformatic();
    await withAdmin(connections, name, (admin) => admin.listConsumerGroupOffsets({ groups: [group] }));
  } catch (err) {
    const denied = platformaticSecurityError(err, connections, name, { group, topics });
    if (denied) throw denied;
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
    const e = entry(this.connections, options.connection);
    const metrics = ctx.metrics.forTopology(ctx.topology);
    if (e.kind === "platformatic") {
      return new LazySource(async () => {
        await checkGroupAccess(this.connections, options.connection, options.group, options.topics);
        return new (await platformatic()).PlatformaticSource(this.connections, options, ctx.logger, metrics);
      });
    }
    return new LazySource(async () => {
      const [{ KafkaSource }, kafka] = await Promise.all([kafkajs(), kafkaOf(e, this.connections, options.connection, this.logger)]);
      return new KafkaSource(kafka, options, ctx.logger, metrics);
    });
  }

  deadLetters(_ctx: ComponentContext): DeadLetterWriter {
    const writer = sharedWriter(this.connections, "default", this.logger);
    // Nothing awaits it before the first dead letter: a producer that cannot connect (a wrong
    // password) must fail that send, not crash the process as an unhandled rejection.
    writer.catch(() => {});
    return {
      send: async (topic, letters) => new KafkaDeadLetters(await writer).send(topic, letters),
      close: async () => {},
    };
  }

  async ensureTopics(topics: string[], partitions = 3): Promise<void> {
    const e = entry(this.connections, "default");
    if (e.kind === "platformatic") {
      try {
        const { withAdmin, createTopicsReady: topicsReady } = await platformatic();
        await withAdmin(this.connections, "default", (admin) => topicsReady(admin, topics, partitions));
      } catch (err) {
        throw platformaticSecurityError(err, this.connections, "default", { topics }) ?? err;
      }
      return;
    }
    const [{ createTopicsReady, kafkaSecurityError }, kafka] = await Promise.all([kafkajs(), kafkaOf(e, this.connections, "default", this.logger)]);
    const admin = kafka.admin();
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
    const e = entry(this.connections, "default");
    const writer = await sharedWriter(this.connections, "default", this.logger);
    if (e.kind === "platformatic") return (await platformatic()).replayDeadLetters(this.connections, "default", writer, dlqTopic, group, this.logger, options.dryRun);
    const [{ replayDeadLetters }, kafka] = await Promise.all([kafkajs(), kafkaOf(e, this.connections, "default", this.logger)]);
    return replayDeadLetters(kafka, writer, dlqTopic, group, this.logger, options.dryRun);
  }

  async close(): Promise<void> {
    const byName = clients.get(this.connections);
    if (!byName) return;
    for (const e of byName.values()) {
      if (e.writer) await (await e.writer.catch(() => undefined))?.close();
      if (e.producer) await (await e.producer.catch(() => undefined))?.disconnect();
      e.producer = undefined;
      e.writer = undefined;
    }
    clients.delete(this.connections);
  }
}
