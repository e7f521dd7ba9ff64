/**
 * RabbitMQ sink throughput: persistent messages/s through the `rabbitmq` sink (templates,
 * mandatory, confirms awaited per batch) against a bare amqplib confirm-channel publisher
 * doing the same (persistent, per-batch waitForConfirms) into a same-shaped queue.
 * Run: node test/bench/rabbitmq.bench.ts   (AMQP_URL; BENCH_RECORDS=20000 BENCH_BATCH=500)
 */
import crypto from "node:crypto";
import amqp from "amqplib";
import { rabbitmqSink } from "../../lib/connectors/rabbitmq/index.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { StreamRecord } from "../../lib/runtime/contracts.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { benchEnv, bestOfRounds } from "./support.ts";

const env = benchEnv();
const N = Number(env.BENCH_RECORDS ?? 20_000);
const BATCH = Number(env.BENCH_BATCH ?? 500);
const ROUNDS = 3;
const tag = crypto.randomBytes(4).toString("hex");
const conn = await amqp.connect(env.AMQP_URL!);
const admin = await conn.createChannel();

function records(round: string): StreamRecord[] {
  return Array.from({ length: N }, (_, i) => makeRecord({ model: "churn", dataset: `d${i % 10}`, epochs: i % 5, requested_by: `user-${i}` }, { topic: `bench.${round}`, offset: String(i) }));
}

async function baseline(round: number): Promise<number> {
  const queue = `bench.${tag}.base${round}`;
  await admin.assertQueue(queue, { durable: true });
  const ch = await conn.createConfirmChannel();
  const recs = records(`b${round}`);
  const t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    for (const r of recs.slice(i, i + BATCH)) {
      const ok = ch.publish("", queue, Buffer.from(JSON.stringify(r.value)), { persistent: true, mandatory: true, messageId: r.id, contentType: "application/json" });
      if (!ok) await new Promise((res) => ch.once("drain", res));
    }
    await ch.waitForConfirms();
  }
  const ms = performance.now() - t0;
  await ch.close();
  await admin.deleteQueue(queue);
  return (N / ms) * 1000;
}

async function viaSink(round: number): Promise<number> {
  const queue = `bench.${tag}.sink${round}`;
  const config = rabbitmqSink.schema.parse({ routing_key: queue, declare: { queues: [{ name: queue, durable: true }] } });
  const sink = await rabbitmqSink.create(config, makeContext({ connections: new Connections(env) }));
  await sink.open!();
  const recs = records(`s${round}`);
  const t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) await sink.write(recs.slice(i, i + BATCH));
  const ms = performance.now() - t0;
  const { messageCount } = await admin.checkQueue(queue);
  if (messageCount !== N) throw new Error(`expected ${N} messages, the queue holds ${messageCount}`);
  await sink.close();
  await admin.deleteQueue(queue);
  return (N / ms) * 1000;
}

await bestOfRounds({
  title: `rabbitmq: ${N} persistent messages, batches of ${BATCH} (confirms awaited per batch)`,
  unit: "msgs/s",
  rounds: ROUNDS,
  baseline: { label: "bare confirm channel", run: baseline },
  candidate: { label: "rabbitmq sink", run: viaSink },
});
await conn.close();
