/**
 * Feature server latency on loopback: single-entity GETs at a fixed rate (open loop, so
 * slow answers do not slow the load down), then 100-entity x 10-feature batch POSTs.
 * The server runs as its own process (node workers/feature-server.ts), as in production.
 * Run: node test/bench/feature-server.bench.ts   (REDIS_URL; BENCH_RPS=2000 BENCH_SECONDS=10)
 */
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import http from "node:http";
import os from "node:os";
import { Redis } from "ioredis";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { deleteKeys } from "./support.ts";

process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const RPS = Number(process.env.BENCH_RPS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 300);
const ENTITIES = 1000;
const TOKEN = crypto.randomBytes(16).toString("hex");
const prefix = `bench:${crypto.randomBytes(4).toString("hex")}:`;
const PORT = 18090 + Math.floor(Math.random() * 1000);

// 1,000 entities x 10 features, written through the sink
const features = Array.from({ length: 10 }, (_, i) => (i % 2 ? { name: `c${i}`, kind: "counter" } : { name: `l${i}`, kind: "latest", field: `f${i}` }));
const view = { name: "bench_view", entity: "user", key: "{userId}", features };
const sink = featuresSink.create(featuresSink.schema.parse({ key_prefix: prefix, views: [view] }), makeContext()) as Sink;
await sink.open!();
const recs = Array.from({ length: ENTITIES * 3 }, (_, i) => makeRecord({ userId: `u${i % ENTITIES}`, ...Object.fromEntries(Array.from({ length: 10 }, (_, j) => [`f${j}`, `v${i}-${j}`])) }, { topic: "bench", offset: String(i) }));
for (let i = 0; i < recs.length; i += 500) await sink.write(recs.slice(i, i + 500));
await sink.close();

const child = spawn(process.execPath, [...(process.env.BENCH_SERVER_FLAGS?.split(" ").filter(Boolean) ?? []), "workers/feature-server.ts"], {
  env: { ...process.env, FEATURE_SERVER_PORT: String(PORT), FEATURE_SERVER_TOKEN: TOKEN, FEATURE_SERVER_KEY_PREFIX: prefix, LOG_LEVEL: "warn" },
  stdio: ["ignore", "inherit", "inherit"],
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 64, noDelay: true } as http.AgentOptions);

function request(method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = http.request({ host: "127.0.0.1", port: PORT, method, path, agent, headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}) } }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - start) / 1e6) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

for (let i = 0; ; i++) {
  if (await request("GET", "/v1/features/bench_view/u1").then(() => true, () => false)) break;
  if (i > 100) throw new Error("the feature server did not start");
  await new Promise((r) => setTimeout(r, 100));
}
for (let i = 0; i < 2000; i++) await request("GET", `/v1/features/bench_view/u${i % ENTITIES}`); // warm-up

// open loop: every millisecond tick sends the requests due by then
const latencies: number[] = [];
let errors = 0;
const total = RPS * SECONDS;
const inflight: Promise<void>[] = [];
const t0 = performance.now();
let sent = 0;
await new Promise<void>((done) => {
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RPS));
    for (; sent < due; sent++) inflight.push(request("GET", `/v1/features/bench_view/u${sent % ENTITIES}`).then((ms) => void latencies.push(ms), () => void errors++));
    if (sent < total) setTimeout(tick, 1);
    else done();
  };
  tick();
});
await Promise.all(inflight);
const elapsed = (performance.now() - t0) / 1000;

const batchBody = (k: number) => JSON.stringify({ ids: Array.from({ length: 100 }, (_, i) => `u${(k * 100 + i) % ENTITIES}`) });
const batchLat: number[] = [];
for (let k = 0; k < BATCHES; k++) batchLat.push(await request("POST", "/v1/features/bench_view", batchBody(k)));

console.log(`machine: ${os.cpus().length} cores, ${os.cpus()[0]?.model}; node ${process.version}; server in its own process, client in this one`);
console.log(`single entity, 10 features: ${latencies.length} ok / ${errors} errors in ${elapsed.toFixed(1)} s (${(latencies.length / elapsed).toFixed(0)} req/s, target ${RPS})`);
console.log(`  p50 ${pct(latencies, 50).toFixed(2)} ms  p90 ${pct(latencies, 90).toFixed(2)} ms  p99 ${pct(latencies, 99).toFixed(2)} ms  max ${pct(latencies, 100).toFixed(2)} ms  (target p99 <= 2 ms)`);
console.log(`batch 100 entities x 10 features: ${BATCHES} sequential requests`);
console.log(`  p50 ${pct(batchLat, 50).toFixed(2)} ms  p99 ${pct(batchLat, 99).toFixed(2)} ms`);

// the server's own view (handler time, without client-side queueing): its histogram
const text = await new Promise<string>((resolve, reject) =>
  http.get({ host: "127.0.0.1", port: PORT, path: "/metrics", agent }, (res) => {
    let b = "";
    res.on("data", (c: Buffer) => (b += c.toString()));
    res.on("end", () => resolve(b));
  }).on("error", reject),
);
for (const route of ["get", "batch"]) {
  const buckets = [...text.matchAll(new RegExp(`streamfleet_feature_server_request_seconds_bucket\\{le="([^"]+)",route="${route}"\\} (\\d+)`, "g"))].map((m) => [Number(m[1]), Number(m[2])] as const);
  const count = buckets.at(-1)?.[1] ?? 0;
  const le = (q: number) => buckets.find(([, c]) => c >= q * count)?.[0];
  const within2ms = buckets.find(([b]) => b === 0.002)?.[1] ?? 0;
  console.log(`server-side ${route}: ${count} requests, p50 <= ${(le(0.5)! * 1000).toFixed(2)} ms, p99 <= ${(le(0.99)! * 1000).toFixed(2)} ms (histogram bucket bounds); ${((within2ms / count) * 100).toFixed(2)} % within 2 ms`);
}
child.kill("SIGTERM");
agent.destroy();
const redis = new Redis(process.env.REDIS_URL);
await deleteKeys(redis, prefix);
redis.disconnect();
