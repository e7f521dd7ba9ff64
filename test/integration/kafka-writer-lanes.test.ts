/**
 * The @platformatic/kafka writer spreads output partitions over several idempotent producers
 * (KAFKA_PRODUCERS, default 3) so their acks=all requests are in flight together. What must not
 * change: every record lands in the Java partitioner's partition for its key, each partition
 * holds its records in the order they were sent (across sends running at once, as the runner's
 * partitions write), nothing is lost or written twice.
 */
import { afterAll, describe, expect, it } from "vitest";
import { platformaticWriter, producerLanes } from "../../lib/connectors/kafka/platformatic/producer.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { javaPartition } from "../support/java-partition.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

describe("KAFKA_PRODUCERS", () => {
  it("defaults to 3, takes 1–16, refuses anything else naming the variable", () => {
    expect(producerLanes(new Connections({}), "default")).toBe(3);
    expect(producerLanes(new Connections({ KAFKA_PRODUCERS: "1" }), "default")).toBe(1);
    expect(producerLanes(new Connections({ KAFKA_PRODUCERS: "2", KAFKA_PRODUCERS__OUT: "5" }), "out")).toBe(5);
    expect(() => producerLanes(new Connections({ KAFKA_PRODUCERS: "0" }), "default")).toThrow(/KAFKA_PRODUCERS must be a whole number from 1 to 16, got 0/);
    expect(() => producerLanes(new Connections({ KAFKA_PRODUCERS: "many" }), "default")).toThrow(/KAFKA_PRODUCERS/);
  });
});

describeStack("the platformatic writer's producer lanes", () => {
  const scope = new TestScope("lanes");
  afterAll(() => scope.cleanup());

  it.each([1, 3, 4])("KAFKA_PRODUCERS=%i: Java partition per key, per-partition send order, each record once", async (lanes) => {
    const topic = scope.topic(`out-${lanes}`);
    await scope.createTopics([topic], 5);
    const writer = await platformaticWriter(new Connections({ KAFKA_BROKERS: stack().KAFKA_BROKERS, KAFKA_PRODUCERS: String(lanes) }), "default");
    // Four writers at once (as four input partitions), each sending 10 batches of 700 one after
    // the other; a key's records carry a sequence number.
    const sender = async (s: number) => {
      for (let b = 0; b < 10; b++) {
        await writer.send(
          topic,
          Array.from({ length: 700 }, (_, i) => {
            const n = b * 700 + i;
            return { key: `s${s}-k${n % 37}`, value: Buffer.from(JSON.stringify({ s, n })), headers: n % 2 ? { h: `v${n}` } : {} };
          }),
        );
      }
    };
    await Promise.all([0, 1, 2, 3].map(sender));
    await writer.close();

    const seen: Array<{ partition: number; key: string; s: number; n: number; h: string | undefined }> = [];
    const consumer = scope.kafka().consumer({ groupId: scope.group(`read-${lanes}`) });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          const v = JSON.parse(message.value!.toString()) as { s: number; n: number };
          seen.push({ partition, key: message.key!.toString(), ...v, h: message.headers?.h?.toString() });
          if (seen.length >= 4 * 7000) resolve();
        },
      });
    });
    await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`read ${seen.length} of 28000`)), 60_000))]);
    await consumer.disconnect();

    expect(seen.length).toBe(28_000);
    expect(new Set(seen.map((r) => `${r.s}/${r.n}`)).size, "each record once").toBe(28_000);
    for (const r of seen) {
      expect(r.partition, `partition of ${r.key}`).toBe(javaPartition(r.key, 5));
      expect(r.h).toBe(r.n % 2 ? `v${r.n}` : undefined);
    }
    // Per partition, each sender's records in the order it sent them.
    const last = new Map<string, number>();
    for (const r of seen) {
      const k = `${r.partition}/${r.s}`;
      expect(r.n, `partition ${r.partition}, sender ${r.s}`).toBeGreaterThan(last.get(k) ?? -1);
      last.set(k, r.n);
    }
  }, 120_000);
});
