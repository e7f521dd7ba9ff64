/**
 * Feature server latency on loopback, measured by a constant-rate load generator that is not
 * Node (test/bench/loadgen/loadgen.c, built with gcc on first use) and corrects for coordinated
 * omission: latency runs from each request's *due* time. Contenders, in the same run: the
 * server (node workers/feature-server.ts, its own process) and a hand-written node:http +
 * ioredis baseline (feature-server-baseline.ts). Phases per contender: single entity x 10
 * features at BENCH_RPS, then 100-entity batches at BENCH_BATCH_RPS; then the server alone at
 * BENCH_HIGH_RPS. The noise floor (1 ms sleeps' overshoot) is measured idle and during each phase.
 * Server-side figures: the server's own latency histogram (diffed around the phase,
 * interpolated within buckets as Prometheus does), the baseline's exact handler times.
 *
 * Run: npm run bench -- feature-server   (REDIS_URL; BENCH_RPS=2000 BENCH_SECONDS=10
 * BENCH_BATCH_RPS=100 BENCH_HIGH_RPS=10000 BENCH_CONNECTIONS=32 BENCH_PIN=1 BENCH_ONLY=baseline,server,high
 * BENCH_SERVER_ENV="FEATURE_SERVER_PROCESSES=2 ..."; BENCH_SERVER_VARIANTS="FEATURE_SERVER_BATCH_READ=pipeline;FEATURE_SERVER_BATCH_READ=script":
 * the server's phases once per variant, each a ';'-separated list of environment settings, in the same run)
 * BENCH_PIN=1 pins the load generator to CPU 0 and the contender to CPU 1 (taskset); Redis is shared and left alone.
 * With FEATURE_SERVER_PROCESSES=2 on two cores compare with BENCH_PIN=0 (pinned, both processes would share CPU 1).
 * CPU and run-queue wait are the contender's whole process tree (a cluster's primary and its workers).
 */
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { keys } from "../../lib/features/layout.ts";
import type { ViewDef } from "../../lib/features/layout.ts";
import { deleteKeys } from "./support.ts";

process.env.REDIS_URL ??= "redis://127.0.0.1:6379";
const env = process.env;
const RPS = Number(env.BENCH_RPS ?? 2000);
const SECONDS = Number(env.BENCH_SECONDS ?? 10);
const BATCH_RPS = Number(env.BENCH_BATCH_RPS ?? 100);
const HIGH_RPS = Number(env.BENCH_HIGH_RPS ?? 10000);
const CONNS = Number(env.BENCH_CONNECTIONS ?? 32);
const PIN = env.BENCH_PIN !== "0";
const ONLY = new Set((env.BENCH_ONLY ?? "baseline,server,high").split(","));
const ENTITIES = 1000;
const TOKEN = crypto.randomBytes(16).toString("hex");
const prefix = `bench:${crypto.randomBytes(4).toString("hex")}:`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sf-fsbench-"));

// 1,000 entities x 10 features in the layout the redis.features sink writes (docs/feature-store.md),
// written here directly so the bench does not depend on the sink's code
const features = Array.from({ length: 10 }, (_, i) => (i % 2 ? { name: `c${i}`, kind: "counter" as const } : { name: `l${i}`, kind: "latest" as const }));
const view: ViewDef = { name: "bench_view", entity: "user", features };
{
  const redis = new Redis(env.REDIS_URL!);
  const p = redis.pipeline();
  p.hset(keys.views(prefix), view.name, JSON.stringify(view));
  const t = Date.now();
  for (let e = 0; e < ENTITIES; e++) {
    const h: Record<string, string> = {};
    for (const [j, x] of features.entries()) {
      h[x.name] = x.kind === "counter" ? String(3 + j) : JSON.stringify(`v${e}-${j}`);
      h[`${x.name}@t`] = String(t - j * 1000);
    }
    p.hset(keys.entity(prefix, view.name, `u${e}`), h);
  }
  await p.exec();
  redis.disconnect();
}

/** The load generator, compiled once per source version. */
function loadgen(): string {
  const src = path.join(import.meta.dirname, "loadgen/loadgen.c");
  const bin = path.join(os.tmpdir(), `sf-loadgen-${crypto.createHash("sha256").update(fs.readFileSync(src)).digest("hex").slice(0, 12)}`);
  if (!fs.existsSync(bin)) execFileSync("gcc", ["-O2", "-pthread", "-o", bin, src], { stdio: "inherit" });
  return bin;
}
const LOADGEN = loadgen();

function requestsFile(name: string, reqs: string[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, reqs.map((r) => `${Buffer.byteLength(r)}\n${r}`).join(""));
  return file;
}
const auth = `Authorization: Bearer ${TOKEN}\r\n`;
const getFile = requestsFile("get", Array.from({ length: ENTITIES }, (_, i) => `GET /v1/features/bench_view/u${i} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}\r\n`));
const batchFile = requestsFile("batch", Array.from({ length: 10 }, (_, k) => {
  const body = JSON.stringify({ ids: Array.from({ length: 100 }, (_, i) => `u${(k * 100 + i) % ENTITIES}`) });
  return `POST /v1/features/bench_view HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}));

interface Pcts { n: number; p50: number; p90: number; p99: number; p999: number; max: number }
interface LoadResult { sent: number; ok: number; failed: number; s503: number; s504: number; other: number; seconds: number; rate: number; latency: Pcts; service: Pcts; jitter: Pcts }

function load(port: number, rate: number, seconds: number, file: string, conns = CONNS): Promise<LoadResult> {
  const args = [LOADGEN, "127.0.0.1", String(port), String(rate), String(seconds), String(conns), file];
  const child = spawn(PIN ? "taskset" : args[0]!, PIN ? ["-c", "0", ...args] : args.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`loadgen exited ${code}`)))));
}

function startContender(args: string[], extraEnv: Record<string, string>): ChildProcess {
  const cmd = [process.execPath, ...args];
  return spawn(PIN ? "taskset" : cmd[0]!, PIN ? ["-c", "1", ...cmd] : cmd.slice(1), { env: { ...env, ...extraEnv }, stdio: ["ignore", "inherit", "inherit"] });
}

async function get(port: number, p: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return res.text();
}
async function ready(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await fetch(`http://127.0.0.1:${port}/v1/features/bench_view/u1`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing answers on port ${port}`);
}

/** Cumulative bucket counts of the server's latency histogram for one route (labels in either order: a cluster's merged text puts `le` last). */
function buckets(text: string, route: string): Array<[number, number]> {
  return [...text.matchAll(/^streamfleet_feature_server_request_seconds_bucket\{([^}]*)\} (\d+)$/gm)]
    .filter((m) => m[1]!.includes(`route="${route}"`))
    .map((m) => [Number(/le="([^"]+)"/.exec(m[1]!)![1]), Number(m[2])] as [number, number])
    .sort((a, b) => a[0] - b[0]);
}
/** Quantiles of the histogram difference after - before, interpolated within a bucket (histogram_quantile). */
function histQuantiles(before: Array<[number, number]>, after: Array<[number, number]>): { n: number; q: (p: number) => number; within2ms: number } {
  const d = after.map(([le, c], i) => [le, c - (before[i]?.[1] ?? 0)] as const);
  const n = d.at(-1)?.[1] ?? 0;
  const q = (p: number) => {
    const rank = p * n;
    for (let i = 0; i < d.length; i++) {
      if (d[i]![1] >= rank) {
        const [lo, below] = i === 0 ? [0, 0] : d[i - 1]!;
        const [hi, at] = d[i]!;
        if (!Number.isFinite(hi)) return lo * 1000;
        return (lo + ((hi - lo) * (rank - below)) / Math.max(1, at - below)) * 1000;
      }
    }
    return NaN;
  };
  return { n, q, within2ms: n ? (d.find(([le]) => le === 0.002)?.[1] ?? 0) / n : 0 };
}

const f = (x: number) => (x >= 10 ? x.toFixed(1) : x.toFixed(2));
const line = (p: Pcts) => `p50 ${f(p.p50)}  p90 ${f(p.p90)}  p99 ${f(p.p99)}  p99.9 ${f(p.p999)}  max ${f(p.max)} ms`;
function report(what: string, r: LoadResult, server: string): void {
  console.log(`${what}: ${r.ok} ok, ${r.failed} failed, ${r.s503} x 503, ${r.s504} x 504, ${r.other} other in ${r.seconds.toFixed(1)} s = ${r.rate.toFixed(0)} req/s`);
  console.log(`  client, from due time:  ${line(r.latency)}`);
  console.log(`  client, from send:      ${line(r.service)}`);
  console.log(`  server-side:            ${server}`);
  console.log(`  noise floor (1 ms sleep overshoot, same time): ${line(r.jitter)}`);
}

/** A process and its descendants (a cluster's workers): /proc/<pid>/task/<tid>/children. */
function tree(pid: number): number[] {
  let kids: number[] = [];
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) kids = kids.concat(fs.readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number));
  } catch {
    // gone
  }
  return [pid, ...kids.flatMap(tree)];
}
/** CPU time and run-queue wait (ns) of a process and its descendants so far: /proc/<pid>/schedstat. */
function schedstat(pid: number | undefined): [number, number] {
  if (pid === undefined) return [NaN, NaN];
  let [cpu, wait] = [0, 0];
  for (const p of tree(pid)) {
    try {
      const [c, w] = fs.readFileSync(`/proc/${p}/schedstat`, "utf8").split(" ").map(Number);
      cpu += c!;
      wait += w!;
    } catch {
      // exited meanwhile
    }
  }
  return [cpu, wait];
}
const sum = (text: string, series: string) => [...text.matchAll(new RegExp(`^${series}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))].reduce((a, m) => a + Number(m[1]), 0);
let redisPid: number | undefined;

/** Where the time went during a phase: the processes' CPU and run-queue wait, the server's GC and event-loop delay. */
function evidence(pids: Array<[string, number | undefined]>, before: Array<[number, number]>, seconds: number, requests: number, metricsBefore?: string, metricsAfter?: string): string {
  const parts = pids.map(([name, pid], i) => {
    const [cpu, wait] = schedstat(pid);
    return `${name} CPU ${(((cpu - before[i]![0]) / 1e9 / seconds) * 100).toFixed(0)} % of a core (${((cpu - before[i]![0]) / 1e3 / Math.max(1, requests)).toFixed(0)} µs a request), waited for a CPU ${((wait - before[i]![1]) / 1e6 / seconds).toFixed(0)} ms/s`;
  });
  if (metricsBefore && metricsAfter) {
    const gcs = sum(metricsAfter, "streamfleet_nodejs_gc_duration_seconds_count") - sum(metricsBefore, "streamfleet_nodejs_gc_duration_seconds_count");
    const gcSeconds = sum(metricsAfter, "streamfleet_nodejs_gc_duration_seconds_sum") - sum(metricsBefore, "streamfleet_nodejs_gc_duration_seconds_sum");
    const kinds = ["minor", "major", "incremental", "weakcb"].map((k) => {
      const count = sum(metricsAfter, `streamfleet_nodejs_gc_duration_seconds_count\\{kind="${k}"\\}`) - sum(metricsBefore, `streamfleet_nodejs_gc_duration_seconds_count\\{kind="${k}"\\}`);
      const ms = (sum(metricsAfter, `streamfleet_nodejs_gc_duration_seconds_sum\\{kind="${k}"\\}`) - sum(metricsBefore, `streamfleet_nodejs_gc_duration_seconds_sum\\{kind="${k}"\\}`)) * 1000;
      return count ? ` ${k} ${count} x ${(ms / count).toFixed(1)} ms` : "";
    });
    parts.push(`server GC ${gcs} pauses, ${(gcSeconds * 1000).toFixed(0)} ms in all:${kinds.join("")}`);
    parts.push(`server event-loop delay p99 ${(sum(metricsAfter, "streamfleet_nodejs_eventloop_lag_p99_seconds") * 1000).toFixed(1)} ms, max ${(sum(metricsAfter, "streamfleet_nodejs_eventloop_lag_max_seconds") * 1000).toFixed(1)} ms`);
  }
  return parts.join("; ");
}

async function phase(what: string, port: number, pid: number | undefined, rate: number, seconds: number, file: string, route: string, stats: "histogram" | "exact"): Promise<void> {
  await load(port, Math.min(rate, 2000), 2, file); // warm-up, not reported
  const metricsBefore = stats === "histogram" ? await get(port, "/metrics") : (await get(port, "/stats"), undefined);
  const before = metricsBefore ? buckets(metricsBefore, route) : [];
  const pids: Array<[string, number | undefined]> = [["contender", pid], ["Redis", redisPid]];
  const sched = pids.map(([, p]) => schedstat(p));
  const r = await load(port, rate, seconds, file);
  const metricsAfter = stats === "histogram" ? await get(port, "/metrics") : undefined;
  const why = evidence(pids, sched, r.seconds, r.ok + r.s503 + r.s504 + r.other, metricsBefore, metricsAfter);
  let server: string;
  if (stats === "histogram") {
    const h = histQuantiles(before, buckets(metricsAfter!, route));
    server = `${h.n} requests, p50 ${f(h.q(0.5))}  p90 ${f(h.q(0.9))}  p99 ${f(h.q(0.99))}  p99.9 ${f(h.q(0.999))} ms (histogram, interpolated); ${(h.within2ms * 100).toFixed(2)} % within 2 ms`;
  } else {
    const s = JSON.parse(await get(port, "/stats")) as Pcts;
    server = `${s.n} requests, ${line(s)} (exact)`;
  }
  report(what, r, server);
  console.log(`  where the time went:    ${why}`);
}

console.log(`machine: ${os.cpus().length} cores, ${os.cpus()[0]?.model}; node ${process.version}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}; pinned: ${PIN ? "loadgen CPU 0, contender CPU 1" : "no"}; ${CONNS} connections`);
{
  const redis = new Redis(env.REDIS_URL!);
  redisPid = Number(/process_id:(\d+)/.exec(await redis.info("server"))?.[1]);
  redis.disconnect();
}
const idle = await load(1, 1, 3, getFile, 1).catch(() => undefined); // port 1: nobody answers; only the jitter thread matters
if (idle) console.log(`noise floor, idle (1 ms sleep overshoot, 3 s): ${line(idle.jitter)}`);

const children: ChildProcess[] = [];
try {
  if (ONLY.has("baseline")) {
    const port = 18090 + Math.floor(Math.random() * 1000);
    const child = startContender([path.join(import.meta.dirname, "feature-server-baseline.ts"), String(port), TOKEN, prefix, "bench_view", features.flatMap((x) => [x.name, `${x.name}@t`]).join(",")], {});
    children.push(child);
    await ready(port);
    await phase(`baseline (node:http + ioredis HMGET) GET at ${RPS}/s`, port, child.pid, RPS, SECONDS, getFile, "get", "exact");
    await phase(`baseline POST 100 entities at ${BATCH_RPS}/s`, port, child.pid, BATCH_RPS, SECONDS / 2, batchFile, "batch", "exact");
    child.kill("SIGTERM");
  }
  const variants = (env.BENCH_SERVER_VARIANTS ?? env.BENCH_SERVER_ENV ?? "").split(";");
  for (const variant of ONLY.has("server") || ONLY.has("high") ? variants : []) {
    const port = 19090 + Math.floor(Math.random() * 1000);
    const extra = Object.fromEntries(variant.split(" ").filter(Boolean).map((kv) => kv.split("=") as [string, string]));
    const label = variant.trim() ? `server [${variant.trim()}]` : "server";
    const child = startContender([...(env.BENCH_SERVER_FLAGS?.split(" ").filter(Boolean) ?? []), "workers/feature-server.ts"], { FEATURE_SERVER_PORT: String(port), FEATURE_SERVER_TOKEN: TOKEN, FEATURE_SERVER_KEY_PREFIX: prefix, LOG_LEVEL: "warn", ...extra });
    children.push(child);
    await ready(port);
    if (ONLY.has("server")) {
      await phase(`${label} GET at ${RPS}/s`, port, child.pid, RPS, SECONDS, getFile, "get", "histogram");
      await phase(`${label} POST 100 entities at ${BATCH_RPS}/s`, port, child.pid, BATCH_RPS, SECONDS / 2, batchFile, "batch", "histogram");
    }
    if (ONLY.has("high")) await phase(`${label} GET at ${HIGH_RPS}/s`, port, child.pid, HIGH_RPS, Math.min(SECONDS, 5), getFile, "get", "histogram");
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
} finally {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  fs.rmSync(tmp, { recursive: true, force: true });
  const redis = new Redis(env.REDIS_URL!);
  await deleteKeys(redis, prefix);
  redis.disconnect();
}
