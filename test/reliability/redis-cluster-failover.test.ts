/**
 * A Redis Cluster master dies under the feature sink. The test starts its own cluster of three
 * masters with one replica each (loopback ports of its own, node timeout 2 s), writes 60
 * batches of 100 records over 60 entities with REDIS_WAIT_REPLICAS=1 — each node's pipeline
 * ends with WAIT 1, so a write counts only once a replica holds it — SIGKILLs the master of an
 * entity's slot after batch 20 and starts it again 8 s later (it comes back as a replica of
 * the promoted one). Each failed write must be retriable (never a record refused) and is
 * retried whole, as the core does; at the end every entity's counters are exact: nothing
 * acknowledged was lost with the master, nothing counted twice.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Cluster } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { keySlot } from "../../lib/connectors/redis/cluster.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { keys } from "../../lib/features/layout.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { redisCommand } from "../../lib/stack/redis-cluster.ts";
import { tcpOpen } from "../../lib/stack/probe.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { describeStack } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-failover-"));
const nodes = new Map<number, ChildProcess>();
let client: Cluster | undefined;
let sink: Sink | undefined;

function startNode(port: number): void {
  const d = path.join(dir, String(port));
  fs.mkdirSync(d, { recursive: true });
  const args = ["--bind", "127.0.0.1", "--port", String(port), "--dir", d, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"];
  nodes.set(port, spawn("redis-server", args, { stdio: "ignore" }));
}

async function kill(port: number): Promise<void> {
  const child = nodes.get(port);
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

afterAll(async () => {
  await sink?.close();
  client?.disconnect();
  for (const port of nodes.keys()) await kill(port);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function freeBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 31_000 + Math.floor(Math.random() * 10_000);
    const ports = [0, 1, 2, 3, 4, 5].flatMap((d) => [base + d, base + d + 10_000]);
    if (!(await Promise.all(ports.map((p) => tcpOpen("127.0.0.1", p)))).some(Boolean)) return base;
  }
  throw new Error("no free loopback ports for the failover cluster");
}

const info = async (port: number) => Object.fromEntries((await redisCommand(port, ["INFO", "replication"]).catch(() => "")).split("\r\n").map((l) => l.split(":")));

describeStack("Redis Cluster: a master killed under the feature sink (REDIS_WAIT_REPLICAS=1)", () => {
  it("retries the writes of the dead master's slots until its replica took over, and loses or doubles nothing", { timeout: 180_000 }, async () => {
    const base = await freeBase();
    const ports = [0, 1, 2, 3, 4, 5].map((d) => base + d);
    for (const p of ports) startNode(p);
    await waitUntil(async () => (await Promise.all(ports.map((p) => tcpOpen("127.0.0.1", p)))).every(Boolean), 20_000, "six redis-server nodes up");
    const create = spawnSync("redis-cli", ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"], { encoding: "utf8", timeout: 60_000 });
    expect(create.status, create.stderr || create.stdout).toBe(0);
    // every master has its replica attached and in sync
    await waitUntil(async () => (await Promise.all(ports.map(info))).filter((i) => i.role === "master" && i.connected_slaves === "1").length === 3, 30_000, "three masters with a replica each");
    await waitUntil(async () => (await Promise.all(ports.map((p) => redisCommand(p, ["CLUSTER", "INFO"]).catch(() => "")))).every((t) => t.includes("cluster_state:ok")), 30_000, "cluster_state:ok on every node");

    const env = { REDIS_CLUSTER_NODES: ports.map((p) => `127.0.0.1:${p}`).join(","), REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "500" };
    const view = { name: "failover", entity: "user", key: "{u}", features: [{ name: "n", kind: "counter" }, { name: "sum", kind: "counter", by: "{v}" }, { name: "last", kind: "latest", field: "i" }] };
    sink = featuresSink.create(featuresSink.schema.parse({ views: [view] }), makeContext({ component: "sinks[0]:redis.features", connections: new Connections(env) })) as Sink;
    client = new Cluster(ports.map((port) => ({ host: "127.0.0.1", port })));
    await sink.open!();

    const E = 60;
    const BATCHES = 60;
    const record = (i: number) => makeRecord({ u: `u${i % E}`, v: i % 7, i }, { topic: "failover", offset: String(i) });
    // the master of u0's slot
    const slot = keySlot(keys.entity("", view.name, "u0", true));
    await client.cluster("SLOTS");
    const victim = Number((client.slots[slot]![0] ?? "").split(":")[1]);
    expect(ports).toContain(victim);

    let retries = 0;
    let killedAt = 0;
    let pauseMs = 0;
    let restarted: Promise<void> | undefined;
    for (let b = 0; b < BATCHES; b++) {
      const batch = Array.from({ length: 100 }, (_, j) => record(b * 100 + j));
      if (b === 20) {
        await kill(victim);
        killedAt = Date.now();
        restarted = new Promise((resolve) => setTimeout(() => (startNode(victim), resolve()), 8_000));
      }
      const started = Date.now();
      for (;;) {
        try {
          expect(await sink.write(batch)).toBeUndefined(); // nothing refused record by record
          break;
        } catch (err) {
          // what the core sees: a retriable failure, so it backs off and retries the whole batch
          expect(err, String(err)).toMatchObject({ code: "SF_ERR_SINK_NOT_CONNECTED", retriable: true });
          retries++;
          expect(Date.now() - started, "a batch stuck for 90 s").toBeLessThan(90_000);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      if (b === 20) pauseMs = Date.now() - killedAt;
    }
    await restarted;

    const features = new FeatureClient({ redis: client, keyPrefix: "" });
    const ids = Array.from({ length: E }, (_, u) => `u${u}`);
    const got = await features.getFeatures(view.name, ids);
    const all = Array.from({ length: BATCHES * 100 }, (_, i) => i);
    expect(got.map((e) => [e.id, e.features.n!.value, e.features.sum!.value, e.features.last!.value])).toEqual(
      ids.map((id, u) => {
        const mine = all.filter((i) => i % E === u);
        return [id, mine.length, mine.reduce((a, i) => a + (i % 7), 0), mine.at(-1)];
      }),
    );
    // the promoted replica serves the slot now; the old master came back as its replica
    const roles = await info(victim);
    console.log(`failover: writes to the dead master's slots paused ${pauseMs} ms (kill to the first acknowledged write, restart after 8 s), ${retries} retried batch writes; the restarted node is now a ${roles.role}`);
    expect(pauseMs).toBeGreaterThan(0);
    expect(retries).toBeGreaterThan(0);
  });
});
