import { afterAll, describe, expect, it } from "vitest";
import { writeTopologies } from "../support/fleet.ts";
import { KAFKA_CLIENTS, produceNumbered, watchOutput } from "../support/kafka.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";

/** Worker processes killed and restarted mid-stream, through each Kafka client (KAFKA_CLIENT reaches the workers). */
describeStack("worker restarts", () => {
  describe.each(KAFKA_CLIENTS)("KAFKA_CLIENT=%s", (client) => {
    const scope = new TestScope(`restart-${client.slice(0, 4)}`);
    afterAll(() => scope.cleanup());
    const env = { KAFKA_CLIENT: client };
    const topology = (name: string, input: string, output: string) => ({
      name,
      source: { topics: [input], session_timeout_ms: 8000 },
      codec: { value: { type: "json" } },
      steps: [{ transform: { module: "./transforms.ts", export: "slow" } }],
      sinks: [{ type: "kafka", topic: output, key: "{id}", value: { type: "json" } }],
      errors: { dlq: { topic: scope.topic(`${name}-dlq`) } },
    });

    it("a worker killed with SIGKILL mid-stream and restarted delivers every record at least once", async () => {
      const [input, output] = [scope.topic("kill-in"), scope.topic("kill-out")];
      await scope.createTopics([input, output]);
      // Enough work (about 1 ms a record, 3 partitions) that the kill lands mid-stream.
      const n = 12_000;
      await produceNumbered(scope, input, n);
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
      await produceNumbered(scope, input, n);
      const dir = writeTopologies([topology(`${scope.id}-term`, input, output)]);
      const watch = await watchOutput(scope, scope.kafka(), output);
      const first = spawnWorker(dir, env);
      await waitUntil(() => watch.ids.size >= 400, 60_000, "the first worker to deliver 400 records");
      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      const atStop = watch.ids.size;
      const second = spawnWorker(dir, env);
      try {
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
