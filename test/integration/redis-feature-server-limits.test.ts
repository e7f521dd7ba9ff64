import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startFeatureServer } from "../../lib/features/server.ts";
import type { FeatureServer } from "../../lib/features/server.ts";
import { keys } from "../../lib/features/layout.ts";
import type { ViewDef } from "../../lib/features/layout.ts";
import { EngineMetrics } from "../../lib/observability/metrics.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const scope = new TestScope("featlimits");
const TOKEN = "limits-token";
const view: ViewDef = { name: `v_${scope.id}`, entity: "user", features: [{ name: "orders", kind: "counter" }] };
const metrics = new EngineMetrics({ processMetrics: false });
let redis: Redis;
let server: FeatureServer;

const get = async (id: string) => {
  const res = await fetch(`${server.url}/v1/features/${view.name}/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as { error?: { code: string; message: string }; features?: { orders: { value: unknown } } } };
};
const inFlight = async () => (await metrics.featureInFlight.get()).values[0]?.value;

beforeAll(async () => {
  // the server's own connection: a BLPOP on it holds every read queued behind it, in real Redis, without touching other clients
  redis = new Redis(stack().REDIS_URL);
  await redis.hset(keys.entity(scope.keyPrefix, view.name, "u1"), { orders: "7", "orders@t": String(Date.now()) });
  server = await startFeatureServer({ redis, token: TOKEN, port: 0, host: "127.0.0.1", keyPrefix: scope.keyPrefix, views: [view], maxInFlight: 2, deadlineMs: 300, metrics });
});
afterAll(async () => {
  await server.close();
  await redis.del(keys.entity(scope.keyPrefix, view.name, "u1"));
  redis.disconnect();
  await scope.cleanup();
});

describeStack("feature server limits", () => {
  it("answers 503 with Retry-After when the in-flight bound is reached, 504 after the deadline, and recovers", async () => {
    expect((await get("u1")).body.features?.orders.value).toBe(7);
    const blocked = redis.blpop(`${scope.keyPrefix}never`, 1.5);
    const started = performance.now();
    const slow = [get("u1"), get("u1")];
    await new Promise((r) => setTimeout(r, 100));
    expect(await inFlight()).toBe(2);

    const shed = await get("u1");
    expect(shed.status).toBe(503);
    expect(shed.retryAfter).toBe("1");
    expect(shed.body.error).toEqual({ code: "SF_ERR_FEATURES_OVERLOADED", message: expect.stringContaining("retry") });

    for (const res of await Promise.all(slow)) {
      expect(res.status).toBe(504);
      expect(res.body.error).toEqual({ code: "SF_ERR_FEATURES_DEADLINE", message: expect.stringContaining("300 ms") });
    }
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited, "the deadline is checked every quarter of it").toBeLessThan(1000);
    expect(await inFlight()).toBe(0);

    await blocked; // the late HMGET replies arrive after their 504: nothing is sent twice
    const again = await get("u1");
    expect([again.status, again.body.features?.orders.value]).toEqual([200, 7]);
    const counted = (await metrics.featureRequests.get()).values;
    expect(counted.find((v) => v.labels.route === "get" && v.labels.status === "503")?.value).toBe(1);
    expect(counted.find((v) => v.labels.route === "get" && v.labels.status === "504")?.value).toBe(2);
  });
});
