import { compatibilityPartitioner, Producer } from "@platformatic/kafka";
import type { MessageToProduce } from "@platformatic/kafka";
import { SfError } from "../../../errors.ts";
import type { Connections } from "../../../runtime/connections.ts";
import { MAX_SEND_BYTES, sliceBytes, slices } from "../chunks.ts";
import type { KafkaWriter, OutMessage } from "../writer.ts";
import { bufferSerializers, platformaticOptions, platformaticSecurityError } from "./options.ts";

type AnyProducer = Producer<Buffer | string, Buffer, string, Buffer | string>;
type Out = MessageToProduce<Buffer | string, Buffer, string, Buffer | string>;
/** A record as a lane sends it: its partition chosen, its key as bytes. */
interface LaneMessage {
  topic: string;
  partition: number;
  key: Buffer | undefined;
  value: Buffer | undefined;
  headers: Record<string, Buffer | string> | undefined;
}

/** Idempotent producers a connection's writer spreads the output partitions over, unless KAFKA_PRODUCERS says. */
export const DEFAULT_PRODUCER_LANES = 3;

/** KAFKA_PRODUCERS (or KAFKA_PRODUCERS__<NAME>): how many idempotent producers (1–16) a connection writes through. */
export function producerLanes(connections: Connections, name: string): number {
  const v = connections.get("KAFKA_PRODUCERS", name);
  if (v === undefined || v.trim() === "") return DEFAULT_PRODUCER_LANES;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new SfError("SF_ERR_CONFIG_MISSING", `${connections.variable("KAFKA_PRODUCERS", name)} must be a whole number from 1 to 16, got ${v}`);
  return n;
}

/** How long a topic's partition count is trusted before it is asked again (as the client's metadata). */
const PARTITIONS_MAX_AGE_MS = 30_000;

/**
 * One idempotent producer and what waits for it. The client allows one produce request at a
 * time per broker for an idempotent producer: sends that come while one is in flight wait and go
 * together in the next request, up to MAX_SEND_BYTES, in the order they came.
 */
class Lane {
  private readonly waiting: Array<{ messages: LaneMessage[]; bytes: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  private flushing = false;
  private readonly producer: AnyProducer;

  constructor(producer: AnyProducer) {
    this.producer = producer;
  }

  enqueue(messages: LaneMessage[], bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ messages, bytes, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    const waiting = this.waiting;
    while (waiting.length) {
      const group = [waiting.shift()!];
      let bytes = group[0]!.bytes;
      while (waiting.length && bytes + waiting[0]!.bytes <= MAX_SEND_BYTES) {
        bytes += waiting[0]!.bytes;
        group.push(waiting.shift()!);
      }
      try {
        await this.producer.send({ messages: (group.length === 1 ? group[0]!.messages : group.flatMap((g) => g.messages)) as Out[] });
        for (const g of group) g.resolve();
      } catch (err) {
        for (const g of group) g.reject(err);
      }
    }
    this.flushing = false;
  }
}

/**
 * The idempotent, acks=all @platformatic/kafka writer of a connection, with the Java client's
 * partitioner (same key, same partition as kafkajs's default and the JVM clients).
 *
 * It writes through `lanes` idempotent producers (KAFKA_PRODUCERS, default 3), each with its own
 * connections: the writer picks each record's partition itself and an output partition is always
 * written by the same producer (partition mod lanes), so each partition's records go out in the
 * order they were sent, one request at a time, while the requests of different lanes are in
 * flight together (with one producer, every partition's writes waited for one acks=all round
 * trip at a time). Connects every producer (and gets their producer ids) before it is handed
 * out, so a refused credential or certificate fails the caller at start.
 */
export async function platformaticWriter(connections: Connections, name: string): Promise<KafkaWriter> {
  const count = producerLanes(connections, name);
  const options = platformaticOptions(connections, name);
  const producers: AnyProducer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const producer: AnyProducer = new Producer({
        ...options,
        idempotent: true,
        acks: -1,
        autocreateTopics: true,
        partitioner: compatibilityPartitioner,
        serializers: bufferSerializers,
      });
      producers.push(producer);
      await producer.initIdempotentProducer({});
    }
  } catch (err) {
    await Promise.all(producers.map((p) => p.close().catch(() => {})));
    throw err;
  }
  const lanes = producers.map((p) => new Lane(p));
  const partitionCounts = new Map<string, { count: number; at: number }>();
  const partitionsOf = async (topic: string): Promise<number> => {
    const known = partitionCounts.get(topic);
    if (known && Date.now() - known.at < PARTITIONS_MAX_AGE_MS) return known.count;
    const meta = await producers[0]!.metadata({ topics: [topic], autocreateTopics: true });
    const n = meta.topics.get(topic)?.partitionsCount;
    if (!n) throw new Error(`no partitions known for topic ${topic}`);
    partitionCounts.set(topic, { count: n, at: Date.now() });
    return n;
  };
  const out = (topic: string, m: OutMessage, partition: number, key: Buffer | undefined): LaneMessage => {
    let headers = m.headers as Record<string, Buffer | string> | undefined;
    if (headers) {
      let any = false;
      for (const k in headers) if (headers[k] !== undefined) { any = true; break; }
      if (!any) headers = undefined;
    }
    return { topic, partition, key, value: (m.value ?? undefined) as Buffer | undefined, headers };
  };
  return {
    async send(topic: string, messages: OutMessage[]) {
      if (messages.length === 0) return;
      const partitions = await partitionsOf(topic);
      // Each lane's share, in the order given (so each partition's too).
      const shares: LaneMessage[][] = lanes.map(() => []);
      for (const m of messages) {
        const key = m.key === null || m.key === undefined ? undefined : Buffer.isBuffer(m.key) ? m.key : Buffer.from(m.key);
        const partition = compatibilityPartitioner(undefined as unknown as Out, key) % partitions;
        shares[partition % lanes.length]!.push(out(topic, m, partition, key));
      }
      // Under message.max.bytes per send, slice after slice within a lane (a slice is sent
      // only once the one before it is acknowledged); the lanes at once.
      const results = await Promise.allSettled(
        shares.map(async (share, i) => {
          for (const slice of slices(share, Infinity)) await lanes[i]!.enqueue(slice, sliceBytes(slice));
        }),
      );
      for (const r of results) if (r.status === "rejected") throw r.reason;
    },
    securityError: (err, resource) => platformaticSecurityError(err, connections, name, resource),
    close: async () => {
      await Promise.all(producers.map((p) => p.close()));
    },
  };
}
