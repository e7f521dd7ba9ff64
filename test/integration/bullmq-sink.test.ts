import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { bullmq, bullmqSink } from "../../lib/connectors/bullmq/index.ts";
import { sanitizeJobId } from "../../lib/connectors/bullmq/sink.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { SfError } from "../../lib/errors.ts";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { startNotificationWorker } from "../../workers/bullmq-receiver.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const scope = new TestScope("bullmq");
// BullMQ joins prefix and queue with ':'; without the scope's trailing ':' keys stay under it.
const prefix = scope.keyPrefix.slice(0, -1);
let redis: Redis;
const sinks: Sink[] = [];

beforeAll(() => {
  redis = new Redis(stack().REDIS_URL);
});
afterAll(async () => {
  for (const s of sinks) await s.close();
  redis.disconnect();
  await scope.cleanup();
});

async function openSink(config: Record<string, unknown>): Promise<Sink> {
  const parsed = bullmqSink.schema.parse({ prefix, ...config });
  const sink = await bullmqSink.create(parsed, makeContext({ component: "sinks[0]:bullmq" }));
  sinks.push(sink);
  await sink.open?.();
  return sink;
}

describeStack("bullmq sink", () => {
  it("dispatches one job per record with templated name, data and options", async () => {
    const queue = `${scope.id}.jobs`;
    const sink = await openSink({
      queue,
      job_name: "notify.{channel}",
      data: { to: "{user.email}", message: "Hello {user.name}", amount: "{amount}" },
      options: { attempts: 3, backoff: { type: "exponential", delay: 100 }, priority: 5 },
    });
    const records = [1, 2, 3].map((i) => makeRecord({ channel: "email", amount: i * 10, user: { email: `u${i}@x.io`, name: `U${i}` } }, { topic: "orders" }));
    await sink.write(records);

    const q = new Queue(queue, { connection: redis, prefix });
    const jobs = await q.getJobs(["prioritized", "waiting"]);
    await q.close();
    expect(jobs).toHaveLength(3);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    const job = byId.get(records[1]!.id)!;
    expect(job.name).toBe("notify.email");
    expect(job.data).toEqual({ to: "u2@x.io", message: "Hello U2", amount: 20 });
    expect(job.opts.attempts).toBe(3);
    expect(job.opts.priority).toBe(5);
  });

  it("adds no second job when a batch is replayed", async () => {
    const queue = `${scope.id}.replay`;
    const sink = await openSink({ queue });
    const records = Array.from({ length: 50 }, (_, i) => makeRecord({ i }, { topic: "replay" }));
    await sink.write(records);
    await sink.write(records);
    await sink.write(records.slice(10, 20));
    const q = new Queue(queue, { connection: redis, prefix });
    expect(await q.getJobCountByTypes("waiting")).toBe(50);
    await q.close();
  });

  it("turns job ids BullMQ forbids (':' or all digits) into valid, distinct ones", async () => {
    expect(sanitizeJobId("a:b")).toBe("a%3Ab");
    expect(sanitizeJobId("a%3Ab")).toBe("a%253Ab");
    expect(sanitizeJobId("42")).toBe("id-42");
    const queue = `${scope.id}.ids`;
    const sink = await openSink({ queue, job_id: "{order}" });
    await sink.write([makeRecord({ order: "shop:1" }), makeRecord({ order: 77 }), makeRecord({ order: "shop:1" })]);
    const q = new Queue(queue, { connection: redis, prefix });
    const ids = (await q.getJobs(["waiting"])).map((j) => j.id).sort();
    await q.close();
    expect(ids).toEqual(["id-77", "shop%3A1"]);
  });

  it("reports an unreachable Redis as a retriable not-connected error", async () => {
    const ctx = makeContext({ connections: new Connections({ REDIS_URL: "redis://127.0.0.1:1" }) });
    const sink = await bullmqSink.create(bullmqSink.schema.parse({ queue: "nowhere", prefix }), ctx);
    const err = await sink.write([makeRecord({ a: 1 })]).catch((e: unknown) => e);
    await sink.close();
    expect(err).toBeInstanceOf(SfError);
    expect((err as SfError).code).toBe("SF_ERR_SINK_NOT_CONNECTED");
    expect((err as SfError).retriable).toBe(true);
    await expect(bullmq.health!(new Connections({ REDIS_URL: "redis://127.0.0.1:1" }), AbortSignal.timeout(2000))).rejects.toThrow();
    await bullmq.health!(new Connections(process.env), AbortSignal.timeout(2000));
  });

  it("is carried out by the example notification worker, retries included", async () => {
    const queue = `${scope.id}.notifications`;
    const sink = await openSink({
      queue,
      job_name: "notify",
      data: { to: "{email}", message: "{text}" },
      options: { attempts: 2, backoff: { type: "fixed", delay: 50 } },
    });
    let flaky = 0;
    const worker = await startNotificationWorker({
      redisUrl: stack().REDIS_URL,
      queue,
      prefix,
      sentList: `${scope.keyPrefix}sent`,
      failedList: `${scope.keyPrefix}failed`,
      send: async (n, job) => {
        // The "flaky" notification fails once, then succeeds on BullMQ's retry.
        if (n.to === "flaky@x.io" && flaky++ === 0) throw new Error("smtp timeout");
        await redis.rpush(`${scope.keyPrefix}sent`, JSON.stringify({ jobId: job.id, to: n.to, message: n.message }));
      },
    });
    try {
      const records = [makeRecord({ email: "a@x.io", text: "hi" }), makeRecord({ email: "flaky@x.io", text: "retry me" }), makeRecord({ email: 5, text: "bad" })];
      await sink.write(records);
      await expect.poll(async () => redis.llen(`${scope.keyPrefix}sent`), { timeout: 10_000 }).toBe(2);
      await expect.poll(async () => redis.llen(`${scope.keyPrefix}failed`), { timeout: 10_000 }).toBe(1);
      const sent = (await redis.lrange(`${scope.keyPrefix}sent`, 0, -1)).map((s) => JSON.parse(s) as { to: string; jobId: string });
      expect(sent.map((s) => s.to).sort()).toEqual(["a@x.io", "flaky@x.io"]);
      const q = new Queue(queue, { connection: redis, prefix });
      expect(await q.getJobCountByTypes("completed")).toBe(2);
      const failedJob = await q.getJob(records[2]!.id);
      expect(failedJob?.failedReason).toMatch(/not a notification/);
      expect(failedJob?.attemptsMade).toBe(2);
      await q.close();
    } finally {
      await worker.close();
    }
  });
});
