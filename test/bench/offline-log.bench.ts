/**
 * The redis.features sink with the offline feature log on vs off, same run, same records:
 * two sinks on one private redis-server, the same view except that one has `offline` (the
 * shared PostgreSQL, a scratch schema dropped at the end). Rounds interleave off and on so
 * that noise from other processes hits both alike. Target: on ≥ 0.7× off.
 *   npm run bench -- offline-log
 * BENCH_RECORDS (100,000 per round), BENCH_BATCH (records per flush — one commit unit —
 * 10,000; added in slices of 500 as the runner does), BENCH_ENTITIES (2,000), BENCH_ROUNDS (3),
 * BENCH_LAYOUT1=1 (a third sink in the same rounds whose log table is in layout 1: the primary
 * key of earlier versions instead of layout 2's marks).
 */
import crypto from "node:crypto";
import os from "node:os";
import pg from "pg";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { createLayout1Table } from "../support/offline-log-layout1.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { benchEnv, machine } from "./support.ts";
import { setWorkerV8Flags } from "../../lib/cli/worker-heap.ts";
import { snapshotTables } from "../../lib/features/offline-log.ts";

// the V8 flags `streamfleet run` sets on a worker (allocation-site pretenuring off): the sinks run as they would there
const v8Flags = setWorkerV8Flags();

const RECORDS = Number(process.env.BENCH_RECORDS ?? 100_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 10_000);
const SLICE = 500;
const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 2_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LAYOUT1 = process.env.BENCH_LAYOUT1 === "1";
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
const view = (name: string, offline: string | undefined) => ({ name, entity: "user", key: "{userId}", event_time: "at", features, ...(offline ? { offline: { schema: offline } } : {}) });

/** One round's records: fresh offsets on their own partition, so every round really applies. */
function input(partition: number): StreamRecord[] {
  return Array.from({ length: RECORDS }, (_, i) => makeRecord({ userId: `u${i % ENTITIES}`, item: `item-${i % 97}`, amount: (i % 50) + 0.5, at: T0 + i }, { topic: "bench", partition, offset: String(i) }));
}

function sinkOf(name: "off" | "on" | "on1", offline: string | undefined): Sink {
  const config = featuresSink.schema.parse({ key_prefix: `bench:${run}:${name}:`, views: [view(`bench_${name}`, offline)] });
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

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
const schema1 = `${schema}_l1`;
if (LAYOUT1) await createLayout1Table(pool, { schema: schema1, table: "feature_log" });
const off = sinkOf("off", undefined);
const on = sinkOf("on", schema);
const on1 = LAYOUT1 ? sinkOf("on1", schema1) : undefined;
const sinks = { off, on, ...(on1 ? { on1 } : {}) };
for (const s of Object.values(sinks)) await s.open!();
// warm-up: scripts, JIT, the log's table and partition
for (const s of Object.values(sinks)) await timed(s, input(1000).slice(0, BATCH));
// a snapshot horizon, as once `streamfleet features compact` ran: each write then checks its rows for late ones (none are)
await pool.query(`INSERT INTO ${snapshotTables({ schema, table: "feature_log" }).horizon} (view, through, every, fp) VALUES ('bench_on', 0, 86400000, '')`);

const rows: { off: number; on: number; on1?: number; load: string }[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const records = input(round);
  const load = os.loadavg()[0]!.toFixed(1);
  // rotate which sink goes first, so that noise from other processes hits each alike
  const order = Object.entries(sinks);
  for (let k = 0; k < round % order.length; k++) order.push(order.shift()!);
  const got: Record<string, number> = {};
  for (const [name, s] of order) got[name] = await timed(s, records);
  rows.push({ off: got.off!, on: got.on!, ...(on1 ? { on1: got.on1! } : {}), load });
}

const { rows: size } = await pool.query<{ n: string; bytes: string }>(`SELECT count(*) AS n, pg_total_relation_size('${schema}.feature_log_bench_on') AS bytes FROM ${schema}.feature_log`);
console.log(`machine: ${machine()}; PostgreSQL ${(await pool.query("SHOW server_version")).rows[0].server_version} (shared), private redis-server; V8 flags set in-process as a worker's: ${v8Flags.join(" ") || "(none missing)"}`);
console.log(`${RECORDS.toLocaleString("en-US")} records per round, flushes of ${BATCH.toLocaleString("en-US")} (slices of ${SLICE}), ${ENTITIES.toLocaleString("en-US")} entities, ${features.length} features`);
rows.forEach((r, i) => {
  const l1 = r.on1 === undefined ? "" : `   layout 1 ${Math.round(r.on1).toLocaleString("en-US").padStart(8)} rec/s   ${(r.on1 / r.off).toFixed(2)}×`;
  console.log(`round ${i + 1} (load ${r.load})   log off ${Math.round(r.off).toLocaleString("en-US").padStart(8)} rec/s   log on ${Math.round(r.on).toLocaleString("en-US").padStart(8)} rec/s   ${(r.on / r.off).toFixed(2)}×${l1}`);
});
const ratios = rows.map((r) => r.on / r.off).sort((a, b) => a - b);
const median = ratios.length % 2 ? ratios[ratios.length >> 1]! : (ratios[ratios.length / 2 - 1]! + ratios[ratios.length / 2]!) / 2;
console.log(`on / off per round: ${rows.map((r) => (r.on / r.off).toFixed(2)).join(", ")}; median ${median.toFixed(2)} (target ≥ 0.7×)`);
if (on1) console.log(`layout 1 on / off per round: ${rows.map((r) => (r.on1! / r.off).toFixed(2)).join(", ")}; layout 2 / layout 1: ${rows.map((r) => (r.on / r.on1!).toFixed(2)).join(", ")}`);
console.log(`log: ${Number(size[0]!.n).toLocaleString("en-US")} rows, ${(Number(size[0]!.bytes) / Number(size[0]!.n)).toFixed(0)} bytes a row with its index`);
for (const s of Object.values(sinks)) await s.close!();
await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
await pool.query(`DROP SCHEMA IF EXISTS ${schema1} CASCADE`);
await pool.end();
await server.kill();
