import { compatibilityPartitioner, Producer } from "@platformatic/kafka";
import type { MessageToProduce } from "@platformatic/kafka";
import type { Connections } from "../../../runtime/connections.ts";
import { MAX_SEND_BYTES, sliceBytes, slices } from "../chunks.ts";
import type { KafkaWriter, OutMessage } from "../writer.ts";
import { bufferSerializers, platformaticOptions, platformaticSecurityError } from "./options.ts";

type AnyProducer = Producer<Buffer | string, Buffer, string, Buffer | string>;

/**
 * The idempotent, acks=all @platformatic/kafka producer of a connection, with the Java
 * client's partitioner (same key, same partition as kafkajs's default and the JVM clients).
 * Connects (and gets its producer id) before it is handed out, so a refused credential or
 * certificate fails the caller at start.
 */
export async function platformaticWriter(connections: Connections, name: string): Promise<KafkaWriter> {
  const producer: AnyProducer = new Producer({
    ...platformaticOptions(connections, name),
    idempotent: true,
    acks: -1,
    autocreateTopics: true,
    partitioner: compatibilityPartitioner,
    serializers: bufferSerializers,
  });
  try {
    await producer.initIdempotentProducer({});
  } catch (err) {
    await producer.close().catch(() => {});
    throw err;
  }
  type Out = MessageToProduce<Buffer | string, Buffer, string, Buffer | string>;
  // The client sends one request at a time per broker for an idempotent producer: sends that
  // come while one is in flight (other partitions' batches, other topologies) wait and go
  // together in the next request, up to MAX_SEND_BYTES, instead of one round trip each.
  const waiting: Array<{ messages: Out[]; bytes: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  let flushing = false;
  const flush = async () => {
    flushing = true;
    while (waiting.length) {
      const group = [waiting.shift()!];
      let bytes = group[0]!.bytes;
      while (waiting.length && bytes + waiting[0]!.bytes <= MAX_SEND_BYTES) {
        bytes += waiting[0]!.bytes;
        group.push(waiting.shift()!);
      }
      try {
        await producer.send({ messages: group.length === 1 ? group[0]!.messages : group.flatMap((g) => g.messages) });
        for (const g of group) g.resolve();
      } catch (err) {
        for (const g of group) g.reject(err);
      }
    }
    flushing = false;
  };
  const enqueue = (messages: Out[], bytes: number) =>
    new Promise<void>((resolve, reject) => {
      waiting.push({ messages, bytes, resolve, reject });
      if (!flushing) void flush();
    });
  return {
    async send(topic: string, messages: OutMessage[]) {
      // Under message.max.bytes per send, in order, slice after slice (no count limit: the
      // O(n²) grouping that bounds a kafkajs send is kafkajs's own).
      for (const slice of slices(messages, Infinity)) {
        const out = new Array<Out>(slice.length);
        for (let i = 0; i < slice.length; i++) {
          const m = slice[i]!;
          out[i] = { topic, key: m.key ?? undefined, value: (m.value ?? undefined) as Buffer | undefined, headers: m.headers as Record<string, Buffer | string> | undefined };
        }
        await enqueue(out, sliceBytes(slice));
      }
    },
    securityError: (err, resource) => platformaticSecurityError(err, connections, name, resource),
    close: () => producer.close(),
  };
}
