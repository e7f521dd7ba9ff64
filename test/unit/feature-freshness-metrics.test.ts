import client from "prom-client";
import { describe, expect, it } from "vitest";
import { redisMetrics, viewFreshness } from "../../lib/connectors/redis/metrics.ts";
import { EngineMetrics } from "../../lib/observability/metrics.ts";

const LAG = "streamfleet_feature_apply_lag_seconds";

/** The apply lag lines of a registry's exposition. */
async function lagLines(registry: client.Registry): Promise<string[]> {
  return (await registry.metrics()).split("\n").filter((l) => l.startsWith(LAG));
}

describe("feature view freshness series", () => {
  it("observes the apply lag exactly as prom-client's observe() would, also after a reset", async () => {
    const m = new EngineMetrics({ processMetrics: false });
    const f = viewFreshness(m, "topo", "user", undefined, () => 0);
    const h = redisMetrics(m).applyLag;
    const reference = new client.Registry();
    const buckets = (h as unknown as { upperBounds: number[] }).upperBounds;
    const ref = new client.Histogram({ name: LAG, help: "apply lag", labelNames: ["topology", "view"], buckets, registers: [reference] });
    // the boundaries themselves, between them, 0, and beyond the last bound
    const lags = [0, 0.05, 0.0500001, 1, 1.5, 2.5, 3600, 3600.5, 7200, 0.3, 42];
    for (const s of lags) {
      f.applied(1_000_000 - s * 1000, 1_000_000);
      ref.labels("topo", "user").observe(s);
    }
    expect(await lagLines(m.registry)).toEqual(await lagLines(reference));
    expect((await lagLines(m.registry)).some((l) => l.endsWith(` ${lags.length}`))).toBe(true);
    m.registry.resetMetrics();
    reference.resetMetrics();
    f.applied(10_000, 12_000);
    ref.labels("topo", "user").observe(2);
    f.applied(10_000, 10_100);
    ref.labels("topo", "user").observe(0.1);
    expect(await lagLines(m.registry)).toEqual(await lagLines(reference));
  });

  it("reads freshness at scrape time from the newest event time, clamped at 0, per topology and view", async () => {
    let now = 100_000;
    const m = new EngineMetrics({ processMetrics: false });
    const a = viewFreshness(m, "t1", "a", 30, () => now);
    const b = viewFreshness(m, "t2", "a", undefined, () => now);
    const gauge = () => m.registry.getSingleMetricAsString("streamfleet_feature_freshness_seconds");
    expect(await gauge()).not.toContain("{");
    a.applied(90_000, now);
    a.applied(40_000, now); // a backfill: older than what the view has
    b.applied(now + 5_000, now); // ahead of the clock
    expect(await gauge()).toContain('streamfleet_feature_freshness_seconds{topology="t1",view="a"} 10');
    expect(await gauge()).toContain('streamfleet_feature_freshness_seconds{topology="t2",view="a"} 0');
    now += 60_000;
    expect(await gauge()).toContain('streamfleet_feature_freshness_seconds{topology="t1",view="a"} 70');
    expect(await gauge()).toContain('streamfleet_feature_freshness_seconds{topology="t2",view="a"} 55');
    const slo = await m.registry.getSingleMetricAsString("streamfleet_feature_freshness_slo_seconds");
    expect(slo).toContain('streamfleet_feature_freshness_slo_seconds{topology="t1",view="a"} 30');
    expect(slo).not.toContain('topology="t2"');
  });
});
