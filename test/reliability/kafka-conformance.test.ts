/**
 * The Kafka connector's conformance suite, reliability part: worker processes killed and
 * restarted mid-stream, a sink outage (partitions paused and resumed), through each client
 * (KAFKA_CLIENT=kafkajs|platformatic).
 */
import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { Kafka } from "kafkajs";
import { Redis } from "ioredis";
import { startFleet, writeTopologies } from "../support/fleet.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";
import type { WorkerProcess } from "../support/worker.ts";

const KAFKA_CLIENTS = ["kafkajs", "platformatic"] as const;

/** For each id, the distinct output records (partition/offset) carrying it: a re-delivery to this watcher is not a duplicate. */
async function watchOutput(scope: TestScope, kafka: Kafka, topic: string) {
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

async function produce(scope: TestScope, topic: string, n: number, from = 0) {
  const producer = scope.producer();
  await producer.connect();
  for (let start = from; start < from + n; start += 1000) {
    await producer.send({ topic, messages: Array.from({ length: Math.min(1000, from + n - start) }, (_, j) => ({ key: `r${start + j}`, value: JSON.stringify({ id: `r${start + j}` }) })) });
  }
  await producer.disconnect();
}

/** A worker is started once it logged so (its SIGTERM handler is in place from then on). */
const started = (w: WorkerProcess) => waitUntil(() => fs.existsSync(w.logFile) && fs.readFileSync(w.logFile, "utf8").includes('"msg":"worker started"'), 60_000, "the worker to start");

describeStack("Kafka connector conformance: restarts and outages", () => {
  describe.each(KAFKA_CLIENTS)("KAFKA_CLIENT=%s", (client) => {
    const scope = new TestScope(`rconf-${client.slice(0, 4)}`);
    afterAll(() => scope.cleanup());
    const topology = (name: string, input: string, output: string) => ({
      name,
      source: { topics: [input], session_timeout_ms: 8000 },
      codec: { value: { type: "json" } },
      steps: [{ transform: { module: "./transforms.ts", export: "slow" } }],
      sinks: [{ type: "kafka", topic: output, key: "{id}", value: { type: "json" } }],
      errors: { dlq: { topic: scope.topic(`${name}-dlq`) } },
    });
    const env = { KAFKA_CLIENT: client };

    it("a worker killed with SIGKILL mid-stream and restarted delivers every record at least once", async () => {
      const [input, output] = [scope.topic("kill-in"), scope.topic("kill-out")];
      await scope.createTopics([input, output]);
      const n = 12_000;
      await produce(scope, input, n);
      const dir = writeTopologies([topology(`${scope.id}-kill`, input, output)]);
      const watch = await watchOutput(scope, scope.kafka(), output);
      const first = spawnWorker(dir, env);
      await waitUntil(() => watch.ids.size >= 200, 60_000, "the first worker to deliver 200 records");
      first.child.kill("SIGKILL");
      await first.exited;
      const atKill = watch.ids.size;
      expect(atKill).toBeLessThan(n);
      const second = spawnWorker(dir, env);
      try {
        await waitUntil(() => watch.ids.size >= n, 90_000, `all ${n} ids after restart (had ${atKill} at kill)`);
      } finally {
        second.child.kill("SIGTERM");
        await second.exited;
        await watch.stop();
      }
      for (let i = 0; i < n; i++) expect(watch.ids.has(`r${i}`), `r${i} delivered`).toBe(true);
    });

    it("a sink outage pauses the partitions it holds up; once the sink is back every record lands and they resume", { timeout: 120_000 }, async () => {
      const redis = await PrivateRedis.start();
      const client2 = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        const input = scope.topic("outage-in");
        await scope.createTopics([input]);
        const name = `${scope.id}-outage`;
        const fleet = await startFleet(
          writeTopologies([
            {
              name,
              source: { topics: [input] },
              codec: { value: { type: "json" } },
              sinks: [{ type: "redis.cache", key_prefix: scope.keyPrefix, key: "entity:{id}" }],
              errors: { backoff_ms: 50, max_backoff_ms: 300, dlq: { topic: scope.topic("outage-dlq") } },
            },
          ]),
          { ...process.env, ...env, REDIS_URL: redis.url },
        );
        const paused = async () => (await fleet.metrics.paused.get()).values.filter((v) => v.labels.topology === name).reduce((a, v) => a + v.value, 0);
        try {
          await produce(scope, input, 300);
          await client2.connect();
          await waitUntil(async () => (await client2.dbsize()) >= 300, 30_000, "the first 300 records in Redis");
          client2.disconnect();
          await redis.kill();
          // Written while Redis is down: the sink fails, the partitions holding them pause and retry.
          await produce(scope, input, 600, 300);
          await waitUntil(async () => (await paused()) > 0, 30_000, "a paused partition while Redis is down");
          await redis.start();
          // The restarted Redis is empty (no persistence): what it holds now came after the outage.
          await client2.connect();
          await waitUntil(async () => (await client2.dbsize()) >= 600, 60_000, "the 600 records written during the outage");
          const missing: string[] = [];
          for (let i = 300; i < 900; i++) if (!(await client2.exists(`${scope.keyPrefix}entity:r${i}`))) missing.push(`r${i}`);
          expect(missing).toEqual([]);
          await waitUntil(async () => (await paused()) === 0, 30_000, "every partition resumed");
        } finally {
          await fleet.stop(5000);
        }
      } finally {
        client2.disconnect();
        await redis.kill();
      }
    });

    it("SIGTERM drains and commits: after a clean restart no record is processed twice", async () => {
      const [input, output] = [scope.topic("term-in"), scope.topic("term-out")];
      await scope.createTopics([input, output]);
      const n = 12_000;
      await produce(scope, input, n);
      const dir = writeTopologies([topology(`${scope.id}-term`, input, output)]);
      const watch = await watchOutput(scope, scope.kafka(), output);
      const first = spawnWorker(dir, env);
      await waitUntil(() => watch.ids.size >= 400, 60_000, "the first worker to deliver 400 records");
      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      const atStop = watch.ids.size;
      const second = spawnWorker(dir, env);
      try {
        await started(second);
        await waitUntil(() => watch.ids.size >= n, 90_000, `all ${n} ids after restart (had ${atStop} at the stop)`);
        // Give a duplicate time to show up before judging.
        await new Promise((r) => setTimeout(r, 3000));
      } finally {
        second.child.kill("SIGTERM");
        expect(await second.exited).toBe(0);
        await watch.stop();
      }
      const duplicates = [...watch.ids].filter(([, at]) => at.size > 1).map(([id]) => id);
      expect(duplicates).toEqual([]);
      expect(watch.total()).toBe(n);
    });
  });
});
