import { afterAll, describe, expect, it } from "vitest";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { avroEncoder, collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { KAFKA_CLIENTS } from "../support/kafka.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

describeStack("poison records go to the DLQ while the rest flow", () => {
  describe.each(KAFKA_CLIENTS)("KAFKA_CLIENT=%s", (client) => {
    const scope = new TestScope(`dlq-${client.slice(0, 4)}`);
    const env = { ...process.env, KAFKA_CLIENT: client };
    let fleet: Fleet | undefined;
    afterAll(async () => {
      await fleet?.stop(5000);
      await scope.cleanup();
    });

    it("dead-letters each kind of poison record with its reason headers and original bytes", async () => {
      const [orders, out, dlq] = [scope.topic("orders"), scope.topic("out"), scope.topic("dlq")];
      await scope.createTopics([orders, out], 1);
      const name = `${scope.id}-poison`;
      fleet = await startFleet(
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
        env,
      );
      const encode = await avroEncoder(orders, "./schemas/order.avsc");
      const good = (i: number) => encode({ id: `g${i}`, amount: i, status: "open", note: null });
      const validBody = good(99);
      const unknownId = Buffer.from(validBody);
      unknownId.writeInt32BE(987654, 1);
      const truncated = validBody.subarray(0, 7);
      const poison: Record<string, Buffer> = {
        "no-magic": Buffer.from('{"id":"json-not-avro"}'),
        "unknown-schema": unknownId,
        malformed: truncated,
        throws: encode({ id: "t1", amount: 1, status: "open", note: "boom" }),
      };
      const producer = scope.producer();
      await producer.connect();
      await producer.send({
        topic: orders,
        messages: [
          { key: "g0", value: good(0) },
          ...Object.entries(poison).map(([k, v]) => ({ key: k, value: v, headers: { origin: "test" } })),
          { key: "g1", value: good(1) },
          { key: "g2", value: good(2) },
        ],
      });
      await producer.disconnect();

      const letters = await collect(scope.kafka(), dlq, 4);
      const byKey = new Map(letters.map((l) => [l.key, l]));
      expect(byKey.get("no-magic")?.headers["sf-error-code"]).toBe("SF_ERR_DECODE_NO_MAGIC");
      expect(byKey.get("unknown-schema")?.headers["sf-error-code"]).toBe("SF_ERR_DECODE_UNKNOWN_SCHEMA");
      expect(byKey.get("malformed")?.headers["sf-error-code"]).toBe("SF_ERR_DECODE_MALFORMED");
      const thrown = byKey.get("throws")!;
      expect(thrown.headers["sf-error-code"]).toBe("SF_ERR_STEP_FAILED");
      expect(thrown.headers["sf-error-message"]).toContain("cannot enrich order t1");
      expect(thrown.headers["sf-step"]).toBe("steps[0].transform");
      expect(thrown.headers["sf-attempts"]).toBe("2");
      for (const [k, bytes] of Object.entries(poison)) {
        const l = byKey.get(k)!;
        expect(l.value?.equals(bytes), `${k} keeps its original bytes`).toBe(true);
        expect(l.headers).toMatchObject({ origin: "test", "sf-topology": name, "sf-source-topic": orders, "sf-source-partition": "0" });
        expect(Number(l.headers["sf-source-offset"])).toBeGreaterThan(0);
        expect(Date.parse(l.headers["sf-failed-at"]!)).not.toBeNaN();
      }
      const delivered = await collect(scope.kafka(), out, 3);
      expect(delivered.map((d) => d.key).sort()).toEqual(["g0", "g1", "g2"]);
    });

    it("dead-letters a record that fails validation against a named schema", async () => {
      const [input, out, dlq] = [scope.topic("json-in"), scope.topic("json-out"), scope.topic("json-dlq")];
      await scope.createTopics([input, out], 1);
      const f = await startFleet(
        writeTopologies([
          {
            name: `${scope.id}-validate`,
            source: { topics: [input] },
            codec: { value: { type: "json" } },
            steps: [{ validate: { schema: "./schemas/order.avsc" } }],
            sinks: [{ type: "kafka", topic: out, value: { type: "json" } }],
            errors: { dlq: { topic: dlq } },
          },
        ]),
        env,
      );
      try {
        const producer = scope.producer();
        await producer.connect();
        await producer.send({
          topic: input,
          messages: [
            { key: "ok", value: JSON.stringify({ id: "a", amount: 1.5, status: "open", note: null }) },
            { key: "bad", value: JSON.stringify({ id: "b", amount: "lots", status: "open", note: null }) },
            { key: "notjson", value: "{nope" },
          ],
        });
        await producer.disconnect();
        const letters = await collect(scope.kafka(), dlq, 2);
        const byKey = new Map(letters.map((l) => [l.key, l]));
        expect(byKey.get("bad")?.headers["sf-error-code"]).toBe("SF_ERR_VALIDATE_FAILED");
        expect(byKey.get("bad")?.headers["sf-error-message"]).toContain("amount");
        expect(byKey.get("notjson")?.headers["sf-error-code"]).toBe("SF_ERR_DECODE_MALFORMED");
        const delivered = await collect(scope.kafka(), out, 1);
        expect(delivered.map((d) => d.key)).toEqual(["ok"]);
      } finally {
        await f.stop(5000);
      }
    });
    it("takes a fetched batch larger than max_batch_records through in slices: order kept, poison dead-lettered, each record counted once", async () => {
      const [input, out, dlq] = [scope.topic("slices-in"), scope.topic("slices-out"), scope.topic("slices-dlq")];
      await scope.createTopics([input, out], 1);
      const name = `${scope.id}-slices`;
      const f = await startFleet(
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
        env,
      );
      try {
        // 100 records in one send (one fetch): every tenth cancelled (filtered), #37 not JSON.
        const messages = Array.from({ length: 100 }, (_, i) => ({
          key: `k${i}`,
          value: i === 37 ? "{not json" : JSON.stringify({ id: `o${i}`, status: i % 10 === 5 ? "cancelled" : "open" }),
        }));
        const producer = scope.producer();
        await producer.connect();
        await producer.send({ topic: input, messages });
        await producer.disconnect();
        const expected = messages.map((_, i) => i).filter((i) => i !== 37 && i % 10 !== 5).map((i) => `o${i}`);
        const delivered = await collect(scope.kafka(), out, expected.length);
        expect(delivered.map((d) => d.key)).toEqual(expected);
        const letters = await collect(scope.kafka(), dlq, 1);
        expect(letters.map((l) => [l.key, l.headers["sf-error-code"]])).toEqual([["k37", "SF_ERR_DECODE_MALFORMED"]]);
        // outcomes are counted once committed: up to source.commit_interval_ms after the sinks wrote
        const counted = async () => (await f.metrics.processed.get()).values.filter((v) => v.labels.topology === name).reduce((a, v) => a + v.value, 0);
        await waitUntil(async () => (await counted()) >= 100, 10_000, "outcomes counted");
        const outcomes = Object.fromEntries((await f.metrics.processed.get()).values.filter((v) => v.labels.topology === name).map((v) => [v.labels.outcome, v.value]));
        expect(outcomes).toMatchObject({ ok: 89, filtered: 10, dlq: 1 });
        const writes = (await f.metrics.sinkWrites.get()).values.filter((v) => v.labels.topology === name && v.labels.result === "ok").reduce((a, v) => a + v.value, 0);
        expect(writes, "at most 10 records per sink write: at least 9 writes for 89 records").toBeGreaterThanOrEqual(9);
      } finally {
        await f.stop(5000);
      }
    });
  });
});
