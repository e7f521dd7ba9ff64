/**
 * The redis.features sink with the offline feature log on vs off, same run, same records:
 * two sinks on one private redis-server, the same view except that one has `offline` (the
 * shared PostgreSQL, a scratch schema dropped at the end). Rounds interleave off and on so
 * that noise from other processes hits both alike. Target: on ≥ 0.7× off.
 *   npm run bench -- offline-log
 * BENCH_RECORDS (100,000 per round), BENCH_BATCH (records per flush — one commit unit —
 * 10,000; added in slices of 500 as the runner does), BENCH_ENTITIES (2,000), BENCH_ROUNDS (3).
 */
import crypto from "node:crypto";
import os from "node:os";
import pg from "pg";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { benchEnv, machine } from "./support.ts";

const RECORDS = Number(process.env.BENCH_RECORDS ?? 100_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 10_000);
const SLICE = 500;
const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 2_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const run = crypto.randomBytes(4).toString("hex");
const schema = `bench_offline_${run}`;
const T0 = Date.now() - 3_600_000;
const DATABASE_URL = benchEnv().DATABASE_URL!;

const server = await PrivateRedis.start();
const features = [
  { name: "orders", kind: "counter" },
  { name: "spent", kind: "counter", by: "{amount}" },
  { name: "last_item", kind: "latest", field: "item" },
  { name: "max_amount", kind: "max", field: "amount" },
  { name: "recent_items", kind: "last_n", field: "item", n: 5 },
  { name: "orders_1h", kind: "window_count", window: "1h" },
];
const view = (name: string, offline: boolean) => ({ name, entity: "user", key: "{userId}", event_time: "at", features, ...(offline ? { offline: { schema } } : {}) });

/** One round's records: fresh offsets on their own partition, so every round really applies. */
function input(partition: number): StreamRecord[] {
  return Array.from({ length: RECORDS }, (_, i) => makeRecord({ userId: `u${i % ENTITIES}`, item: `item-${i % 97}`, amount: (i % 50) + 0.5, at: T0 + i }, { topic: "bench", partition, offset: String(i) }));
}

function sinkOf(offline: boolean): Sink {
  const config = featuresSink.schema.parse({ key_prefix: `bench:${run}:${offline ? "on" : "off"}:`, views: [view(offline ? "bench_on" : "bench_off", offline)] });
  return featuresSink.create(config, makeContext({ connections: new Connections({ REDIS_URL: server.url, DATABASE_URL }) })) as Sink;
}

/** What the runner does with a commit unit: add it slice by slice, flush once. */
async function flush(sink: Sink, batch: StreamRecord[]): Promise<void> {
  const b = sink.batch!();
  for (let i = 0; i < batch.length; i += SLICE) b.add(batch.slice(i, i + SLICE));
  const out = await b.flush();
  if (out?.failed?.length) throw new Error(`${out.failed.length} records failed`);
}

async function timed(sink: Sink, records: StreamRecord[]): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < records.length; i += BATCH) await flush(sink, records.slice(i, i + BATCH));
  return (records.length / (performance.now() - start)) * 1000;
}

const off = sinkOf(false);
const on = sinkOf(true);
await off.open!();
await on.open!();
// warm-up: scripts, JIT, the log's table and partition
await timed(off, input(1000).slice(0, BATCH));
await timed(on, input(1000).slice(0, BATCH));

const rows: { off: number; on: number; load: string }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const records = input(round);
  const load = os.loadavg()[0]!.toFixed(1);
  if (round % 2 === 0) rows.push({ off: await timed(off, records), on: await timed(on, records), load });
  else {
    const o = await timed(on, records);
    rows.push({ off: await timed(off, records), on: o, load });
  }
}

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
const { rows: size } = await pool.query<{ n: string; bytes: string }>(`SELECT count(*) AS n, pg_total_relation_size('${schema}.feature_log_bench_on') AS bytes FROM ${schema}.feature_log`);
console.log(`machine: ${machine()}; PostgreSQL ${(await pool.query("SHOW server_version")).rows[0].server_version} (shared), private redis-server`);
console.log(`${RECORDS.toLocaleString("en-US")} records per round, flushes of ${BATCH.toLocaleString("en-US")} (slices of ${SLICE}), ${ENTITIES.toLocaleString("en-US")} entities, ${features.length} features`);
rows.forEach((r, i) => {
  console.log(`round ${i + 1} (load ${r.load})   log off ${Math.round(r.off).toLocaleString("en-US").padStart(8)} rec/s   log on ${Math.round(r.on).toLocaleString("en-US").padStart(8)} rec/s   ${(r.on / r.off).toFixed(2)}×`);
});
console.log(`on / off per round: ${rows.map((r) => (r.on / r.off).toFixed(2)).join(", ")} (target ≥ 0.7×)`);
console.log(`log: ${Number(size[0]!.n).toLocaleString("en-US")} rows, ${(Number(size[0]!.bytes) / Number(size[0]!.n)).toFixed(0)} bytes a row with its key`);
await off.close();
await on.close();
await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
await pool.end();
await server.kill();
