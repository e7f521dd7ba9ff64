/**
 * Feature-sink throughput (no Kafka) vs plain pipelined HSET of the same data, same run,
 * on a private redis-server (so its CPU figure is ours alone).
 *   npm run bench -- redis-features
 * BENCH_RECORDS (100,000), BENCH_BATCH (records per fetched batch, 10,000; the runner hands
 * them in slices of 500), BENCH_ENTITIES (2,000), BENCH_ROUNDS (3).
 */
import crypto from "node:crypto";
import { Redis } from "ioredis";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { BENCH_USER_VIEW, machine } from "./support.ts";

const RECORDS = Number(process.env.BENCH_RECORDS ?? 100_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 10_000);
const SLICE = 500;
const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 2_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const prefix = `bench:${crypto.randomBytes(4).toString("hex")}:`;
const T0 = Date.now() - 3_600_000;

const server = await PrivateRedis.start();
const redis = new Redis(server.url);

/** The records of one round: fresh offsets on their own partition, so every round really applies. */
function input(round: number): StreamRecord[] {
  return Array.from({ length: RECORDS }, (_, i) => makeRecord({ userId: `u${i % ENTITIES}`, item: `item-${i % 97}`, amount: (i % 50) + 0.5, at: T0 + i }, { topic: "bench", partition: round, offset: String(i) }));
}
const view = BENCH_USER_VIEW;

async function cpu(): Promise<number> {
  const info = await redis.info("cpu");
  const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get("used_cpu_user") + get("used_cpu_sys");
}

interface Figure {
  rate: number;
  redisUsPerRecord: number;
}

async function timed(records: StreamRecord[], perBatch: (batch: StreamRecord[]) => Promise<unknown>): Promise<Figure> {
  const c0 = await cpu();
  const start = performance.now();
  for (let i = 0; i < records.length; i += BATCH) await perBatch(records.slice(i, i + BATCH));
  const ms = performance.now() - start;
  const c1 = await cpu();
  return { rate: (records.length / ms) * 1000, redisUsPerRecord: ((c1 - c0) * 1e6) / records.length };
}

const sink = featuresSink.create(featuresSink.schema.parse({ key_prefix: prefix, views: [view] }), makeContext({ connections: new Connections({ REDIS_URL: server.url }) })) as Sink;
await sink.open!();

/** What the runner does with a fetched batch: add it slice by slice, flush once. */
const viaSink = async (batch: StreamRecord[]) => {
  const b = sink.batch!();
  for (let i = 0; i < batch.length; i += SLICE) b.add(batch.slice(i, i + SLICE));
  await b.flush();
};
/** The baseline: one HSET per record of the same fields, one pipeline per batch. */
const plain = async (batch: StreamRecord[]) => {
  const p = redis.pipeline();
  for (const r of batch) {
    const v = r.value as { userId: string; item: string; amount: number; at: number };
    p.hset(`${prefix}plain:${v.userId}`, "orders", "1", "orders@t", v.at, "last_item", JSON.stringify(v.item), "last_item@t", v.at, "max_amount", v.amount, "max_amount@t", v.at, "orders_1h", 1, "orders_1h@t", v.at);
  }
  await p.exec();
};

await viaSink(input(1000).slice(0, BATCH)); // warm-up: script load, JIT
// rounds interleave baseline and sink so that noise from other processes hits both alike
const rows: { base: Figure; fresh: Figure; replay: Figure }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const records = input(round);
  const base = await timed(records, plain);
  const fresh = await timed(records, viaSink);
  const replay = await timed(records, viaSink); // the same offsets again: every update is a duplicate
  rows.push({ base, fresh, replay });
}

const fmt = (f: Figure) => `${Math.round(f.rate).toLocaleString("en-US").padStart(9)} rec/s, Redis ${f.redisUsPerRecord.toFixed(2)} µs/rec`;
console.log(`machine: ${machine()}`);
console.log(`${RECORDS.toLocaleString("en-US")} records per round, batches of ${BATCH} (slices of ${SLICE}), ${ENTITIES} entities, 4 features, private redis-server`);
rows.forEach((r, i) => {
  console.log(`round ${i + 1}`);
  console.log(`  plain pipelined HSET (baseline) ${fmt(r.base)}`);
  console.log(`  redis.features sink             ${fmt(r.fresh)}   ${(r.fresh.rate / r.base.rate).toFixed(2)}× baseline`);
  console.log(`  redis.features replay (seen)    ${fmt(r.replay)}   ${(r.replay.rate / r.base.rate).toFixed(2)}× baseline`);
});
const ratios = rows.map((r) => r.fresh.rate / r.base.rate).sort((a, b) => a - b);
console.log(`sink / baseline per round: ${ratios.map((x) => x.toFixed(2)).join(", ")} (target ≥ 2×)`);
await sink.close();
redis.disconnect();
await server.kill();
