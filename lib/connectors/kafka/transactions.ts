import type { Logger } from "pino";
import { SfError } from "../../errors.ts";
import type { Connections } from "../../runtime/connections.ts";
import type { SourceBatch, StreamPlatform, Transaction, TransactionalOutput, TransactionOptions, TransactionStart } from "../../runtime/contracts.ts";
import { KafkaDeadLetters } from "./dead-letters.ts";
import { clientKind } from "./platformatic/options.ts";
import type { KafkaWriter, OutMessage } from "./writer.ts";

/**
 * Exactly-once Kafka → Kafka, the client-neutral part. One transactional producer per input
 * partition, its transactional.id derived from the group, topic and partition: the partition's
 * next owner initialises the same id, which bumps its epoch, aborts whatever the previous
 * owner left open and fences it — a zombie (a worker paused past its session timeout) can
 * then neither write nor commit. Where the client sends it (@platformatic/kafka, KIP-447),
 * the offset commit also carries the group generation and member id, so the group
 * coordinator refuses a zombie's commit too.
 */

const SEND = Symbol("kafka transaction send");

/** A Kafka transaction as the `kafka` sink and the DLQ writer see it: the core only commits or aborts it. */
export interface KafkaTransaction extends Transaction {
  [SEND](topic: string, messages: OutMessage[]): Promise<void>;
}

/** Builds a Kafka transaction from what its client does. */
export function kafkaTransaction(parts: { send: (topic: string, messages: OutMessage[]) => Promise<void>; commit: (offset: string) => Promise<void>; abort: () => Promise<void> }): KafkaTransaction {
  return { [SEND]: parts.send, commit: parts.commit, abort: parts.abort };
}

/** `writer`, but writing inside `txn` (a transaction of this connector's platform). */
export function writerIn(txn: Transaction, writer: KafkaWriter): KafkaWriter {
  const send = (txn as Partial<KafkaTransaction>)[SEND];
  if (!send) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", "the kafka sink was handed a transaction of another platform");
  return { send, securityError: (err, resource) => writer.securityError(err, resource), close: async () => {} };
}

/** The transactional.id of one input partition's producer. */
export function transactionalId(group: string, topic: string, partition: number): string {
  return `${group}:${topic}:${partition}`;
}

/** A TransactionalOutput whose client is imported when the first unit begins. */
export class LazyTransactions implements TransactionalOutput {
  private inner: Promise<TransactionalOutput> | undefined;
  private readonly create: () => Promise<TransactionalOutput>;
  constructor(create: () => Promise<TransactionalOutput>) {
    this.create = create;
  }
  begin(batch: SourceBatch): Promise<TransactionStart> {
    this.inner ??= this.create().catch((err: unknown) => {
      this.inner = undefined;
      throw err;
    });
    return this.inner.then((t) => t.begin(batch));
  }
  async close(): Promise<void> {
    await (await this.inner?.catch(() => undefined))?.close();
  }
}

/** A writer for what only `send` is asked of (the DLQ in a transaction). */
const NOT_A_WRITER: KafkaWriter = {
  send: () => Promise.reject(new Error("no writer")),
  securityError: () => undefined,
  close: async () => {},
};

/**
 * `platform` with exactly-once output: `transactions` for topologies that declare
 * `delivery: exactly_once`, and dead letters written in a unit's transaction when one is
 * given. Only those members are replaced, on the instance (as `classifySourceFailures` does).
 * @platformatic/kafka only; a kafkajs connection says so when the topology starts.
 */
export function withTransactions<P extends StreamPlatform>(platform: P, connections: Connections, logger: Logger): P {
  platform.transactions = (options: TransactionOptions) => {
    const kind = clientKind(connections, options.connection);
    if (kind !== "platformatic") {
      throw new Error(
        `the ${kind} client of Kafka connection "${options.connection}" has no exactly-once delivery in streamfleet (its transactions lack the group-generation fencing of KIP-447, see docs/kafka-clients.md): set ${connections.variable("KAFKA_CLIENT", options.connection)}=platformatic, or use delivery: at_least_once`,
      );
    }
    return new LazyTransactions(async () => {
      const { PlatformaticTransactions, runningSource } = await import("./platformatic/transactions.ts");
      return new PlatformaticTransactions(connections, options, () => runningSource(options.group), logger.child({ topology: options.topology, component: "transactions" }));
    });
  };
  const deadLetters = platform.deadLetters.bind(platform);
  platform.deadLetters = (ctx) => {
    const outside = deadLetters(ctx);
    return {
      send: (topic, letters, txn) => (txn ? new KafkaDeadLetters(writerIn(txn, NOT_A_WRITER)).send(topic, letters) : outside.send(topic, letters)),
      close: () => outside.close(),
    };
  };
  return platform;
}
