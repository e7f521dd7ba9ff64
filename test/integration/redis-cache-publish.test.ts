import { Redis } from "ioredis";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RedisClient } from "../../lib/connectors/redis/cluster.ts";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { cacheSink } from "../../lib/connectors/redis/sink-cache.ts";
import { publishSink } from "../../lib/connectors/redis/sink-publish.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { clusterClient, REDIS_MODES, useRedis } from "../support/redis-modes.ts";
import type { RedisTarget } from "../support/redis-modes.ts";

const scope = new TestScope("rediscache");
const sinks: Sink[] = [];

async function make<C>(target: RedisTarget, spec: { schema: { parse(v: unknown): C }; create(c: C, ctx: ReturnType<typeof makeContext>): Sink | Promise<Sink> }, config: object): Promise<Sink> {
  const s = await spec.create(spec.schema.parse({ key_prefix: scope.keyPrefix, ...config }), makeContext({ connections: target.connections() }));
  sinks.push(s);
  return s;
}

afterAll(async () => {
  for (const s of sinks) await s.close();
  await scope.cleanup();
});

describeStack("redis.cache sink", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);
    let redis: RedisClient;
    beforeAll(() => {
      redis = target.redis;
    });

    it("caches the entity as JSON with its TTL and deletes it on a delete event", async () => {
      const s = await make(target, cacheSink, { key: "complaint:{id}", ttl_seconds: 60, delete_when: { field: "type", eq: "complaint.deleted" } });
      await s.write([makeRecord({ id: "c1", type: "complaint.created", text: "leak" }), makeRecord({ id: "c2", type: "complaint.created", text: "noise" })]);
      expect(JSON.parse((await redis.get(`${scope.keyPrefix}complaint:c1`))!)).toEqual({ id: "c1", type: "complaint.created", text: "leak" });
      const ttl = await redis.ttl(`${scope.keyPrefix}complaint:c1`);
      expect(ttl).toBeGreaterThan(50);
      expect(ttl).toBeLessThanOrEqual(60);
      await s.write([makeRecord({ id: "c1", type: "complaint.deleted" })]);
      expect(await redis.exists(`${scope.keyPrefix}complaint:c1`)).toBe(0);
      expect(await redis.exists(`${scope.keyPrefix}complaint:c2`)).toBe(1);
    });

    it("deletes the key on a tombstone (null value, key template on the record key)", async () => {
      const s = await make(target, cacheSink, { key: "building:{$key}", fields: ["name"] });
      await s.write([makeRecord({ name: "Tower A", secret: "x" }, { key: "b1" })]);
      expect(await redis.get(`${scope.keyPrefix}building:b1`)).toBe('{"name":"Tower A"}');
      expect(await redis.ttl(`${scope.keyPrefix}building:b1`)).toBe(-1);
      await s.write([makeRecord(null, { key: "b1" })]);
      expect(await redis.exists(`${scope.keyPrefix}building:b1`)).toBe(0);
    });

    it("expires entries after ttl_seconds", async () => {
      const s = await make(target, cacheSink, { key: "short:{id}", ttl_seconds: 1 });
      await s.write([makeRecord({ id: "s1" })]);
      expect(await redis.exists(`${scope.keyPrefix}short:s1`)).toBe(1);
      await new Promise((r) => setTimeout(r, 2100));
      expect(await redis.exists(`${scope.keyPrefix}short:s1`)).toBe(0);
    });

    it("writes a batch of many keys (every shard on a cluster) once per key, the last word winning, replayed alike", async () => {
      const s = await make(target, cacheSink, { key: "many:{id}", delete_when: { field: "gone", eq: true } });
      const batch = [...Array.from({ length: 600 }, (_, i) => makeRecord({ id: `m${i % 300}`, n: i })), makeRecord({ id: "m5", gone: true })];
      expect(await s.write(batch)).toBeUndefined();
      expect(await s.write(batch)).toBeUndefined(); // a retried batch ends in the same state
      const got = await Promise.all(Array.from({ length: 300 }, (_, k) => redis.get(`${scope.keyPrefix}many:m${k}`)));
      expect(got.map((v) => (v === null ? null : (JSON.parse(v) as { n: number }).n))).toEqual(Array.from({ length: 300 }, (_, k) => (k === 5 ? null : 300 + k)));
      if (mode === "cluster") {
        const perMaster = await Promise.all((redis as Cluster).nodes("master").map((n) => n.keys(`${scope.keyPrefix}many:*`)));
        expect(perMaster.map((k) => k.length > 50)).toEqual([true, true, true]);
      }
    });

    it("rejects a record whose key field is missing", async () => {
      const s = await make(target, cacheSink, { key: "complaint:{id}" });
      const out = await s.write([makeRecord({ text: "no id" })]);
      expect(out?.failed?.[0]?.error).toMatchObject({ code: "SF_ERR_SINK_RECORD_INVALID" });
    });
  });
});

describeStack("redis.publish sink", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);

    it("publishes one message per record on the templated channel, whole or mapped", async () => {
      // on a cluster the subscriber listens on one node; messages published on another reach it
      const sub = mode === "single" ? new Redis(stack().REDIS_URL) : clusterClient(target.options!);
      const got: Array<[string, unknown]> = [];
      await sub.subscribe(`${scope.keyPrefix}complaints:b1`, `${scope.keyPrefix}alerts:b1`);
      sub.on("message", (channel: string, message: string) => got.push([channel.slice(scope.keyPrefix.length), JSON.parse(message)]));
      const whole = await make(target, publishSink, { channel: "complaints:{buildingId}" });
      const mapped = await make(target, publishSink, { channel: "alerts:{buildingId}", fields: { id: "{$id}", severity: "{severity}" } });
      const r1 = makeRecord({ buildingId: "b1", severity: 3 });
      const r2 = makeRecord({ buildingId: "b1", severity: 5 });
      await whole.write([r1, r2]);
      await mapped.write([r1]);
      for (let i = 0; i < 50 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      sub.disconnect();
      expect(got).toEqual([
        ["complaints:b1", { buildingId: "b1", severity: 3 }],
        ["complaints:b1", { buildingId: "b1", severity: 5 }],
        ["alerts:b1", { id: r1.id, severity: 3 }],
      ]);
    });
  });
});
