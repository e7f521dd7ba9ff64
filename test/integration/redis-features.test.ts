import { execFileSync } from "node:child_process";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RedisClient } from "../../lib/connectors/redis/cluster.ts";
import { SfError } from "../../lib/errors.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { REDIS_MODES, useRedis } from "../support/redis-modes.ts";

const scope = new TestScope("redisfeat");
const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0); // 10:00 UTC, start of an hourly window
const sinks: Sink[] = [];

const complaints = {
  name: `complaints_${scope.id}`,
  entity: "resident",
  key: "{residentId}",
  event_time: "at",
  features: [
    { name: "open_complaints", kind: "counter", by: "{delta}" },
    { name: "created_total", kind: "counter", when: { field: "type", eq: "created" } },
    { name: "last_type", kind: "latest", field: "type" },
    { name: "max_severity", kind: "max", field: "severity" },
    { name: "min_severity", kind: "min", field: "severity" },
    { name: "recent_types", kind: "last_n", field: "type", n: 3 },
    { name: "created_1h", kind: "window_count", window: "1h", when: { field: "type", eq: "created" } },
    { name: "severity_1h", kind: "window_sum", field: "severity", window: "1h" },
  ],
};

function ev(residentId: string, type: string, at: number, severity = 1, offset?: string): StreamRecord {
  return makeRecord({ residentId, type, at, severity, delta: type === "created" ? 1 : type === "closed" ? -1 : 0 }, offset ? { offset } : {});
}

afterAll(async () => {
  for (const s of sinks) await s.close();
  await scope.cleanup();
});

describeStack("redis.features sink", () => {
  // on the shared Redis and on a Redis Cluster the suite starts (entity keys hash-tagged there)
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);
    let redis: RedisClient;
    let features: FeatureClient;
    beforeAll(() => {
      redis = target.redis;
      features = new FeatureClient({ redis, keyPrefix: scope.keyPrefix });
    });

    function sink(views: unknown[], env?: Record<string, string>): Sink {
      const config = featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views });
      const s = featuresSink.create(config, makeContext({ component: "sinks[0]:redis.features", connections: env ? new Connections(env) : target.connections() })) as Sink;
      sinks.push(s);
      return s;
    }

    it("keeps counters exact when the same batch is written twice", async () => {
      const s = sink([complaints]);
      await s.open!();
      const batch = [ev("r1", "created", T0 + 1), ev("r1", "created", T0 + 2), ev("r1", "closed", T0 + 3), ev("r2", "created", T0 + 4)];
      expect(await s.write(batch)).toBeUndefined();
      expect(await s.write(batch)).toBeUndefined(); // the core retries whole batches
      await s.write([batch[1]!, batch[3]!]); // a partial replay, as after a rebalance
      const [r1, r2] = await features.getFeatures(complaints.name, ["r1", "r2"], ["open_complaints", "created_total"], { asOf: T0 + 10 });
      expect(r1!.features.open_complaints!.value).toBe(1);
      expect(r1!.features.created_total!.value).toBe(2);
      expect(r2!.features.open_complaints!.value).toBe(1);
      expect(r1!.features.open_complaints!.event_time).toBe(T0 + 3);
      expect(r1!.features.open_complaints!.staleness_ms).toBe(7);
    });

    it("keeps the newest value by event time when events arrive out of order", async () => {
      const s = sink([complaints]);
      await s.write([ev("r3", "escalated", T0 + 3000, 5), ev("r3", "created", T0 + 1000, 2)]);
      await s.write([ev("r3", "commented", T0 + 2000, 9)]);
      const [r3] = await features.getFeatures(complaints.name, ["r3"], undefined, { asOf: T0 + 5000 });
      const f = r3!.features;
      expect(f.last_type).toMatchObject({ value: "escalated", event_time: T0 + 3000 });
      expect(f.max_severity).toMatchObject({ value: 9, event_time: T0 + 2000 });
      expect(f.min_severity).toMatchObject({ value: 2, event_time: T0 + 1000 });
      expect(f.recent_types!.value).toEqual(["escalated", "commented", "created"]);
      await s.write([ev("r3", "closed", T0 + 4000), ev("r3", "reopened", T0 + 500)]);
      const [again] = await features.getFeatures(complaints.name, ["r3"], ["last_type", "recent_types"], { asOf: T0 + 5000 });
      expect(again!.features.last_type!.value).toBe("closed");
      expect(again!.features.recent_types!.value).toEqual(["closed", "escalated", "commented"]);
    });

    it("counts per tumbling window across a window boundary, late events included", async () => {
      const s = sink([complaints]);
      const end = T0 + HOUR; // 11:00, the boundary
      await s.write([ev("r4", "created", end - 2000, 1), ev("r4", "created", end - 1, 2), ev("r4", "created", end, 4), ev("r4", "closed", end + 10, 8)]);
      await s.write([ev("r4", "created", end - 500, 16)]); // late: still lands in 10:00-11:00
      const read = async (asOf: number) => (await features.getFeatures(complaints.name, ["r4"], ["created_1h", "severity_1h"], { asOf }))[0]!.features;
      const before = await read(end - 1);
      expect(before.created_1h).toMatchObject({ value: 3, window_start: T0 });
      expect(before.severity_1h!.value).toBe(19);
      const after = await read(end + HOUR - 1);
      expect(after.created_1h).toMatchObject({ value: 1, window_start: end });
      expect(after.severity_1h!.value).toBe(12);
      expect((await read(end + HOUR)).created_1h!.value).toBe(0); // 12:00: a new window, nothing in it yet
      // three windows on, the 10:00 window is dropped (2 kept) and a later 10:00 event is ignored
      await s.write([ev("r4", "created", end + 2 * HOUR, 1), ev("r4", "created", end - 100, 1)]);
      expect((await read(end - 1)).created_1h!.value).toBe(0);
    });

    it("expires an entity ttl_seconds after its last write", async () => {
      const view = { name: `short_${scope.id}`, entity: "user", key: "{userId}", ttl_seconds: 1, features: [{ name: "seen", kind: "counter" }] };
      const s = sink([view]);
      await s.write([makeRecord({ userId: "u1" })]);
      expect((await features.getFeatures(view.name, ["u1"]))[0]!.found).toBe(true);
      await new Promise((r) => setTimeout(r, 2100));
      const [u1] = await features.getFeatures(view.name, ["u1"]);
      expect(u1!.found).toBe(false);
      expect(u1!.features.seen!.value).toBeNull();
    });

    it("rejects a record without its entity key and writes the rest of the batch", async () => {
      const s = sink([complaints]);
      const bad = makeRecord({ type: "created", at: T0, delta: 1 });
      const out = await s.write([bad, ev("r5", "created", T0)]);
      expect(out?.failed).toHaveLength(1);
      expect(out!.failed![0]!.record).toBe(bad);
      expect(out!.failed![0]!.error).toMatchObject({ code: "SF_ERR_SINK_RECORD_INVALID", retriable: false });
      expect((await features.getFeatures(complaints.name, ["r5"], ["created_total"]))[0]!.features.created_total!.value).toBe(1);
    });

    it("reports an unreachable Redis as a retriable SF_ERR_SINK_NOT_CONNECTED without the password", async () => {
      const s = sink([complaints], mode === "single" ? { REDIS_URL: "redis://:hunter2@127.0.0.1:1" } : { REDIS_CLUSTER_NODES: "127.0.0.1:1", REDIS_PASSWORD: "hunter2" });
      const err = await s.write([ev("r6", "created", T0)]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SfError);
      expect(err).toMatchObject({ code: "SF_ERR_SINK_NOT_CONNECTED", retriable: true });
      expect((err as Error).message).not.toContain("hunter2");
    });

    it("applies a batch over many entities (every shard) exactly once, replayed whole, in part and overlapping", async () => {
      const view = { name: `many_${scope.id}`, entity: "user", key: "{u}", features: [{ name: "n", kind: "counter" }, { name: "sum", kind: "counter", by: "{v}" }, { name: "last", kind: "latest", field: "i" }] };
      const ctx = makeContext({ topology: `many_${mode}`, component: "sinks[0]:redis.features", connections: target.connections() });
      const s = featuresSink.create(featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [view] }), ctx) as Sink;
      sinks.push(s);
      const E = 400;
      const rec = (i: number) => makeRecord({ u: `u${i % E}`, v: i % 7, i }, { topic: `t_${scope.id}`, offset: String(i) });
      const first = Array.from({ length: 2000 }, (_, i) => rec(i));
      expect(await s.write(first)).toBeUndefined();
      expect(await s.write(first)).toBeUndefined(); // the core retried the whole batch
      expect(await s.write(first.slice(1000))).toBeUndefined(); // a replay of its second half
      const overlap = [...first.slice(1500), ...Array.from({ length: 100 }, (_, i) => rec(2000 + i))]; // 500 applied records, then 100 new
      expect(await s.write(overlap)).toBeUndefined();

      const all = Array.from({ length: 2100 }, (_, i) => i);
      const ids = Array.from({ length: E }, (_, u) => `u${u}`);
      const got = await features.getFeatures(view.name, ids);
      expect(got.map((e) => [e.id, e.features.n!.value, e.features.sum!.value, e.features.last!.value])).toEqual(
        ids.map((id, u) => {
          const mine = all.filter((i) => i % E === u);
          return [id, mine.length, mine.reduce((a, i) => a + (i % 7), 0), mine.at(-1)];
        }),
      );
      const results = (await ctx.metrics.registry.getSingleMetric("streamfleet_redis_script_results_total")!.get()).values;
      const count = (r: string) => results.filter((v) => v.labels.result === r).reduce((a, v) => a + v.value, 0);
      expect({ applied: count("applied"), duplicate: count("duplicate") }).toEqual({ applied: 2100, duplicate: 2000 + 1000 + 500 });
      if (mode === "cluster") {
        // each entity's hash sits in the slot of its tag, and the entities spread over the three masters
        const cluster = redis as Cluster;
        expect(await cluster.cluster("KEYSLOT", target.entityKey(scope.keyPrefix, view.name, "u7"))).toBe(await cluster.cluster("KEYSLOT", "u7"));
        const perMaster = await Promise.all(cluster.nodes("master").map((n) => n.dbsize()));
        expect(perMaster.map((n) => n > 50)).toEqual([true, true, true]);
      }
    });

    it("leaves the documented layout readable without this library", async () => {
      const s = sink([complaints]);
      await s.write([ev("r7", "created", T0 + 5, 3), ev("r7", "escalated", T0 + 6, 4)]);
      // a single Redis: sf:v1:fv:<view>:r7; a cluster: sf:v1:fv:<view>:{r7}, the id a hash tag
      const key = mode === "single" ? `${scope.keyPrefix}sf:v1:fv:${complaints.name}:r7` : `${scope.keyPrefix}sf:v1:fv:${complaints.name}:{r7}`;
      expect(key).toBe(target.entityKey(scope.keyPrefix, complaints.name, "r7"));
      const hash = await redis.hgetall(key);
      expect(JSON.parse(hash.last_type!)).toBe("escalated");
      expect(Number(hash["last_type@t"])).toBe(T0 + 6);
      expect(Number(hash.created_total)).toBe(1);
      expect(JSON.parse(hash.recent_types!)).toEqual(["escalated", "created"]);
      expect(Number(hash[`created_1h|${T0}`])).toBe(1);
      const registry = JSON.parse((await redis.hget(`${scope.keyPrefix}sf:v1:views`, complaints.name))!);
      expect(registry.features.find((f: { name: string }) => f.name === "created_1h")).toMatchObject({ kind: "window_count", window_ms: HOUR });
      // redis-cli, as a Python or shell user would
      const port = mode === "single" ? new URL(stack().REDIS_URL).port || "6379" : target.env.REDIS_CLUSTER_NODES!.split(",")[0]!.split(":")[1]!;
      const cli = execFileSync("redis-cli", [...(mode === "cluster" ? ["-c"] : []), "-p", port, "HGET", key, "max_severity"], { encoding: "utf8" });
      expect(cli.trim()).toBe("4");
    });
  });
});
