import { afterAll, expect, it } from "vitest";
import type { Kafka } from "kafkajs";
import { writeTopologies } from "../support/fleet.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";

const scope = new TestScope("restart");
afterAll(() => scope.cleanup());

/**
 * Live view of the output topic: for each id, the distinct output records (partition/offset)
 * carrying it. Counting distinct offsets, not deliveries, keeps a re-delivery to this watcher
 * (its own rebalance) from looking like a record the worker processed twice.
 */
async function watchOutput(kafka: Kafka, topic: string) {
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
  return {
    ids,
    total: () => [...ids.values()].reduce((a, b) => a + b.size, 0),
    stop: () => consumer.disconnect(),
  };
}

async function produce(topic: string, n: number) {
  // Idempotent (see TestScope.producer): the output may show a record twice only if the worker wrote it twice.
  const producer = scope.producer();
  await producer.connect();
  for (let start = 0; start < n; start += 1000) {
    const messages = Array.from({ length: Math.min(1000, n - start) }, (_, j) => ({ key: `r${start + j}`, value: JSON.stringify({ id: `r${start + j}` }) }));
    await producer.send({ topic, messages });
  }
  await producer.disconnect();
}

function topology(name: string, input: string, output: string) {
  return {
    name,
    source: { topics: [input], session_timeout_ms: 8000 },
    codec: { value: { type: "json" } },
    steps: [{ transform: { module: "./transforms.ts", export: "slow" } }],
    sinks: [{ type: "kafka", topic: output, key: "{id}", value: { type: "json" } }],
    errors: { dlq: { topic: scope.topic(`${name}-dlq`) } },
  };
}

describeStack("worker restarts", () => {
  it("a worker killed with SIGKILL mid-stream and restarted delivers every record at least once", async () => {
    const [input, output] = [scope.topic("kill-in"), scope.topic("kill-out")];
    await scope.createTopics([input, output]);
    // Enough work (about 1 ms a record, 3 partitions) that the kill lands mid-stream.
    const n = 12_000;
    await produce(input, n);
    const dir = writeTopologies([topology(`${scope.id}-kill`, input, output)]);
    const watch = await watchOutput(scope.kafka(), output);
    const first = spawnWorker(dir);
    await waitUntil(() => watch.ids.size >= 200, 60_000, "the first worker to deliver 200 records");
    first.child.kill("SIGKILL");
    await first.exited;
    const atKill = watch.ids.size;
    expect(atKill).toBeLessThan(n);
    const second = spawnWorker(dir);
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
    const n = 4000;
    await produce(input, n);
    const dir = writeTopologies([topology(`${scope.id}-term`, input, output)]);
    const watch = await watchOutput(scope.kafka(), output);
    const first = spawnWorker(dir);
    await waitUntil(() => watch.ids.size >= 400, 60_000, "the first worker to deliver 400 records");
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    const second = spawnWorker(dir);
    try {
      await waitUntil(() => watch.ids.size >= n, 90_000, `all ${n} ids after restart`);
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
