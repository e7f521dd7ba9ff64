import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { cacheSink } from "../../lib/connectors/redis/sink-cache.ts";
import { publishSink } from "../../lib/connectors/redis/sink-publish.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";

const scope = new TestScope("rediscache");
let redis: Redis;
const sinks: Sink[] = [];

async function make<C>(spec: { schema: { parse(v: unknown): C }; create(c: C, ctx: ReturnType<typeof makeContext>): Sink | Promise<Sink> }, config: object): Promise<Sink> {
  const s = await spec.create(spec.schema.parse({ key_prefix: scope.keyPrefix, ...config }), makeContext());
  sinks.push(s);
  return s;
}

beforeAll(() => {
  redis = new Redis(stack().REDIS_URL);
});
afterAll(async () => {
  for (const s of sinks) await s.close();
  redis.disconnect();
  await scope.cleanup();
});

describeStack("redis.cache sink", () => {
  it("caches the entity as JSON with its TTL and deletes it on a delete event", async () => {
    const s = await make(cacheSink, { key: "complaint:{id}", ttl_seconds: 60, delete_when: { field: "type", eq: "complaint.deleted" } });
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
    const s = await make(cacheSink, { key: "building:{$key}", fields: ["name"] });
    await s.write([makeRecord({ name: "Tower A", secret: "x" }, { key: "b1" })]);
    expect(await redis.get(`${scope.keyPrefix}building:b1`)).toBe('{"name":"Tower A"}');
    expect(await redis.ttl(`${scope.keyPrefix}building:b1`)).toBe(-1);
    await s.write([makeRecord(null, { key: "b1" })]);
    expect(await redis.exists(`${scope.keyPrefix}building:b1`)).toBe(0);
  });

  it("expires entries after ttl_seconds", async () => {
    const s = await make(cacheSink, { key: "short:{id}", ttl_seconds: 1 });
    await s.write([makeRecord({ id: "s1" })]);
    expect(await redis.exists(`${scope.keyPrefix}short:s1`)).toBe(1);
    await new Promise((r) => setTimeout(r, 2100));
    expect(await redis.exists(`${scope.keyPrefix}short:s1`)).toBe(0);
  });

  it("rejects a record whose key field is missing", async () => {
    const s = await make(cacheSink, { key: "complaint:{id}" });
    const out = await s.write([makeRecord({ text: "no id" })]);
    expect(out?.failed?.[0]?.error).toMatchObject({ code: "SF_ERR_SINK_RECORD_INVALID" });
  });
});

describeStack("redis.publish sink", () => {
  it("publishes one message per record on the templated channel, whole or mapped", async () => {
    const sub = new Redis(stack().REDIS_URL);
    const got: Array<[string, unknown]> = [];
    await sub.subscribe(`${scope.keyPrefix}complaints:b1`, `${scope.keyPrefix}alerts:b1`);
    sub.on("message", (channel: string, message: string) => got.push([channel.slice(scope.keyPrefix.length), JSON.parse(message)]));
    const whole = await make(publishSink, { channel: "complaints:{buildingId}" });
    const mapped = await make(publishSink, { channel: "alerts:{buildingId}", fields: { id: "{$id}", severity: "{severity}" } });
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
