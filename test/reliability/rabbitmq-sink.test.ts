import { execFile } from "node:child_process";
import { promisify } from "node:util";
import amqp from "amqplib";
import type { ChannelModel } from "amqplib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rabbitmq, rabbitmqSink } from "../../lib/connectors/rabbitmq/index.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { SfError, isRetriable } from "../../lib/errors.ts";
import type { ComponentContext, Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { startTrainingReceiver } from "../../workers/rabbitmq-receiver.ts";
import type { ModelTrainingCompleted } from "../../workers/rabbitmq-receiver.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const run = promisify(execFile);
const scope = new TestScope("rabbitmq");
const sinks: Sink[] = [];
let conn: ChannelModel;

beforeAll(async () => {
  conn = await amqp.connect(stack().AMQP_URL);
  conn.on("error", () => {}); // the restart test takes the broker down under it
});
afterAll(async () => {
  for (const s of sinks) await s.close();
  await conn.close().catch(() => {});
  await scope.cleanup();
});

async function openSink(config: Record<string, unknown>, ctx: ComponentContext = makeContext({ component: "sinks[0]:rabbitmq" })): Promise<Sink> {
  const sink = await rabbitmqSink.create(rabbitmqSink.schema.parse(config), ctx);
  sinks.push(sink);
  await sink.open?.();
  return sink;
}

/** Takes every message off a queue and returns their messageIds. */
async function drain(queue: string): Promise<string[]> {
  const ch = await conn.createChannel();
  const ids: string[] = [];
  // noAck: a separate ack frame per get meets Nagle + delayed ACK (40 ms a message).
  for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) ids.push(String(m.properties.messageId));
  await ch.close();
  return ids;
}

/** What the runtime does: retry the whole batch while the sink throws a retriable error. */
async function writeUntilAccepted(sink: Sink, batch: StreamRecord[], errors: SfError[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await sink.write(batch);
      return;
    } catch (err) {
      if (!isRetriable(err) || Date.now() > deadline) throw err;
      errors.push(err as SfError);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const rejection = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as SfError);

describeStack("rabbitmq sink", () => {
  it("declares its topology and publishes persistent, confirmed messages with ids and headers", async () => {
    const exchange = scope.exchange("events");
    const queue = scope.queue("events");
    const sink = await openSink({
      exchange,
      routing_key: "order.{kind}",
      headers: { "x-tenant": "{tenant}", "x-topic": "{$topic}" },
      body: { id: "{id}", total: "{total}" },
      declare: { exchanges: [{ name: exchange, type: "topic" }], queues: [{ name: queue, quorum: true, bindings: [{ exchange, routing_key: "order.*" }] }] },
    });
    const records = [1, 2, 3].map((i) => makeRecord({ id: `o${i}`, kind: "created", tenant: "acme", total: i * 1.5 }, { topic: "orders" }));
    await sink.write(records);
    const ch = await conn.createChannel();
    const q = await ch.checkQueue(queue);
    expect(q.messageCount).toBe(3);
    const m = await ch.get(queue, { noAck: true });
    if (!m) throw new Error("expected a message");
    expect(JSON.parse(m.content.toString())).toEqual({ id: "o1", total: 1.5 });
    expect(m.properties.messageId).toBe(records[0]!.id);
    expect(m.properties.deliveryMode).toBe(2);
    expect(m.properties.headers).toMatchObject({ "x-tenant": "acme", "x-topic": "orders" });
    expect(m.fields.routingKey).toBe("order.created");
    await ch.close();
    await rabbitmq.health!(new Connections(process.env), AbortSignal.timeout(5000));
  });

  it("reports a message refused by a full reject-publish queue and retries the batch", async () => {
    const queue = scope.queue("bounded");
    const sink = await openSink({ routing_key: queue, declare: { queues: [{ name: queue, max_length: 5, overflow: "reject-publish" }] } });
    const first = [0, 1, 2, 3].map((i) => makeRecord({ i }));
    const second = [4, 5, 6, 7].map((i) => makeRecord({ i }));
    await sink.write(first);
    const err = await rejection(sink.write(second));
    expect(err).toBeInstanceOf(SfError);
    expect(err!.code).toBe("SF_ERR_SINK_REJECTED");
    expect(err!.retriable).toBe(true);
    expect(err!.message).toMatch(/3 refused by the broker/);
    // A consumer makes room; the retried batch now goes through in full.
    const seen = await drain(queue);
    await sink.write(second);
    seen.push(...(await drain(queue)));
    expect(new Set(seen)).toEqual(new Set([...first, ...second].map((r) => r.id)));
  });

  it("reports an unroutable message (mandatory, no binding) and never counts it as delivered", async () => {
    const exchange = scope.exchange("nobody");
    const queue = scope.queue("late");
    const ctx = makeContext({ component: "sinks[1]:rabbitmq" });
    const sink = await openSink({ exchange, routing_key: "k.{n}", declare: { exchanges: [{ name: exchange, type: "direct" }] } }, ctx);
    const batch = [makeRecord({ n: 1 }), makeRecord({ n: 2 })];
    const err = await rejection(sink.write(batch));
    expect(err?.code).toBe("SF_ERR_SINK_REJECTED");
    expect(err?.message).toMatch(/2 unroutable/);
    const metrics = await ctx.metrics.registry.getSingleMetricAsString("streamfleet_rabbitmq_refused_total");
    expect(metrics).toMatch(/reason="unroutable"} 2/);
    // Once a queue is bound, the retried batch is routed.
    const ch = await conn.createChannel();
    await ch.assertQueue(queue);
    await ch.bindQueue(queue, exchange, "k.1");
    await ch.bindQueue(queue, exchange, "k.2");
    await ch.close();
    await sink.write(batch);
    expect((await drain(queue)).sort()).toEqual(batch.map((r) => r.id).sort());
  });

  it("reports an unreachable broker as a retriable not-connected error", async () => {
    const ctx = makeContext({ connections: new Connections({ AMQP_URL: "amqp://guest:guest@127.0.0.1:1" }) });
    const sink = await rabbitmqSink.create(rabbitmqSink.schema.parse({ routing_key: "x" }), ctx);
    const err = await rejection(sink.open!());
    expect(err?.code).toBe("SF_ERR_SINK_NOT_CONNECTED");
    expect((await rejection(sink.write([makeRecord({})])))?.retriable).toBe(true);
    await sink.close();
  });

  it("feeds the training receiver, which reports model_training_completed and dead-letters a poison request", async () => {
    const exchange = scope.exchange("training");
    const dlx = scope.exchange("training-dlx");
    const queue = scope.queue("training");
    const dead = scope.queue("training-dead");
    const sink = await openSink({
      exchange,
      routing_key: "training.{model}",
      message_type: "training.requested",
      declare: {
        exchanges: [{ name: exchange, type: "topic" }, { name: dlx, type: "fanout" }],
        queues: [
          { name: queue, dead_letter_exchange: dlx, bindings: [{ exchange, routing_key: "training.#" }] },
          { name: dead, bindings: [{ exchange: dlx }] },
        ],
      },
    });
    const reports: ModelTrainingCompleted[] = [];
    const receiver = await startTrainingReceiver({ amqpUrl: stack().AMQP_URL, queue, maxRetries: 1, report: (e) => void reports.push(e) });
    try {
      const requests = [makeRecord({ model: "churn", dataset: "d1", epochs: 2 }), makeRecord({ model: "fraud", dataset: "d2" }), makeRecord({ model: "", dataset: "bad" })];
      await sink.write(requests);
      await expect.poll(() => reports.length, { timeout: 10_000 }).toBe(2);
      expect(reports.map((r) => r.model).sort()).toEqual(["churn", "fraud"]);
      const churn = reports.find((r) => r.model === "churn")!;
      expect(churn).toMatchObject({ type: "model_training_completed", request_id: requests[0]!.id, dataset: "d1" });
      expect(churn.metrics.accuracy).toBeGreaterThan(0.5);
      await expect.poll(async () => (await drain(dead)).length + 0, { timeout: 10_000 }).toBe(1);
    } finally {
      await receiver.close();
    }
  });

  it("waits for the channel to drain when publish pushes back, and loses nothing", async () => {
    const queue = scope.queue("big");
    const sink = await openSink({ routing_key: queue, declare: { queues: [{ name: queue }] } });
    // amqplib buffers 1024 frames a channel; 5,000 messages (2 frames each) in one batch
    // overflow it, so publish returns false and the sink has to wait for `drain`.
    const records = Array.from({ length: 5000 }, (_, i) => makeRecord({ i }));
    await sink.write(records);
    expect(new Set(await drain(queue))).toEqual(new Set(records.map((r) => r.id)));
  });

  it("survives a real broker restart mid-stream: every record confirmed in its queue, none lost", async () => {
    const queue = scope.queue("restart");
    const sink = await openSink({ routing_key: queue, declare: { queues: [{ name: queue, durable: true }] } });
    const batches = Array.from({ length: 30 }, (_, b) => Array.from({ length: 50 }, (_, i) => makeRecord({ b, i })));
    const errors: SfError[] = [];
    let restarted: Promise<void> | undefined;
    try {
      for (const [b, batch] of batches.entries()) {
        if (b === 5) {
          // stop_app closes every client connection, exactly as a broker going down does.
          await run("rabbitmqctl", ["stop_app"]);
          restarted = new Promise((r) => setTimeout(r, 1500)).then(() => run("rabbitmqctl", ["start_app"])).then(() => undefined);
        }
        await writeUntilAccepted(sink, batch, errors);
      }
    } finally {
      await restarted?.catch(() => {});
      await run("rabbitmqctl", ["start_app"]);
    }
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e.code === "SF_ERR_SINK_NOT_CONNECTED")).toBe(true);
    // The test's own connection died with the broker, too.
    conn = await amqp.connect(stack().AMQP_URL);
    conn.on("error", () => {});
    const ids = await drain(queue);
    expect(new Set(ids)).toEqual(new Set(batches.flat().map((r) => r.id)));
  });
});
