/**
 * Feature-sink throughput vs plain pipelined HSET of the same data, same run.
 * Run: node test/bench/redis-features.bench.ts   (REDIS_URL, default redis://127.0.0.1:6379)
 */
import crypto from "node:crypto";
import os from "node:os";
import { Redis } from "ioredis";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { deleteKeys } from "./support.ts";

process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const RECORDS = Number(process.env.BENCH_RECORDS ?? 50_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 500);
const ENTITIES = 2_000;
const prefix = `bench:${crypto.randomBytes(4).toString("hex")}:`;
const T0 = Date.now() - 3_600_000;

const records: StreamRecord[] = Array.from({ length: RECORDS }, (_, i) =>
  makeRecord({ userId: `u${i % ENTITIES}`, item: `item-${i % 97}`, amount: (i % 50) + 0.5, at: T0 + i }, { topic: "bench", offset: String(i) }),
);
const view = {
  name: "bench_users",
  entity: "user",
  key: "{userId}",
  event_time: "at",
  features: [
    { name: "orders", kind: "counter" },
    { name: "last_item", kind: "latest", field: "item" },
    { name: "max_amount", kind: "max", field: "amount" },
    { name: "orders_1h", kind: "window_count", window: "1h" },
  ],
};

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timeOnce(input: StreamRecord[], fn: (batch: StreamRecord[]) => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < input.length; i += BATCH) await fn(input.slice(i, i + BATCH));
  return input.length / (Number(process.hrtime.bigint() - start) / 1e9);
}

function report(label: string, rates: number[]): number {
  const m = median(rates);
  console.log(`${label.padEnd(34)} ${m.toFixed(0).padStart(8)} records/s  (median of ${rates.length}: ${rates.map((r) => r.toFixed(0)).join(", ")})`);
  return m;
}

const clean = (redis: Redis) => deleteKeys(redis, prefix);

const redis = new Redis(process.env.REDIS_URL);
const sink = featuresSink.create(featuresSink.schema.parse({ key_prefix: prefix, views: [view] }), makeContext()) as Sink;
await sink.open!();
// warm up both paths (script load, JIT) on a throwaway slice
await sink.write(records.slice(0, BATCH).map((r) => ({ ...r, id: `warm/${r.id}` })));

const plain = async (batch: StreamRecord[]) => {
  const p = redis.pipeline();
  for (const r of batch) {
    const v = r.value as { userId: string; item: string; amount: number; at: number };
    p.hset(`${prefix}plain:${v.userId}`, "orders", "1", "orders@t", v.at, "last_item", JSON.stringify(v.item), "last_item@t", v.at, "max_amount", v.amount, "max_amount@t", v.at, "orders_1h", 1, "orders_1h@t", v.at);
  }
  await p.exec();
};
// rounds interleave baseline and sink so that noise from other processes hits both alike
const base: number[] = [];
const fresh: number[] = [];
const replay: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const input = records.map((r) => ({ ...r, id: `${round}/${r.id}` })); // new record ids: really applied
  base.push(await timeOnce(input, plain));
  fresh.push(await timeOnce(input, (batch) => sink.write(batch)));
  replay.push(await timeOnce(input, (batch) => sink.write(batch)));
}
const baseline = report("plain pipelined HSET (baseline)", base);
const sinkRate = report("redis.features sink (EVALSHA)", fresh);
const replayRate = report("redis.features replay (all seen)", replay);

console.log(`\nmachine: ${os.cpus().length} cores, ${os.cpus()[0]?.model}; node ${process.version}; ${RECORDS} records, batch ${BATCH}, ${ENTITIES} entities, 4 features`);
console.log(`sink / baseline: ${((sinkRate / baseline) * 100).toFixed(0)} %  (target >= 50 %)`);
console.log(`replay / baseline: ${((replayRate / baseline) * 100).toFixed(0)} %`);
await sink.close();
await clean(redis);
redis.disconnect();
