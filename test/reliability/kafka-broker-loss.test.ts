import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigResourceTypes, Kafka, logLevel, Partitioners } from "kafkajs";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { clusterBrokers, clusterDown, clusterNodePid, clusterNodes, clusterUp, startClusterNode } from "../../lib/stack/kafka-cluster.ts";
import type { ClusterOptions } from "../../lib/stack/kafka-cluster.ts";
import { tcpOpen } from "../../lib/stack/probe.ts";
import { stackOptionsFromEnv } from "../../lib/stack/stack.ts";
import { writeTopologies } from "../support/fleet.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";
import type { WorkerProcess } from "../support/worker.ts";

/**
 * A replicated Kafka cluster of our own (`stack up --kafka-brokers 3`: RF 3, min.insync.replicas 2)
 * loses the broker that leads the most input partitions (SIGKILL) in the middle of a
 * 200,000-record run of two workers, and gets it back later. Every record lands exactly once
 * in the idempotent sinks (PostgreSQL rows keyed by record id, Redis cache keys), nothing is
 * dead-lettered, and no worker exits.
 */
const RECORDS = 200_000;
const PARTITIONS = 6;
const scope = new TestScope("brokerloss");
let cluster: ClusterOptions | undefined;
const workers: WorkerProcess[] = [];

afterAll(async () => {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGKILL");
  if (cluster) {
    await clusterDown(cluster);
    fs.rmSync(cluster.stateDir, { recursive: true, force: true });
  }
  await scope.cleanup();
}, 120_000);

/** Six free loopback ports: brokers at base.., controllers at base+100... */
async function freeBase(): Promise<number> {
  for (let base = 19_292; base < 29_000; base += 500) {
    const ports = [0, 1, 2, 100, 101, 102].map((d) => base + d);
    if (!(await Promise.all(ports.map((p) => tcpOpen("127.0.0.1", p)))).some(Boolean)) return base;
  }
  throw new Error("no six free ports for the test cluster");
}

function topology(name: string, input: string, dlq: string, table: string) {
  return {
    name,
    source: { topics: [input], session_timeout_ms: 10_000, commit_interval_ms: 500 },
    codec: { value: { type: "json" } },
    sinks: [
      { type: "postgres", pg_schema: scope.pgSchema, table, columns: [{ name: "id", type: "bigint" }] },
      { type: "redis.cache", key_prefix: scope.keyPrefix, key: "r:{id}" },
    ],
    errors: { dlq: { topic: dlq } },
  };
}

async function produce(kafka: Kafka, topic: string): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  for (let start = 0; start < RECORDS; start += 2000) {
    const messages = Array.from({ length: 2000 }, (_, j) => ({ key: `r${start + j}`, value: JSON.stringify({ id: start + j, note: "broker loss" }) }));
    await producer.send({ topic, messages });
  }
  await producer.disconnect();
}

describeStack("a Kafka broker lost mid-run", () => {
  it("SIGKILL of the broker leading most input partitions, restarted later: every record once in the idempotent sinks, DLQ empty, workers up", { timeout: 600_000 }, async () => {
    const open = stackOptionsFromEnv(process.env);
    const base = await freeBase();
    cluster = { stateDir: fs.mkdtempSync(path.join(os.tmpdir(), "sf-kafka-cluster-")), openStateDir: open.stateDir, brokers: 3, basePort: base, controllerBasePort: base + 100, startTimeoutMs: 180_000 };
    const t0 = Date.now();
    await clusterUp(cluster);
    const upSeconds = (Date.now() - t0) / 1000;
    const brokers = clusterBrokers(cluster);
    const kafka = new Kafka({ clientId: scope.id, brokers: brokers.split(","), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();

    const [input, dlq, table] = [`${scope.id}.in`, `${scope.id}.dlq`, "landed"];
    // Created as streamfleet creates topics (no replication given): the brokers' defaults apply.
    await admin.createTopics({ topics: [{ topic: input, numPartitions: PARTITIONS }], waitForLeaders: true });
    const p0 = Date.now();
    await produce(kafka, input);
    const produceSeconds = (Date.now() - p0) / 1000;

    // A pool: the sampler and the waits query at the same time.
    const db = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 3 });
    const rows = async () => Number((await db.query(`SELECT count(*) AS n FROM "${scope.pgSchema}"."${table}"`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);

    const dir = writeTopologies([topology(`${scope.id}-loss`, input, dlq, table)]);
    const env = { ...stack(), KAFKA_BROKERS: brokers };
    for (const i of [1, 2]) workers.push(spawnWorker(dir, env, path.join(dir, `worker-${i}.log`)));
    const exits: string[] = [];
    for (const [i, w] of workers.entries()) void w.exited.then((code) => exits.push(`worker ${i + 1} exited with ${code}`));

    // Progress, sampled every 250 ms.
    const samples: Array<{ at: number; n: number }> = [];
    const sampler = setInterval(() => void rows().then((n) => samples.push({ at: Date.now(), n })), 250);
    try {
      await waitUntil(async () => (await rows()) >= RECORDS * 0.2, 180_000, "20% of the records in PostgreSQL");

      // The broker leading the most input partitions.
      const meta = (await admin.fetchTopicMetadata({ topics: [input] })).topics[0]!;
      const leads = new Map<number, number>();
      for (const p of meta.partitions) leads.set(p.leader, (leads.get(p.leader) ?? 0) + 1);
      const [victimId, led] = [...leads.entries()].sort((a, b) => b[1] - a[1])[0]!;
      const victim = clusterNodes(cluster).find((n) => n.id === victimId)!;
      const pid = clusterNodePid(victim)!;
      expect(meta.partitions.every((p) => p.replicas.length === 3)).toBe(true);
      const atKill = await rows();
      const killedAt = Date.now();
      process.kill(-pid, "SIGKILL");
      await waitUntil(() => !clusterNodePid(victim), 10_000, `broker ${victimId} gone`);

      // Two brokers left: min.insync.replicas 2 still holds, so the fleet goes on.
      await waitUntil(async () => (await rows()) >= atKill + RECORDS * 0.2, 180_000, "20% more records with one broker down");
      const withTwo = (await rows()) - atKill;
      const restartAt = Date.now();
      await startClusterNode(cluster, victim);
      const restartSeconds = (Date.now() - restartAt) / 1000;

      await waitUntil(async () => (await rows()) >= RECORDS, 300_000, `all ${RECORDS} records in PostgreSQL`);
      // A moment for any duplicate a replay would add (it must not).
      await new Promise((r) => setTimeout(r, 3000));
      clearInterval(sampler);

      const counts = (await db.query(`SELECT count(*) AS n, count(DISTINCT id) AS ids, min(id) AS lo, max(id) AS hi FROM "${scope.pgSchema}"."${table}"`)).rows[0];
      expect({ rows: Number(counts.n), ids: Number(counts.ids), lo: Number(counts.lo), hi: Number(counts.hi) }).toEqual({ rows: RECORDS, ids: RECORDS, lo: 0, hi: RECORDS - 1 });

      const redis = new Redis(stack().REDIS_URL);
      let keys = 0;
      let cursor = "0";
      do {
        const [next, found] = await redis.scan(cursor, "MATCH", `${scope.keyPrefix}r:*`, "COUNT", 5000);
        cursor = next;
        keys += found.length;
      } while (cursor !== "0");
      const sample = JSON.parse((await redis.get(`${scope.keyPrefix}r:123456`)) ?? "null") as { id: number } | null;
      redis.disconnect();
      expect(keys).toBe(RECORDS);
      expect(sample?.id).toBe(123_456);

      // The DLQ the workers created: empty, and replicated as the cluster's defaults say.
      const dlqOffsets = await admin.fetchTopicOffsets(dlq);
      expect(dlqOffsets.reduce((n, p) => n + Number(p.high), 0)).toBe(0);
      const dlqMeta = (await admin.fetchTopicMetadata({ topics: [dlq] })).topics[0]!;
      expect(dlqMeta.partitions.every((p) => p.replicas.length === 3)).toBe(true);
      const configs = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: dlq, configNames: ["min.insync.replicas"] }], includeSynonyms: false });
      expect(configs.resources[0]!.configEntries[0]!.configValue).toBe("2");

      // The restarted broker caught up: every input partition has its three replicas in sync again.
      await waitUntil(async () => (await admin.fetchTopicMetadata({ topics: [input] })).topics[0]!.partitions.every((p) => p.isr.length === 3), 120_000, `broker ${victimId} back in every ISR`);

      expect(exits).toEqual([]);
      for (const w of workers) expect(w.child.exitCode).toBe(null);

      // The longest stretch after the kill without a new row: what losing the broker paused.
      let pause = 0;
      let lastChange = killedAt;
      let lastN = atKill;
      for (const s of samples.filter((x) => x.at >= killedAt)) {
        if (s.n > lastN) {
          pause = Math.max(pause, s.at - lastChange);
          [lastChange, lastN] = [s.at, s.n];
        }
      }
      console.log(
        `[broker-loss] cluster up ${upSeconds.toFixed(1)}s; produced ${RECORDS} in ${produceSeconds.toFixed(1)}s; killed broker ${victimId} (led ${led}/${PARTITIONS}) at ${atKill} rows; ` +
          `${withTwo} rows landed with two brokers; restart took ${restartSeconds.toFixed(1)}s; longest pause without a new row after the kill ${(pause / 1000).toFixed(1)}s; ` +
          `all ${RECORDS} in ${((Date.now() - killedAt) / 1000).toFixed(1)}s after the kill`,
      );
    } finally {
      clearInterval(sampler);
      for (const w of workers) w.child.kill("SIGTERM");
      await Promise.all(workers.map((w) => w.exited));
      await db.end();
      await admin.disconnect();
    }
  });
}, ["java"]);
