/**
 * The Kafka connector's conformance suite: the same scenarios through each client it offers
 * (KAFKA_CLIENT=kafkajs|platformatic), against the real broker — DLQ replay, and a client it
 * does not know. What a user sees must not depend on the client: the chain of two topologies
 * (runtime-chain.test.ts) and poison records, validation and slices (runtime-dlq.test.ts) run
 * through each client too.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { KAFKA_CLIENTS } from "../support/kafka.ts";
import { describeStack, TestScope } from "../support/scope.ts";

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
