/**
 * The feature sink on one Redis vs on a Redis Cluster of three masters (issue 17): the same
 * records, same run, each target private to the bench (a redis-server child; a cluster on free
 * loopback ports started with `stack up --redis-cluster`'s code and stopped at the end).
 *   flock /tmp/streamfleet-bench.lock npx node test/bench/redis-cluster-features.bench.ts
 * BENCH_RECORDS (100,000), BENCH_BATCH (10,000), BENCH_ENTITIES (2,000 and 100,000: a few hot
 * entities, then nearly one record per entity), BENCH_ROUNDS (3).
 * Prints records/s and the Redis CPU per record and per entity update (summed over the nodes).
 * BENCH_WAIT=1: instead, a cluster of three masters with a replica each, the sink without and
 * with REDIS_WAIT_REPLICAS=1 (the cost of waiting for a replica per flush and node).
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { Redis } from "ioredis";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { redisClusterNodes, redisClusterPorts, redisCommand } from "../../lib/stack/redis-cluster.ts";
import { tcpOpen } from "../../lib/stack/probe.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { startTestCluster, stopTestCluster } from "../support/redis-modes.ts";
import { BENCH_USER_VIEW, machine } from "./support.ts";

const RECORDS = Number(process.env.BENCH_RECORDS ?? 100_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 10_000);
const SLICE = 500;
const ENTITY_COUNTS = (process.env.BENCH_ENTITIES ?? "2000,100000").split(",").map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const prefix = `bench:${crypto.randomBytes(4).toString("hex")}:`;
const T0 = Date.now() - 3_600_000;
const view = BENCH_USER_VIEW;

/** Three masters and three replicas on ports of their own (BENCH_WAIT=1). */
async function replicated(): Promise<{ ports: number[]; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-bench-repl-"));
  // below the ephemeral range (32768..), bus ports (+10000) included, and free
  let base = 0;
  for (let i = 0; i < 50 && !base; i++) {
    const b = 12_000 + Math.floor(Math.random() * 10_000);
    if (!(await Promise.all([0, 1, 2, 3, 4, 5].flatMap((d) => [b + d, b + d + 10_000]).map((p) => tcpOpen("127.0.0.1", p)))).some(Boolean)) base = b;
  }
  const ports = [0, 1, 2, 3, 4, 5].map((d) => base + d);
  const children: ChildProcess[] = ports.map((port) => {
    fs.mkdirSync(path.join(dir, String(port)));
    return spawn("redis-server", ["--bind", "127.0.0.1", "--port", String(port), "--dir", path.join(dir, String(port)), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  });
  const stop = async () => {
    for (const c of children) c.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const until = async (ok: () => Promise<boolean>) => {
    for (let i = 0; i < 300 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 100));
  };
  await until(async () => (await Promise.all(ports.map((p) => tcpOpen("127.0.0.1", p)))).every(Boolean));
  const create = spawnSync("redis-cli", ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"], { encoding: "utf8" });
  if (create.status !== 0) {
    await stop();
    throw new Error(create.stderr || create.stdout);
  }
  await until(async () => (await Promise.all(ports.map((p) => redisCommand(p, ["CLUSTER", "INFO"]).catch(() => "")))).every((t) => t.includes("cluster_state:ok")));
  await until(async () => (await Promise.all(ports.map((p) => redisCommand(p, ["INFO", "replication"]).catch(() => "")))).filter((t) => /role:master/.test(t) && /connected_slaves:1/.test(t) && /state=online/.test(t)).length === 3);
  return { ports, stop };
}

const WAIT = process.env.BENCH_WAIT === "1";
const single = WAIT ? undefined : await PrivateRedis.start();
const cluster = WAIT ? undefined : await startTestCluster();
const repl = WAIT ? await replicated() : undefined;
const targets = WAIT
  ? [
      { name: "3x2 cluster", env: { REDIS_CLUSTER_NODES: repl!.ports.map((p) => `127.0.0.1:${p}`).join(",") }, ports: repl!.ports },
      { name: "3x2 cluster, REDIS_WAIT_REPLICAS=1", env: { REDIS_CLUSTER_NODES: repl!.ports.map((p) => `127.0.0.1:${p}`).join(","), REDIS_WAIT_REPLICAS: "1" }, ports: repl!.ports },
    ]
  : [
      { name: "single", env: { REDIS_URL: single!.url }, ports: [single!.port] },
      { name: "cluster (3 masters)", env: { REDIS_CLUSTER_NODES: redisClusterNodes(cluster!) }, ports: redisClusterPorts(cluster!) },
    ];

async function cpu(ports: number[]): Promise<number> {
  let total = 0;
  for (const port of ports) {
    const r = new Redis({ port, host: "127.0.0.1" });
    const info = await r.info("cpu");
    r.disconnect();
    const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
    total += get("used_cpu_user") + get("used_cpu_sys");
  }
  return total;
}

let partition = 0;
function input(entities: number): StreamRecord[] {
  const p = partition++;
  return Array.from({ length: RECORDS }, (_, i) => makeRecord({ userId: `u${i % entities}`, item: `item-${i % 97}`, amount: (i % 50) + 0.5, at: T0 + i }, { topic: "bench", partition: p, offset: String(i) }));
}

console.log(`machine: ${machine()}`);
console.log(`${RECORDS.toLocaleString("en-US")} records per round, batches of ${BATCH} (slices of ${SLICE}), 4 features`);
try {
  const sinks = await Promise.all(
    targets.map(async (t, i) => {
      // a prefix per target: with BENCH_WAIT both write one cluster, and the second must not find the first's watermarks
      const s = featuresSink.create(featuresSink.schema.parse({ key_prefix: `${prefix}${i}:`, views: [view] }), makeContext({ connections: new Connections(t.env) })) as Sink;
      await s.open!();
      return s;
    }),
  );
  const flushAll = async (s: Sink, records: StreamRecord[]) => {
    for (let i = 0; i < records.length; i += BATCH) {
      const b = s.batch!();
      const batch = records.slice(i, i + BATCH);
      for (let j = 0; j < batch.length; j += SLICE) b.add(batch.slice(j, j + SLICE));
      await b.flush();
    }
  };
  for (const s of sinks) await flushAll(s, input(1000).slice(0, BATCH)); // warm-up
  for (const entities of ENTITY_COUNTS) {
    const updatesPerRound = Math.ceil(RECORDS / BATCH) * Math.min(entities, BATCH);
    console.log(`-- ${entities.toLocaleString("en-US")} entities (${updatesPerRound.toLocaleString("en-US")} entity updates per round)`);
    for (let round = 0; round < ROUNDS; round++) {
      const records = input(entities);
      const line: string[] = [];
      // interleaved, so noise from other processes hits both alike
      for (let t = 0; t < targets.length; t++) {
        const c0 = await cpu(targets[t]!.ports);
        const start = performance.now();
        await flushAll(sinks[t]!, records);
        const ms = performance.now() - start;
        const redisS = (await cpu(targets[t]!.ports)) - c0;
        line.push(`${targets[t]!.name}: ${Math.round((RECORDS / ms) * 1000).toLocaleString("en-US")} rec/s, Redis ${((redisS * 1e6) / RECORDS).toFixed(2)} µs/rec, ${((redisS * 1e6) / updatesPerRound).toFixed(1)} µs/update`);
      }
      console.log(`  round ${round + 1}  ${line.join("  |  ")}`);
    }
  }
  for (const s of sinks) await s.close();
} finally {
  await single?.kill();
  if (cluster) await stopTestCluster(cluster);
  await repl?.stop();
}
