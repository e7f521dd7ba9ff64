import { afterAll, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { avroEncoder, collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { waitUntil } from "../support/worker.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const scope = new TestScope("chain");
let fleet: Fleet | undefined;
afterAll(async () => {
  await fleet?.stop(5000);
  await scope.cleanup();
});

describeStack("chained topologies", () => {
  it("moves Avro records end to end through two topologies chained by a topic", async () => {
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
    fleet = await startFleet(dir);
    const encode = await avroEncoder(orders, "./schemas/order.avsc");
    const producer = scope.producer();
    await producer.connect();
    const n = 60;
    await producer.send({
      topic: orders,
      messages: Array.from({ length: n }, (_, i) => ({
        key: `o${i}`,
        value: encode({ id: `o${i}`, amount: i + 0.25, status: i % 10 === 0 ? "cancelled" : "open", note: null }),
      })),
    });
    await producer.disconnect();

    const expected = n - n / 10;
    const got = await collect(scope.kafka(), out, expected);
    const values = got.map((g) => JSON.parse(g.value!.toString()) as { id: string; cents: number; label: string });
    expect(values).toHaveLength(expected);
    const byId = new Map(values.map((v) => [v.id, v]));
    expect(byId.get("o7")).toEqual({ id: "o7", cents: 725, label: "order:o7:enriched" });
    expect(byId.has("o10")).toBe(false);
    expect(got.find((g) => g.key === "o7")).toBeDefined();

    // The intermediate topic holds Avro written through the registry.
    const mid = await collect(scope.kafka(), enriched, 1);
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
