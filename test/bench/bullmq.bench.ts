/**
 * BullMQ sink throughput: jobs/s through the `bullmq` sink (templates, job-id sanitising,
 * one addBulk per batch) against Queue.addBulk called directly with prebuilt jobs.
 * Run: node test/bench/bullmq.bench.ts   (REDIS_URL; BENCH_RECORDS=20000 BENCH_BATCH=500)
 */
import crypto from "node:crypto";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { bullmqSink } from "../../lib/connectors/bullmq/index.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { StreamRecord } from "../../lib/runtime/contracts.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { benchEnv, bestOfRounds } from "./support.ts";

const env = benchEnv();
const N = Number(env.BENCH_RECORDS ?? 20_000);
const BATCH = Number(env.BENCH_BATCH ?? 500);
const ROUNDS = 3;
const prefix = `bench:${crypto.randomBytes(4).toString("hex")}`;
const redis = new Redis(env.REDIS_URL!, { maxRetriesPerRequest: null });

function records(round: string): StreamRecord[] {
  return Array.from({ length: N }, (_, i) => makeRecord({ user: { email: `u${i}@x.io`, name: `U${i}` }, channel: "email", amount: i }, { topic: `bench.${round}`, offset: String(i) }));
}

async function baseline(round: number): Promise<number> {
  const q = new Queue(`base${round}`, { connection: redis, prefix });
  const recs = records(`b${round}`);
  const t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    await q.addBulk(recs.slice(i, i + BATCH).map((r) => ({ name: "notify.email", data: { to: (r.value as { user: { email: string } }).user.email, amount: (r.value as { amount: number }).amount }, opts: { jobId: r.id, attempts: 3 } })));
  }
  const ms = performance.now() - t0;
  await q.obliterate({ force: true });
  await q.close();
  return (N / ms) * 1000;
}

async function viaSink(round: number): Promise<number> {
  const config = bullmqSink.schema.parse({ queue: `sink${round}`, prefix, job_name: "notify.{channel}", data: { to: "{user.email}", amount: "{amount}" }, options: { attempts: 3 } });
  const sink = await bullmqSink.create(config, makeContext({ connections: new Connections(env) }));
  await sink.open!();
  const recs = records(`s${round}`);
  const t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) await sink.write(recs.slice(i, i + BATCH));
  const ms = performance.now() - t0;
  const q = new Queue(`sink${round}`, { connection: redis, prefix });
  if ((await q.getJobCountByTypes("waiting")) !== N) throw new Error("the sink did not enqueue every job");
  await q.obliterate({ force: true });
  await q.close();
  await sink.close();
  return (N / ms) * 1000;
}

await bestOfRounds({
  title: `bullmq: ${N} jobs, batches of ${BATCH}`,
  unit: "jobs/s",
  rounds: ROUNDS,
  baseline: { label: "Queue.addBulk directly", run: baseline },
  candidate: { label: "bullmq sink", run: viaSink },
});
redis.disconnect();
