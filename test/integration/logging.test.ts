import crypto from "node:crypto";
import { afterAll, expect, it } from "vitest";
import { createLogger } from "../../lib/observability/logger.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { writeTopologies } from "../support/fleet.ts";
import { eventually } from "../support/observability.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { describeStack, TestScope } from "../support/scope.ts";

interface Line {
  level: number;
  msg: string;
  topology?: string;
  topic?: string;
  partition?: number;
  offset?: string;
  [k: string]: unknown;
}

const scope = new TestScope("logs");
const redisPassword = `redis-${crypto.randomBytes(8).toString("hex")}`;
const amqpPassword = `amqp-${crypto.randomBytes(8).toString("hex")}`;
const raw: string[] = [];
let fleet: Fleet | undefined;
let redis: PrivateRedis | undefined;

afterAll(async () => {
  await fleet?.stop(5000);
  await redis?.kill();
  await scope.cleanup();
});

function total(metric: { values: Array<{ labels: Record<string, string | number>; value: number }> }, labels: Record<string, string>): number {
  return metric.values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want)).reduce((a, v) => a + v.value, 0);
}

describeStack("worker logs", () => {
  it("carry topology/topic/partition/offset on record lines, honour log_level per topology, and never a password", { timeout: 120_000 }, async () => {
    redis = await PrivateRedis.start({ password: redisPassword });
    const [loudIn, quietIn, quietOut] = [scope.topic("loud"), scope.topic("quiet"), scope.topic("quiet-out")];
    await scope.createTopics([loudIn, quietIn, quietOut], 2);
    const loud = `${scope.id}-loud`;
    const quiet = `${scope.id}-quiet`;
    const dir = writeTopologies([
      {
        name: loud,
        source: { topics: [loudIn], start: "earliest" },
        codec: { value: { type: "json" } },
        sinks: [{ type: "redis.cache", key_prefix: scope.keyPrefix, key: "entity:{id}" }],
        errors: { backoff_ms: 50, max_backoff_ms: 300, dlq: { topic: scope.topic("loud-dlq") } },
      },
      {
        name: quiet,
        log_level: "error",
        source: { topics: [quietIn], start: "earliest" },
        codec: { value: { type: "json" } },
        sinks: [{ type: "kafka", topic: quietOut, value: { type: "json" } }],
        errors: { dlq: { topic: scope.topic("quiet-dlq") } },
      },
    ]);
    const env = { ...process.env, REDIS_URL: redis.url, AMQP_URL: `amqp://guest:${amqpPassword}@127.0.0.1:5672` };
    const logger = createLogger({ level: "info", destination: { write: (s: string) => void raw.push(s) } });
    fleet = await Fleet.load([dir], { env, logger });
    await fleet.start();

    const producer = scope.producer();
    await producer.connect();
    const good = (i: number) => ({ key: `e${i}`, value: JSON.stringify({ id: `e${i}` }) });
    await producer.send({ topic: loudIn, messages: [good(1), good(2), { key: "bad", value: "{not json" }] });
    await producer.send({ topic: quietIn, messages: [good(3), { key: "bad", value: "{not json" }] });
    const processed = () => fleet!.metrics.processed.get();
    await eventually("both topologies to finish their records", async () => {
      const p = await processed();
      return total(p, { topology: loud, outcome: "ok" }) === 2 && total(p, { topology: loud, outcome: "dlq" }) === 1 && total(p, { topology: quiet, outcome: "dlq" }) === 1 ? true : undefined;
    });

    // a Redis outage: the sink's error (and its retry line) name the server, never its password
    await redis.kill();
    await producer.send({ topic: loudIn, messages: [good(4)] });
    await eventually("the outage to be logged", async () => (raw.some((l) => l.includes("partition paused, retrying")) ? true : undefined));
    const health = await fleet.health();
    raw.push(JSON.stringify(health));
    await redis.start();
    await eventually("the record to go through after Redis returns", async () => (total(await processed(), { topology: loud, outcome: "ok" }) === 3 ? true : undefined), 30_000);
    await producer.disconnect();
    await fleet.stop(5000);
    fleet = undefined;
    logger.flush();

    const text = raw.join("");
    expect(text).not.toContain(redisPassword);
    expect(text).not.toContain(amqpPassword);
    expect(health.find((h) => h.component === "rabbitmq" || h.component === "redis")).toBeDefined();

    const lines = raw.filter((l) => l.startsWith("{\"level\"")).map((l) => JSON.parse(l) as Line);
    const recordLines = lines.filter((l) => /record sent to the DLQ|partition paused, retrying/.test(l.msg));
    expect(recordLines.map((l) => l.msg.split(":")[0])).toEqual(expect.arrayContaining(["record sent to the DLQ", `sink redis.cache failed, partition paused, retrying`]));
    for (const l of recordLines) {
      expect(l, l.msg).toMatchObject({ topology: loud, topic: loudIn, partition: expect.any(Number), offset: expect.stringMatching(/^\d+$/) });
    }
    expect(lines.some((l) => l.topology === loud && l.msg === "topology started")).toBe(true);
    // log_level: error — the quiet topology dead-lettered a record but wrote no info/warn line
    expect(lines.filter((l) => l.topology === quiet && l.level < 50)).toEqual([]);
  });
});
