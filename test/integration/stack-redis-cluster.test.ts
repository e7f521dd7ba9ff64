import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Cluster } from "ioredis";
import { afterAll, expect, it } from "vitest";
import { tcpOpen } from "../../lib/stack/probe.ts";
import { redisClusterDown, redisClusterNodes, redisClusterStatus, redisClusterUp } from "../../lib/stack/redis-cluster.ts";
import type { RedisClusterOptions } from "../../lib/stack/redis-cluster.ts";
import { describeStack } from "../support/scope.ts";

/**
 * `stack up --redis-cluster` on ports of its own: three masters that together serve all 16,384
 * slots, an entity's keys (hash-tagged) in one slot, `down` stopping exactly its processes.
 */
let o: RedisClusterOptions | undefined;

afterAll(async () => {
  if (!o) return;
  await redisClusterDown(o);
  fs.rmSync(o.stateDir, { recursive: true, force: true });
});

async function freeBase(): Promise<number> {
  for (let base = 17_101; base < 27_000; base += 100) {
    if (!(await Promise.all([0, 1, 2, 10_000, 10_001, 10_002].map((d) => tcpOpen("127.0.0.1", base + d)))).some(Boolean)) return base; // +10000: the cluster bus ports
  }
  throw new Error("no free ports for the test Redis Cluster");
}

describeStack("stack: Redis Cluster", () => {
  it("three masters cover every slot; an entity's keys share a slot; down stops them", { timeout: 120_000 }, async () => {
    o = { stateDir: fs.mkdtempSync(path.join(os.tmpdir(), "sf-redis-cluster-")), masters: 3, basePort: await freeBase(), startTimeoutMs: 60_000 };
    const status = await redisClusterUp(o);
    expect(status.map((s) => [s.up, /ours, pid \d+/.test(s.note)])).toEqual([
      [true, true],
      [true, true],
      [true, true],
    ]);
    // A second up reuses what runs.
    expect((await redisClusterUp(o)).every((s) => s.up)).toBe(true);

    const cluster = new Cluster(redisClusterNodes(o).split(",").map((a) => ({ host: a.split(":")[0], port: Number(a.split(":")[1]) })));
    try {
      const shards = (await cluster.cluster("SHARDS")) as unknown[];
      expect(shards).toHaveLength(3);
      // Keys of many entities spread over the three masters; one entity's keys (its {tag}) share one slot.
      const owners = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const keys = [`{user:${i}}:features`, `{user:${i}}:cache`];
        const slots = await Promise.all(keys.map((k) => cluster.cluster("KEYSLOT", k) as Promise<number>));
        expect(new Set(slots).size).toBe(1);
        await cluster.multi().set(keys[0]!, "f").set(keys[1]!, "c").exec(); // one slot: a transaction is allowed
        const node = cluster.nodes("master").find((n) => n.options.port === Number((cluster.slots[slots[0]!]?.[0] ?? "").split(":")[1]));
        owners.add(String(node?.options.port));
      }
      expect(owners.size).toBe(3);
    } finally {
      cluster.disconnect();
    }

    expect(await redisClusterDown(o)).toHaveLength(3);
    expect((await redisClusterStatus(o)).some((s) => s.up)).toBe(false);
  });
});
