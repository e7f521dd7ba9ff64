import { afterAll, expect, it } from "vitest";
import { redis } from "../../lib/connectors/redis/index.ts";
import { redisMetrics } from "../../lib/connectors/redis/metrics.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { EngineMetrics } from "../../lib/observability/metrics.ts";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";

const scope = new TestScope("redisconn");
afterAll(() => scope.cleanup());

describeStack("redis connector descriptor", () => {
  it("offers its sinks and steps under their documented names", () => {
    expect(Object.keys(redis.sinks!)).toEqual(["redis.features", "redis.cache", "redis.publish"]);
    expect(Object.keys(redis.steps!)).toEqual(["enrich", "dedupe", "rate-limit"]);
  });

  it("health passes against the running Redis and fails with the reason, without the password", async () => {
    await expect(redis.health!(new Connections(process.env), AbortSignal.timeout(5000))).resolves.toBeUndefined();
    const err = await redis.health!(new Connections({ REDIS_URL: "redis://:pw-secret@127.0.0.1:1" }), AbortSignal.timeout(5000)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "SF_ERR_SINK_NOT_CONNECTED" });
    expect((err as Error).message).not.toContain("pw-secret");
    // a worker without REDIS_URL does not use the connector: nothing to check
    await expect(redis.health!(new Connections({}), AbortSignal.timeout(5000))).resolves.toBeUndefined();
  });

  it("registers its metrics once however many components share a registry, and counts script results", async () => {
    const metrics = new EngineMetrics({ processMetrics: false });
    const spec = redis.sinks!["redis.features"]!;
    const config = spec.schema.parse({ key_prefix: scope.keyPrefix, views: [{ name: `m_${scope.id}`, entity: "user", key: "{u}", features: [{ name: "n", kind: "counter" }] }] });
    const a = (await spec.create(config, makeContext({ metrics, topology: "t1" }))) as Sink;
    const b = (await spec.create(config, makeContext({ metrics, topology: "t2" }))) as Sink;
    expect(redisMetrics(metrics).pipelineSeconds).toBe(redisMetrics(metrics).pipelineSeconds);
    const batch = [makeRecord({ u: "x" }), makeRecord({ u: "y" })];
    await a.write(batch);
    await b.write(batch); // the same records again: duplicates
    const text = await metrics.registry.metrics();
    expect(text).toContain('streamfleet_redis_script_results_total{topology="t1",script="features_apply",result="applied"} 2');
    expect(text).toContain('streamfleet_redis_script_results_total{topology="t2",script="features_apply",result="duplicate"} 2');
    expect(text).toMatch(/streamfleet_redis_pipeline_seconds_count\{topology="t1",operation="features"\} 1/);
    await a.close();
    await b.close();
  });
});
