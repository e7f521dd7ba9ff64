import { compatibilityPartitioner, Producer } from "@platformatic/kafka";
import type { MessageToProduce } from "@platformatic/kafka";
import type { Connections } from "../../../runtime/connections.ts";
import { slices } from "../chunks.ts";
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
  return {
    async send(topic: string, messages: OutMessage[]) {
      // Under message.max.bytes per send, in order, slice after slice (no count limit: the
      // O(n²) grouping that bounds a kafkajs send is kafkajs's own).
      for (const slice of slices(messages, Infinity)) {
        const out = new Array<MessageToProduce<Buffer | string, Buffer, string, Buffer | string>>(slice.length);
        for (let i = 0; i < slice.length; i++) {
          const m = slice[i]!;
          out[i] = { topic, key: m.key ?? undefined, value: (m.value ?? undefined) as Buffer | undefined, headers: m.headers as Record<string, Buffer | string> | undefined };
        }
        await producer.send({ messages: out });
      }
    },
    securityError: (err, resource) => platformaticSecurityError(err, connections, name, resource),
    close: () => producer.close(),
  };
}
