import { afterAll, describe, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { avroEncoder, collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { KAFKA_CLIENTS } from "../support/kafka.ts";
import { javaPartition } from "../support/java-partition.ts";
import { waitUntil } from "../support/worker.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

describeStack("chained topologies", () => {
  describe.each(KAFKA_CLIENTS)("KAFKA_CLIENT=%s", (client) => {
    const scope = new TestScope(`chain-${client.slice(0, 4)}`);
    let fleet: Fleet | undefined;
    afterAll(async () => {
      await fleet?.stop(5000);
      await scope.cleanup();
    });

    it("moves Avro records end to end through two topologies chained by a topic, counting outcomes once", async () => {
      const [orders, enriched, out] = [scope.topic("orders"), scope.topic("enriched"), scope.topic("out")];
      await scope.createTopics([orders, enriched, out]);
      const dir = writeTopologies([
        {
          name: `${scope.id}-enrich`,
          source: { topics: [orders] },
          codec: { value: { type: "avro", schema: "./schemas/order.avsc" } },
          steps: [{ filter: { drop: { field: "status", eq: "cancelled" } } }, { transform: { module: "./transforms.ts", export: "enrich" } }],
          sinks: [{ type: "kafka", topic: enriched, key: "{id}", value: { type: "avro", schema: "./schemas/order-enriched.avsc" } }],
          errors: { dlq: { topic: scope.topic("enrich-dlq") } },
        },
        {
          name: `${scope.id}-forward`,
          source: { topics: [enriched] },
          steps: [{ map: { fields: { id: "{id}", cents: "{amount_cents}", label: "order:{id}:{stage}" } } }],
          sinks: [{ type: "kafka", topic: out, key: "{id}", value: { type: "json" } }],
          errors: { dlq: { topic: scope.topic("forward-dlq") } },
        },
      ]);
      fleet = await startFleet(dir, { ...process.env, KAFKA_CLIENT: client });
      const encode = await avroEncoder(orders, "./schemas/order.avsc");
      const producer = scope.producer();
      await producer.connect();
      const n = 300;
      await producer.send({
        topic: orders,
        messages: Array.from({ length: n }, (_, i) => ({
          key: `o${i}`,
          value: encode({ id: `o${i}`, amount: i + 0.25, status: i % 10 === 0 ? "cancelled" : "open", note: null }),
          headers: { trace: `t${i}` },
        })),
      });
      await producer.disconnect();

      const expected = n - n / 10;
      const got = await collect(scope.kafka(), out, expected);
      const values = got.map((g) => JSON.parse(g.value!.toString()) as { id: string; cents: number; label: string });
      expect(values).toHaveLength(expected);
      expect(new Set(values.map((v) => v.id)).size).toBe(expected);
      const byId = new Map(values.map((v) => [v.id, v]));
      expect(byId.get("o7")).toEqual({ id: "o7", cents: 725, label: "order:o7:enriched" });
      expect(byId.has("o10")).toBe(false);
      // Headers carried over both hops; the key template decides the partition (the Java client's partitioner).
      expect(got.find((g) => g.key === "o7")?.headers.trace).toBe("t7");
      const mid = await collect(scope.kafka(), enriched, expected);
      expect(mid.find((m) => m.key === "o7")?.partition, "same key, same partition as the Java partitioner (murmur2 of 'o7' % 3)").toBe(javaPartition("o7", 3));

      // The intermediate topic holds Avro written through the registry.
      const codecs = new SchemaCodecs(stack().SCHEMA_REGISTRY_URL);
      await codecs.prepare([mid[0]!.value]);
      expect(codecs.decode(mid[0]!.value!)).toMatchObject({ stage: "enriched" });

      // outcomes are counted once committed: up to source.commit_interval_ms after the sinks wrote
      const outcome = async (o: string) => (await fleet!.metrics.processed.get()).values.filter((v) => v.labels.outcome === o && v.labels.topology === `${scope.id}-enrich`).reduce((a, v) => a + v.value, 0);
      await waitUntil(async () => (await outcome("ok")) + (await outcome("filtered")) >= n, 10_000, "outcomes counted");
      expect(await outcome("ok")).toBe(expected);
      expect(await outcome("filtered")).toBe(n / 10);
    });
  });
});
