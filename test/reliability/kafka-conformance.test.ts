/**
 * The Kafka connector's conformance suite, reliability part: worker processes killed and
 * restarted mid-stream, through each client (KAFKA_CLIENT=kafkajs|platformatic).
 */
import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { Kafka } from "kafkajs";
import { writeTopologies } from "../support/fleet.ts";
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

async function produce(scope: TestScope, topic: string, n: number) {
  const producer = scope.producer();
  await producer.connect();
  for (let start = 0; start < n; start += 1000) {
    await producer.send({ topic, messages: Array.from({ length: Math.min(1000, n - start) }, (_, j) => ({ key: `r${start + j}`, value: JSON.stringify({ id: `r${start + j}` }) })) });
  }
  await producer.disconnect();
}

/** A worker is started once it logged so (its SIGTERM handler is in place from then on). */
const started = (w: WorkerProcess) => waitUntil(() => fs.existsSync(w.logFile) && fs.readFileSync(w.logFile, "utf8").includes('"msg":"worker started"'), 60_000, "the worker to start");

describeStack("Kafka connector conformance: worker restarts", () => {
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
