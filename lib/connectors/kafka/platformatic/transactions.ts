import { compatibilityPartitioner, Producer } from "@platformatic/kafka";
import type { Consumer, Message, MessageToProduce } from "@platformatic/kafka";
import type { Logger } from "pino";
import { SfError } from "../../../errors.ts";
import type { Connections } from "../../../runtime/connections.ts";
import type { SourceBatch, TransactionalOutput, TransactionOptions, TransactionStart } from "../../../runtime/contracts.ts";
import { slices } from "../chunks.ts";
import { kafkaTransaction, transactionalId } from "../transactions.ts";
import type { OutMessage } from "../writer.ts";
import { describe } from "./admin.ts";
import { bufferSerializers, platformaticOptions } from "./options.ts";
import type { PlatformaticSource } from "./source.ts";

export { runningSource } from "./source.ts";

type AnyProducer = Producer<Buffer | string, Buffer, string, Buffer | string>;
type Out = MessageToProduce<Buffer | string, Buffer, string, Buffer | string>;
type ClientTransaction = Awaited<ReturnType<AnyProducer["beginTransaction"]>>;

/** One input partition's transactional producer, and the group generation it was fenced in. */
interface Partition {
  producer?: AnyProducer;
  generation: number;
  /** The previous transaction's end (commit or abort): the next one begins after it. */
  settled: Promise<void>;
}

/**
 * Exactly-once output on @platformatic/kafka (see ../transactions.ts): a producer per input
 * partition, created — and so fencing the partition's earlier writers — on the partition's
 * first unit of each group generation; the offset commit carries that generation (KIP-447).
 */
export class PlatformaticTransactions implements TransactionalOutput {
  private readonly connections: Connections;
  private readonly options: TransactionOptions;
  private readonly source: () => PlatformaticSource | undefined;
  private readonly logger: Logger;
  private readonly partitions = new Map<string, Partition>();

  constructor(connections: Connections, options: TransactionOptions, source: () => PlatformaticSource | undefined, logger: Logger) {
    this.connections = connections;
    this.options = options;
    this.source = source;
    this.logger = logger;
  }

  async begin(batch: SourceBatch): Promise<TransactionStart> {
    const { topic, partition, generation } = batch;
    const key = `${topic}/${partition}`;
    let p = this.partitions.get(key);
    if (!p) this.partitions.set(key, (p = { generation: -1, settled: Promise.resolve() }));
    await p.settled;
    const source = this.source();
    if (!source) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", "the source is not running");
    // Fetched before a rebalance this worker already knows of: leave the partition to its owner (no fencing it).
    if (!source.groupMetadata(generation)) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `the group rebalanced since ${key} was fetched`);
    const fresh = !p.producer || p.generation !== generation;
    if (fresh) {
      await p.producer?.close().catch(() => {});
      p.producer = this.producer(topic, partition);
      p.generation = generation;
    }
    const producer = p.producer!;
    let txn: ClientTransaction;
    try {
      // The first begin of a producer initialises its transactional.id: earlier owners are fenced here.
      txn = await producer.beginTransaction();
    } catch (err) {
      await this.drop(p, producer);
      throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `starting a Kafka transaction for ${key} failed: ${describe(err)}`, { cause: err });
    }
    if (fresh) {
      // After the fence no earlier owner can commit: if one did since this worker read its position, read on from its commit.
      const committed = await source.committedOffset(topic, partition).catch(async (err: unknown) => {
        await txn.cancel();
        throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `reading the committed offset of ${key} failed: ${describe(err)}`, { cause: err });
      });
      if (committed !== undefined && committed > BigInt(batch.messages[0]!.offset)) {
        await txn.cancel();
        return { resumeAt: String(committed) };
      }
    }
    return { transaction: this.transaction(p, producer, txn, batch) };
  }

  private producer(topic: string, partition: number): AnyProducer {
    return new Producer({
      ...platformaticOptions(this.connections, this.options.connection),
      idempotent: true,
      transactionalId: transactionalId(this.options.group, topic, partition),
      // A new producer (-1, -1): the client's default (0, 0) reads as "producer 0 resuming", which
      // the broker refuses as fenced once the transactional.id has had any producer.
      producerId: -1n,
      producerEpoch: -1,
      acks: -1,
      autocreateTopics: true,
      // The transaction timeout (InitProducerId) and the produce timeout.
      timeout: this.options.timeoutMs,
      partitioner: compatibilityPartitioner,
      serializers: bufferSerializers,
    });
  }

  private transaction(p: Partition, producer: AnyProducer, txn: ClientTransaction, batch: SourceBatch) {
    let ops: Promise<unknown> = Promise.resolve();
    const { topic, partition, generation } = batch;
    const group = this.options.group;
    const then = <T>(fn: () => Promise<T>): Promise<T> => {
      const next = ops.then(fn);
      ops = next.catch(() => {});
      return next;
    };
    return kafkaTransaction({
      send: (out, messages) =>
        then(async () => {
          for (const slice of slices(messages, Infinity)) await txn.send({ messages: slice.map((m) => toOut(out, m)) });
        }),
      commit: (offset) =>
        then(async () => {
          const meta = this.source()?.groupMetadata(generation);
          if (!meta) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `the group rebalanced: ${topic}/${partition} is committed by its next owner`);
          try {
            await txn.addConsumer({ groupId: group } as Consumer);
            // The client commits `offset + 1` with the generation and member id of the batch's join (KIP-447).
            await txn.addOffset({ topic, partition, offset: BigInt(offset), metadata: { consumer: { groupId: group, ...meta } } } as unknown as Message);
            await txn.commit();
          } catch (err) {
            throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `committing the Kafka transaction of ${topic}/${partition} failed: ${describe(err)}`, { cause: err });
          }
        }),
      abort: () => {
        const done = (async () => {
          await ops;
          if (txn.completed) return;
          try {
            await txn.abort();
          } catch (err) {
            // Fenced, or the broker no longer knows it: a new producer fences and aborts it on the next begin.
            this.logger.debug({ err: describe(err), topic, partition }, "aborting a Kafka transaction failed; its producer is replaced");
            await this.drop(p, producer);
          }
        })();
        p.settled = done;
        return done;
      },
    });
  }

  private async drop(p: Partition, producer: AnyProducer): Promise<void> {
    if (p.producer === producer) p.producer = undefined;
    await producer.close().catch(() => {});
  }

  async close(): Promise<void> {
    const all = [...this.partitions.values()];
    this.partitions.clear();
    await Promise.all(all.map(async (p) => {
      await p.settled.catch(() => {});
      await p.producer?.close().catch(() => {});
    }));
  }
}

function toOut(topic: string, m: OutMessage): Out {
  // No headers rather than an empty map: the client turns every map it gets into a Map.
  let headers = m.headers as Record<string, Buffer | string> | undefined;
  if (headers) {
    let any = false;
    for (const k in headers) if (headers[k] !== undefined) { any = true; break; }
    if (!any) headers = undefined;
  }
  return { topic, key: m.key ?? undefined, value: (m.value ?? undefined) as Buffer | undefined, headers };
}
