import type { Kafka } from "kafkajs";
import type { TestScope } from "./scope.ts";

/** The Kafka clients a connection can use (KAFKA_CLIENT): the tests that touch Kafka run through each. */
export const KAFKA_CLIENTS = ["kafkajs", "platformatic"] as const;

/**
 * Live view of an output topic: for each id (the record key), the distinct output records
 * (partition/offset) carrying it. Counting distinct offsets, not deliveries, keeps a
 * re-delivery to this watcher (its own rebalance) from looking like a record written twice.
 */
export async function watchOutput(scope: TestScope, kafka: Kafka, topic: string) {
  const ids = new Map<string, Set<string>>();
  const consumer = kafka.consumer({ groupId: scope.group(`watch-${topic}`) });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      const id = message.key!.toString();
      const at = ids.get(id) ?? new Set<string>();
      at.add(`${partition}/${message.offset}`);
      ids.set(id, at);
    },
  });
  return { ids, total: () => [...ids.values()].reduce((a, b) => a + b.size, 0), stop: () => consumer.disconnect() };
}

/**
 * Writes records r<from>..r<from+n-1> (key and JSON `{ id }`) in sends of 1,000, idempotently
 * (see TestScope.producer): an output holding one twice means the worker wrote it twice.
 */
export async function produceNumbered(scope: TestScope, topic: string, n: number, from = 0): Promise<void> {
  const producer = scope.producer();
  await producer.connect();
  for (let start = from; start < from + n; start += 1000) {
    await producer.send({ topic, messages: Array.from({ length: Math.min(1000, from + n - start) }, (_, j) => ({ key: `r${start + j}`, value: JSON.stringify({ id: `r${start + j}` }) })) });
  }
  await producer.disconnect();
}
