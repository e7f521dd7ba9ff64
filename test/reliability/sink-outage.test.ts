import { Redis } from "ioredis";
import { afterAll, expect, it } from "vitest";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { startFleet, writeTopologies } from "../support/fleet.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

const scope = new TestScope("outage");
let fleet: Fleet | undefined;
let redis: PrivateRedis | undefined;
afterAll(async () => {
  await fleet?.stop(5000);
  await redis?.kill();
  await scope.cleanup();
});

async function sum(f: Fleet, metric: "processed" | "paused" | "lag", outcome?: string): Promise<number> {
  const m = f.metrics[metric] as { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> };
  return (await m.get()).values.filter((v) => !outcome || v.labels.outcome === outcome).reduce((a, v) => a + v.value, 0);
}

describeStack("a sink whose server goes down", () => {
  it("pauses the partition, retries, and delivers every record once the server returns — none dead-lettered, none skipped", async () => {
    const input = scope.topic("in");
    await scope.createTopics([input], 1);
    redis = await PrivateRedis.start();
    const dir = writeTopologies([
      {
        name: `${scope.id}-cache`,
        source: { topics: [input] },
        codec: { value: { type: "json" } },
        sinks: [{ type: "redis.cache", key: "order:{id}" }],
        errors: { backoff_ms: 50, max_backoff_ms: 500, dlq: { topic: scope.topic("dlq") } },
      },
    ]);
    fleet = await startFleet(dir, { ...process.env, REDIS_URL: redis.url });
    const producer = scope.producer();
    await producer.connect();
    const send = (from: number, to: number) =>
      producer.send({ topic: input, messages: Array.from({ length: to - from }, (_, i) => ({ key: `o${from + i}`, value: JSON.stringify({ id: `o${from + i}` }) })) });

    await send(0, 50);
    const f = fleet;
    await waitUntil(async () => (await sum(f, "processed", "ok")) === 50, 30_000, "the first 50 records");
    await redis.kill();
    await send(50, 150);
    await waitUntil(async () => (await sum(f, "paused")) >= 1, 30_000, "the partition to pause");
    await new Promise((r) => setTimeout(r, 1500));
    expect(await sum(f, "processed", "ok")).toBe(50);
    expect(await sum(f, "processed", "dlq")).toBe(0);

    await redis.start();
    await waitUntil(async () => (await sum(f, "processed", "ok")) === 150, 60_000, "every record after the server returned");
    await producer.disconnect();
    expect(await sum(f, "paused")).toBe(0);
    expect(await sum(f, "processed", "dlq")).toBe(0);
    const check = new Redis(redis.url);
    const keys = await check.keys("order:*");
    check.disconnect();
    // The private Redis restarted empty (no persistence): what it holds now is exactly what was written after the outage.
    expect(keys.sort()).toEqual(Array.from({ length: 100 }, (_, i) => `order:o${50 + i}`).sort());
    const writes = (await f.metrics.sinkWrites.get()).values;
    expect(writes.find((v) => v.labels.result === "error")?.value ?? 0).toBeGreaterThan(0);
  });
});
