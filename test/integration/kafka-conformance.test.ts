/**
 * The Kafka connector's conformance suite: the same scenarios through each client it offers
 * (KAFKA_CLIENT=kafkajs|platformatic), against the real broker — a chain of two topologies
 * (Avro through the registry, Kafka sink to Kafka source), poison records to the DLQ with
 * their headers and bytes, a large fetch taken in slices, and DLQ replay. What a user sees
 * must not depend on the client.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { avroEncoder, collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

const KAFKA_CLIENTS = ["kafkajs", "platformatic"] as const;
const ROOT = path.resolve(import.meta.dirname, "../..");

describeStack("Kafka connector conformance", () => {
  describe.each(KAFKA_CLIENTS)("KAFKA_CLIENT=%s", (client) => {
    const scope = new TestScope(`conf-${client.slice(0, 4)}`);
    const env = { ...process.env, KAFKA_CLIENT: client };
    const fleets: Fleet[] = [];
    const start = async (dir: string) => {
      const f = await startFleet(dir, env);
      fleets.push(f);
      return f;
    };
    afterAll(async () => {
      for (const f of fleets) await f.stop(5000).catch(() => {});
      await scope.cleanup();
    });

    it("moves Avro records end to end through two topologies chained by a topic, counting outcomes once", async () => {
      const [orders, enriched, out] = [scope.topic("orders"), scope.topic("enriched"), scope.topic("out")];
      await scope.createTopics([orders, enriched, out]);
      const fleet = await start(
        writeTopologies([
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
        ]),
      );
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
      const o7 = got.find((g) => g.key === "o7")!;
      expect(o7.headers.trace).toBe("t7");
      const mid = await collect(scope.kafka(), enriched, expected);
      expect(mid.find((m) => m.key === "o7")?.partition, "same key, same partition as the Java partitioner (murmur2 of 'o7' % 3)").toBe(javaPartition("o7", 3));
      const codecs = new SchemaCodecs(stack().SCHEMA_REGISTRY_URL);
      await codecs.prepare([mid[0]!.value]);
      expect(codecs.decode(mid[0]!.value!)).toMatchObject({ stage: "enriched" });

      const outcome = async (o: string) => (await fleet.metrics.processed.get()).values.filter((v) => v.labels.outcome === o && v.labels.topology === `${scope.id}-enrich`).reduce((a, v) => a + v.value, 0);
      await waitUntil(async () => (await outcome("ok")) + (await outcome("filtered")) >= n, 10_000, "outcomes counted");
      expect(await outcome("ok")).toBe(expected);
      expect(await outcome("filtered")).toBe(n / 10);
    });

    it("dead-letters each kind of poison record with its reason headers and original bytes while the rest flow", async () => {
      const [orders, out, dlq] = [scope.topic("p-orders"), scope.topic("p-out"), scope.topic("p-dlq")];
      await scope.createTopics([orders, out], 1);
      const name = `${scope.id}-poison`;
      await start(
        writeTopologies([
          {
            name,
            source: { topics: [orders] },
            codec: { value: { type: "avro", schema: "./schemas/order.avsc" } },
            steps: [{ transform: { module: "./transforms.ts", export: "enrich" } }, { validate: { schema: "./schemas/order-enriched.avsc" } }],
            sinks: [{ type: "kafka", topic: out, key: "{id}", value: { type: "json" } }],
            errors: { retries: 1, backoff_ms: 10, dlq: { topic: dlq } },
          },
        ]),
      );
      const encode = await avroEncoder(orders, "./schemas/order.avsc");
      const good = (i: number) => encode({ id: `g${i}`, amount: i, status: "open", note: null });
      const unknownId = Buffer.from(good(99));
      unknownId.writeInt32BE(987654, 1);
      const poison: Record<string, Buffer> = {
        "no-magic": Buffer.from('{"id":"json-not-avro"}'),
        "unknown-schema": unknownId,
        malformed: good(98).subarray(0, 7),
        throws: encode({ id: "t1", amount: 1, status: "open", note: "boom" }),
      };
      const producer = scope.producer();
      await producer.connect();
      await producer.send({
        topic: orders,
        messages: [{ key: "g0", value: good(0) }, ...Object.entries(poison).map(([k, v]) => ({ key: k, value: v, headers: { origin: "test" } })), { key: "g1", value: good(1) }, { key: "g2", value: good(2) }],
      });
      await producer.disconnect();

      const letters = await collect(scope.kafka(), dlq, 4);
      const byKey = new Map(letters.map((l) => [l.key, l]));
      expect(byKey.get("no-magic")?.headers["sf-error-code"]).toBe("SF_ERR_DECODE_NO_MAGIC");
      expect(byKey.get("unknown-schema")?.headers["sf-error-code"]).toBe("SF_ERR_DECODE_UNKNOWN_SCHEMA");
      expect(byKey.get("malformed")?.headers["sf-error-code"]).toBe("SF_ERR_DECODE_MALFORMED");
      expect(byKey.get("throws")?.headers).toMatchObject({ "sf-error-code": "SF_ERR_STEP_FAILED", "sf-step": "steps[0].transform", "sf-attempts": "2" });
      for (const [k, bytes] of Object.entries(poison)) {
        const l = byKey.get(k)!;
        expect(l.value?.equals(bytes), `${k} keeps its original bytes`).toBe(true);
        expect(l.headers).toMatchObject({ origin: "test", "sf-topology": name, "sf-source-topic": orders, "sf-source-partition": "0" });
      }
      const delivered = await collect(scope.kafka(), out, 3);
      expect(delivered.map((d) => d.key).sort()).toEqual(["g0", "g1", "g2"]);
    });

    it("takes a fetched batch larger than max_batch_records through in slices: order kept, each record counted once", async () => {
      const [input, out, dlq] = [scope.topic("s-in"), scope.topic("s-out"), scope.topic("s-dlq")];
      await scope.createTopics([input, out], 1);
      const name = `${scope.id}-slices`;
      const f = await start(
        writeTopologies([
          {
            name,
            source: { topics: [input], max_batch_records: 10 },
            codec: { value: { type: "json" } },
            steps: [{ filter: { drop: { field: "status", eq: "cancelled" } } }],
            sinks: [{ type: "kafka", name: "out", topic: out, key: "{id}", value: { type: "json" } }],
            errors: { dlq: { topic: dlq } },
          },
        ]),
      );
      const messages = Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: i === 37 ? "{not json" : JSON.stringify({ id: `o${i}`, status: i % 10 === 5 ? "cancelled" : "open" }) }));
      const producer = scope.producer();
      await producer.connect();
      await producer.send({ topic: input, messages });
      await producer.disconnect();
      const expected = messages.map((_, i) => i).filter((i) => i !== 37 && i % 10 !== 5).map((i) => `o${i}`);
      const delivered = await collect(scope.kafka(), out, expected.length);
      expect(delivered.map((d) => d.key)).toEqual(expected);
      const letters = await collect(scope.kafka(), dlq, 1);
      expect(letters.map((l) => [l.key, l.headers["sf-error-code"]])).toEqual([["k37", "SF_ERR_DECODE_MALFORMED"]]);
      await waitUntil(async () => (await f.metrics.processed.get()).values.filter((v) => v.labels.topology === name).reduce((a, v) => a + v.value, 0) >= 100, 10_000, "outcomes counted");
      const outcomes = Object.fromEntries((await f.metrics.processed.get()).values.filter((v) => v.labels.topology === name).map((v) => [v.labels.outcome, v.value]));
      expect(outcomes).toMatchObject({ ok: 89, filtered: 10, dlq: 1 });
    });

    it("replays dead letters to their source once, and a second replay finds nothing", async () => {
      const [input, out] = [scope.topic("r-in"), scope.topic("r-out")];
      await scope.createTopics([input, out], 2);
      const name = `${scope.id}-replay`;
      const topology = () => ({
        name,
        source: { topics: [input] },
        codec: { value: { type: "json" } },
        sinks: [{ type: "kafka", topic: out, key: "{id}", value: { type: "json" } }],
        errors: { dlq: { topic: scope.topic("r-dlq") } },
      });
      // Three records the first version cannot decode go to the DLQ.
      const dir = writeTopologies([topology()]);
      const f = await start(dir);
      const producer = scope.producer();
      await producer.connect();
      await producer.send({ topic: input, messages: [{ key: "a", value: "{broken" }, { key: "b", value: "{broken", headers: { keep: "me" } }, { key: "c", value: "{broken" }, { key: "ok", value: JSON.stringify({ id: "ok" }) }] });
      await producer.disconnect();
      await collect(scope.kafka(), scope.topic("r-dlq"), 3);
      await f.stop(5000);
      const cli = (args: string[]) => execFileSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), ...args], { encoding: "utf8", env });
      expect(cli(["dlq", "replay", name, "--dir", dir])).toMatch(/replayed 3 record\(s\)/);
      expect(cli(["dlq", "replay", name, "--dir", dir])).toMatch(/replayed 0 record\(s\)/);
      const back = await collect(scope.kafka(), input, 7);
      const replayed = back.filter((m) => m.headers["sf-replayed-from"]);
      expect(replayed.map((m) => m.key).sort()).toEqual(["a", "b", "c"]);
      expect(replayed.find((m) => m.key === "b")?.headers.keep).toBe("me");
      expect(replayed.every((m) => m.value?.toString() === "{broken")).toBe(true);
    });
  });

  it("refuses a KAFKA_CLIENT it does not know, naming the variable", async () => {
    const scope = new TestScope("conf-bad");
    const dir = writeTopologies([{ name: `${scope.id}-x`, source: { topics: [scope.topic("x")] }, codec: { value: { type: "json" } }, sinks: [{ type: "null" }] }]);
    await expect(startFleet(dir, { ...process.env, KAFKA_CLIENT: "librdkafka" })).rejects.toThrow(/KAFKA_CLIENT must be kafkajs or platformatic, got librdkafka/);
    await scope.cleanup();
  });
});

/** The partition the Java client (and kafkajs's default partitioner) picks for a key: murmur2, positive, modulo. */
function javaPartition(key: string, partitions: number): number {
  const data = Buffer.from(key);
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ data.length) | 0;
  let i = 0;
  for (; i + 4 <= data.length; i += 4) {
    let k = data.readInt32LE(i);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = data.length - i;
  if (rest === 3) h ^= (data[i + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[i + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[i]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return (h & 0x7fffffff) % partitions;
}
