/**
 * Topologies into Redis against a hand-written worker, same run (issue 11, section 5):
 *   npm run bench -- topology-redis [records=1000000] [rounds=1]
 *   BENCH_ONLY=bare,hand,features,cache   (a comma list: only those contenders)
 *   BENCH_BACKLOG=3000000                 (records instead of argv[2]; default contenders hand,features,cache:
 *                                          the peak RSS of draining a backlog)
 *   BENCH_SOURCE=max_bytes_per_partition=65536,commit_interval_ms=0   (the topologies' source settings
 *                                          other than the model's defaults; numbers only)
 *   BENCH_MEM=1                            (each contender prints where its memory is at its peak RSS)
 *   BENCH_MEM=timeline                     (… and every 500 ms its RSS, heap and external memory as it runs)
 *   BENCH_ALLOC=/tmp/alloc                 (each contender writes an allocation profile there)
 *   KAFKA_CLIENT=kafkajs                   (the topologies read through kafkajs; @platformatic/kafka by default)
 *   BENCH_FROM=src                         (contenders run from the TypeScript sources; by default every
 *                                          contender runs compiled to JavaScript, as a deployed worker runs
 *                                          the package's dist/: Node's type stripping alone holds ~30 MB)
 *   BENCH_TOPOLOGY_FLAGS="--max-semi-space-size=16"   (node flags for the topologies only; the rest of
 *                                          their heap bounds stay a worker's defaults;
 *                                          "--allocation-site-pretenuring" keeps V8's pretenuring, which a worker turns off)
 *   NODE_OPTIONS=...                       (reaches every contender; the topologies also get the heap bounds
 *                                          of a worker, lib/cli/worker-heap.ts, that NODE_OPTIONS does not set)
 * Produces N Confluent-framed Avro user events (test/fixtures/schemas/user-event.avsc) on a
 * fresh 3-partition topic, keyed by user (2,000 users), then runs each contender in its own
 * process on a fresh consumer group: `bare` kafkajs eachBatch, `hand` (the hand-written
 * aggregating worker, topology-redis-kafkajs.ts), and the topologies `features` and `cache`
 * (topology-redis-fleet.ts). Each writes to a private redis-server, whose INFO cpu before and
 * after gives the Redis CPU per contender; each result is checked against the producer's
 * aggregates. Needs the stack (npm run stack -- up) and redis-server on the PATH.
 */
import { fork, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { DEFAULT_KAFKA_CLIENT } from "../../lib/connectors/kafka/platformatic/options.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { missingHeapFlags, missingWorkerEnv } from "../../lib/cli/worker-heap.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { benchEnv, machine, rate } from "./support.ts";
import type { ChildConfig, ChildResult, Contender } from "./topology-redis-child.ts";
import { check, events, Expected, USERS } from "./topology-redis-data.ts";

const BACKLOG = process.env.BENCH_BACKLOG ? Number(process.env.BENCH_BACKLOG) : undefined;
const N = BACKLOG ?? Number(process.argv[2] ?? 1_000_000);
const ROUNDS = Number(process.argv[3] ?? 1);
const ALL: Contender[] = ["bare", "hand", "features", "cache"];
const only = (process.env.BENCH_ONLY ?? (BACKLOG ? "hand,features,cache" : ALL.join(","))).split(",") as Contender[];
if (only.some((c) => !ALL.includes(c))) throw new Error(`BENCH_ONLY: expected a comma list of ${ALL.join(", ")}`);
const LABEL: Record<Contender, string> = {
  bare: "bare kafkajs eachBatch (no decode)",
  hand: "hand-written eachBatch+avsc+pipeline",
  features: "topology → redis.features",
  cache: "topology → redis.cache",
};

const env = benchEnv();
const run = Date.now().toString(36);
const topic = `bench.${run}.user-events`;
const schemaPath = path.resolve(import.meta.dirname, "../fixtures/schemas/user-event.avsc");
const kafka = new Kafka({ clientId: "bench", brokers: env.KAFKA_BROKERS!.split(","), logLevel: logLevel.NOTHING });

/** Produces N user events keyed by user id (a user's records in order on one partition) and returns what they add up to. */
async function produce(): Promise<Expected> {
  const admin = kafka.admin();
  await admin.connect();
  await createTopicsReady(admin, [topic], 3);
  await admin.disconnect();
  const codecs = new SchemaCodecs(env.SCHEMA_REGISTRY_URL!);
  const { text, type } = readAvsc(schemaPath, "/");
  const encode = codecs.encoder(await codecs.register(`${topic}-value`, text), type);
  const producer = kafka.producer();
  await producer.connect();
  const expected = new Expected();
  const next = events();
  // As runtime.bench.ts: 1,000 messages per send, 20 sends in flight (one connection: in order).
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < N; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, N - i) }, (_, j) => {
      const e = next(i + j);
      expected.add(e);
      return { key: e.user_id, value: encode(e) };
    });
    sends.push(producer.send({ topic, messages }));
    if (sends.length >= 20) await Promise.all(sends.splice(0));
  }
  await Promise.all(sends);
  await producer.disconnect();
  return expected;
}

/** used_cpu_sys + used_cpu_user (s) and, per command, calls and µs from INFO commandstats. */
async function redisCpu(redis: Redis): Promise<{ cpu: number; commands: Map<string, { calls: number; usec: number }> }> {
  const info = await redis.info("cpu");
  const field = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(info)?.[1] ?? NaN);
  const commands = new Map<string, { calls: number; usec: number }>();
  for (const m of (await redis.info("commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) commands.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  return { cpu: field("used_cpu_sys") + field("used_cpu_user"), commands };
}

interface Outcome extends ChildResult {
  redisCpu: number;
  /** The contender's Redis commands: calls and server µs, busiest first. */
  commands: string;
  problems: string[];
}

// kafkajs 2.2 sets a negative timeout on Node 24 (clamped to 1 ms, harmless): one warning per process.
/** BENCH_NODE_FLAGS adds flags to every contender, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" (not allowed in NODE_OPTIONS). */
const NODE_FLAGS = ["--disable-warning=TimeoutNegativeWarning", ...(process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean)];
/** BENCH_TOPOLOGY_FLAGS: flags for the topologies only, e.g. "--max-semi-space-size=16" (NODE_OPTIONS would change the hand-written worker's heap too). */
const TOPOLOGY_FLAGS = (process.env.BENCH_TOPOLOGY_FLAGS ?? "").split(" ").filter(Boolean);

const ROOT = path.resolve(import.meta.dirname, "../..");
const FROM_SOURCES = process.env.BENCH_FROM === "src";
/** Compiled contenders (BENCH_FROM unset): under the repository, so their imports resolve to its node_modules. */
const BUILD = path.join(ROOT, ".bench-build");

/**
 * Compiles the contenders and the library code they import to JavaScript, as the package's
 * build does (relative imports rewritten to .js), and copies the Lua scripts the sinks load.
 */
function compileContenders(): void {
  fs.rmSync(BUILD, { recursive: true, force: true });
  fs.mkdirSync(BUILD, { recursive: true });
  const config = path.join(BUILD, "tsconfig.json");
  const files = ["topology-redis-kafkajs.ts", "topology-redis-fleet.ts"].map((f) => path.join(import.meta.dirname, f));
  fs.writeFileSync(config, JSON.stringify({ extends: path.join(ROOT, "tsconfig.json"), compilerOptions: { noEmit: false, rootDir: ROOT, outDir: BUILD, sourceMap: false }, files, include: [] }));
  const tsc = spawnSync(process.execPath, [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", config], { stdio: "inherit" });
  if (tsc.status !== 0) throw new Error("compiling the contenders failed");
  const scripts = "lib/connectors/redis/scripts";
  fs.mkdirSync(path.join(BUILD, scripts), { recursive: true });
  for (const f of fs.readdirSync(path.join(ROOT, scripts))) fs.copyFileSync(path.join(ROOT, scripts, f), path.join(BUILD, scripts, f));
}

function runChild(config: ChildConfig): Promise<ChildResult> {
  const handWritten = config.contender === "bare" || config.contender === "hand";
  const name = handWritten ? "topology-redis-kafkajs" : "topology-redis-fleet";
  const file = FROM_SOURCES ? path.join(import.meta.dirname, `${name}.ts`) : path.join(BUILD, "test/bench", `${name}.js`);
  // A topology runs as `streamfleet run` runs it: with a worker's heap bounds and environment (those the flags, NODE_OPTIONS and the environment leave unset).
  const topologyFlags = [...NODE_FLAGS, ...TOPOLOGY_FLAGS];
  const execArgv = handWritten ? NODE_FLAGS : [...topologyFlags, ...missingHeapFlags(topologyFlags, process.env.NODE_OPTIONS)];
  const workerEnv = handWritten ? {} : missingWorkerEnv(process.env);
  const child = fork(file, [], { env: { ...process.env, ...workerEnv, BENCH_CHILD: JSON.stringify(config) }, execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  // A contender that stops making progress (a crash loop, a lost record) fails the run instead of hanging it.
  const limitS = 60 + config.records / 2_000;
  const watchdog = setTimeout(() => child.kill("SIGKILL"), limitS * 1000);
  return new Promise((resolve, reject) => {
    let result: ChildResult | undefined;
    child.on("message", (m) => (result = m as ChildResult));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(watchdog);
      if (result && code === 0) resolve(result);
      else reject(new Error(`${config.contender} ${signal === "SIGKILL" ? `did not finish within ${limitS} s` : `exited with code ${code}`}`));
    });
  });
}

async function contend(contender: Contender, round: number, redis: Redis, redisUrl: string, expected: Expected): Promise<Outcome> {
  const name = `bench-${run}-${contender}-${round}`;
  const config: ChildConfig = {
    contender,
    topic,
    group: name,
    records: N,
    brokers: env.KAFKA_BROKERS!.split(","),
    registryUrl: env.SCHEMA_REGISTRY_URL!,
    redisUrl,
    keyPrefix: `${name}:`,
    schemaPath,
    view: "bench_users",
  };
  const before = await redisCpu(redis);
  const result = await runChild(config);
  const after = await redisCpu(redis);
  const commands = [...after.commands]
    .filter(([cmd]) => cmd !== "info")
    .map(([cmd, a]) => ({ cmd, calls: a.calls - (before.commands.get(cmd)?.calls ?? 0), usec: a.usec - (before.commands.get(cmd)?.usec ?? 0) }))
    .filter((c) => c.calls > 0)
    .sort((a, b) => b.usec - a.usec)
    .map((c) => `${c.cmd} ${c.calls.toLocaleString("en-US")} calls ${(c.usec / 1e6).toFixed(2)} s`)
    .join(", ");
  const problems = await check(contender, redis, config.keyPrefix, config.view, expected);
  await redis.flushall("SYNC");
  return { ...result, redisCpu: after.cpu - before.cpu, commands, problems };
}

const f0 = (x: number) => Math.round(x).toLocaleString("en-US");

function print(round: number, outcomes: Outcome[]): void {
  const hand = outcomes.find((o) => o.contender === "hand");
  console.log(`\nround ${round + 1} of ${ROUNDS}: ${N.toLocaleString("en-US")} records, 3 partitions, ${USERS} users; load average now ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  console.log(`${"contender".padEnd(38)} ${"rec/s".padStart(10)} ${"× hand".padStart(7)} ${"Redis CPU".padStart(10)} ${"µs/rec".padStart(7)} ${"peak RSS".padStart(9)} ${"CPU µs/rec".padStart(10)} ${"start-up".padStart(9)}  check`);
  for (const o of outcomes) {
    const ratio = hand ? (hand.ms / o.ms).toFixed(2) : "—";
    const ok = o.contender === "bare" ? `${f0(o.committed)} committed` : o.problems.length ? `WRONG for ${o.problems.length} users` : o.contender === "cache" ? "ok: last record per user" : "ok: count, sum, max, latest";
    console.log(
      `${LABEL[o.contender].padEnd(38)} ${f0((N / o.ms) * 1000).padStart(10)} ${ratio.padStart(7)} ${`${o.redisCpu.toFixed(2)} s`.padStart(10)} ${((o.redisCpu / N) * 1e6).toFixed(2).padStart(7)} ${`${f0(o.peakRssMb)} MB`.padStart(9)} ${((o.cpuMs / N) * 1000).toFixed(2).padStart(10)} ${`${f0(o.marks.firstCommit ?? NaN)} ms`.padStart(9)}  ${ok}`,
    );
  }
  console.log("CPU µs/rec: the contender process's user + system time (GC threads too, start-up included) over N; its node flags (and worker environment):");
  const nodeOptions = process.env.NODE_OPTIONS ? ` NODE_OPTIONS="${process.env.NODE_OPTIONS}"` : "";
  const workerEnv = Object.entries(missingWorkerEnv(process.env)).map(([k, v]) => ` ${k}=${v}`).join("");
  for (const o of outcomes) {
    const env = o.contender === "bare" || o.contender === "hand" ? "" : workerEnv;
    const inProcess = o.v8Flags?.length ? ` (set in-process: ${o.v8Flags.join(" ")})` : "";
    console.log(`  ${o.contender.padEnd(9)} ${o.execArgv.filter((a) => !NODE_FLAGS.includes(a)).join(" ") || "(none)"}${inProcess}${nodeOptions}${env}`);
  }
  console.log("start-up, ms since the contender's process started (first commit = the start-up column):");
  for (const o of outcomes) {
    const steps = Object.entries(o.marks)
      .filter(([k, v]) => k !== "done" && v !== undefined)
      .sort((a, b) => a[1]! - b[1]!)
      .map(([k, v]) => `${k} ${f0(v!)}`)
      .join(", ");
    console.log(`  ${o.contender.padEnd(9)} ${steps}; ${(o.ms / 1000).toFixed(2)} s from first batch to the N-th record committed`);
  }
  console.log("Redis commands per contender (INFO commandstats deltas; a script's inner calls are counted too):");
  for (const o of outcomes) if (o.commands) console.log(`  ${o.contender.padEnd(9)} ${o.commands}`);
  for (const o of outcomes) for (const p of o.problems.slice(0, 5)) console.error(`  ${o.contender} WRONG ${p}`);
}

const redisServer = await PrivateRedis.start();
const redis = new Redis(redisServer.url);
const groups: string[] = [];
let failed = false;
try {
  const t0 = performance.now();
  const expected = await produce();
  console.log(`machine: ${machine()}; ${new Date().toISOString()}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  console.log(`produced ${N.toLocaleString("en-US")} Avro records on ${topic} in ${((performance.now() - t0) / 1000).toFixed(1)} s (${rate(N, performance.now() - t0)}); private redis-server on port ${redisServer.port}`);
  if (!FROM_SOURCES) compileContenders();
  console.log(`the topologies' Kafka client: ${process.env.KAFKA_CLIENT ?? `${DEFAULT_KAFKA_CLIENT} (the default; KAFKA_CLIENT=kafkajs|platformatic to choose)`}; the hand-written worker: kafkajs`);
  console.log(`contenders run ${FROM_SOURCES ? "from the TypeScript sources (BENCH_FROM=src)" : "compiled to JavaScript (.bench-build/), as a deployed worker runs dist/"}`);
  console.log(`hand-written: HINCRBY count + HINCRBYFLOAT sum + one Lua call (max score, latest category by event time) per user and batch; no replay guard, DLQ or metrics`);
  const best = new Map<Contender, Outcome>();
  for (let round = 0; round < ROUNDS; round++) {
    const outcomes: Outcome[] = [];
    for (const c of only) {
      groups.push(`bench-${run}-${c}-${round}`);
      const o = await contend(c, round, redis, redisServer.url, expected);
      outcomes.push(o);
      if (o.problems.length) failed = true;
      if (!best.has(c) || o.ms < best.get(c)!.ms) best.set(c, o);
    }
    print(round, outcomes);
  }
  if (ROUNDS > 1) {
    console.log(`\nbest of ${ROUNDS} rounds:`);
    const hand = best.get("hand");
    for (const [c, o] of best) console.log(`  ${LABEL[c].padEnd(38)} ${rate(N, o.ms).padStart(14)}${hand ? `  ${(hand.ms / o.ms).toFixed(2)}× hand` : ""}`);
  }
} finally {
  redis.disconnect();
  await redisServer.kill();
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteGroups(groups).catch(() => {});
  await admin.deleteTopics({ topics: [topic, ...groups.filter((g) => /-(features|cache)-/.test(g)).map((g) => `${g}.dlq`)] }).catch(() => {});
  await admin.disconnect();
}
if (failed) {
  console.error("\nA contender's Redis result is WRONG (see above).");
  process.exit(1);
}
