import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { EngineMetrics } from "../../lib/observability/metrics.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { REDIS_MODES, useRedis } from "../support/redis-modes.ts";
import type { RedisTarget } from "../support/redis-modes.ts";

const scope = new TestScope("freshness");
/** Per block (the shared Redis, then a Redis Cluster the file starts): its topology label and Redis. */
let topology = `${scope.id}-features`;
let target: RedisTarget;
const sinks: Sink[] = [];
const T = Date.UTC(2025, 5, 1, 12, 0, 0);
let clock = T;
const metrics = new EngineMetrics({ processMetrics: false });

/** Every record updates view `activity`; only clicks update view `clicks` (its newest event time lags behind). */
const activity = {
  name: `activity_${scope.id}`,
  entity: "user",
  key: "{userId}",
  event_time: "at",
  freshness_slo_seconds: 60,
  features: [
    { name: "events", kind: "counter" },
    { name: "last_type", kind: "latest", field: "type" },
  ],
};
const clicks = {
  name: `clicks_${scope.id}`,
  entity: "user",
  key: "{userId}",
  event_time: "at",
  features: [{ name: "clicks_1h", kind: "window_count", window: "1h", when: { field: "type", eq: "click" } }],
};

function sink(): Sink {
  const config = featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [activity, clicks] });
  const s = featuresSink.create(config, makeContext({ topology, component: "sinks[0]:redis.features", metrics, now: () => clock, connections: target.connections() })) as Sink;
  sinks.push(s);
  return s;
}

const ev = (userId: string, type: string, at: number): StreamRecord => makeRecord({ userId, type, at });

/** Takes a batch the way the runner does: slices added, one flush before the commit. */
async function commit(s: Sink, records: StreamRecord[]): Promise<void> {
  const b = s.batch!();
  expect(b.add(records)).toEqual([]);
  expect(await b.flush()).toBeUndefined();
}

/** A sample of the Prometheus text exposition, as a scrape reads it: undefined when the series is absent. */
async function scraped(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  for (const line of text.split("\n")) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const view = (v: { name: string }) => ({ topology, view: v.name });
const freshness = (v: { name: string }) => scraped("streamfleet_feature_freshness_seconds", view(v));
const lag = (v: { name: string }, series: "count" | "sum") => scraped(`streamfleet_feature_apply_lag_seconds_${series}`, view(v));
const lagBucket = (v: { name: string }, le: string) => scraped("streamfleet_feature_apply_lag_seconds_bucket", { ...view(v), le });

afterAll(async () => {
  for (const s of sinks) await s.close();
  await scope.cleanup();
});

describeStack("feature view freshness (redis.features)", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const mine = useRedis(mode);
    let s: Sink;
    beforeAll(() => {
      target = mine;
      topology = `${scope.id}-features-${mode}`;
      clock = T;
      s = sink();
    });
    const first = [ev("u1", "click", T - 5000), ev("u1", "view", T - 2000), ev("u2", "view", T - 3000)];

    it("exports the declared SLO, and no freshness before the first applied update", async () => {
      await s.open!();
      expect(await scraped("streamfleet_feature_freshness_slo_seconds", view(activity))).toBe(60);
      expect(await scraped("streamfleet_feature_freshness_slo_seconds", view(clicks))).toBeUndefined();
      expect(await metrics.registry.metrics()).toContain("# TYPE streamfleet_feature_freshness_seconds gauge");
      expect(await freshness(activity)).toBeUndefined();
      expect(await lag(activity, "count")).toBeUndefined();
    });

    it("measures freshness from the newest applied event time per view, and the apply lag once per entity update", async () => {
      await commit(s, first);
      // activity: newest T-2000 (u1); clicks: only u1's click at T-5000
      expect(await freshness(activity)).toBe(2);
      expect(await freshness(clicks)).toBe(5);
      // one observation per entity update, from its newest event time: u1 2 s, u2 3 s
      expect(await lag(activity, "count")).toBe(2);
      expect(await lag(activity, "sum")).toBe(5);
      expect(await lagBucket(activity, "1")).toBe(0);
      expect(await lagBucket(activity, "2.5")).toBe(1);
      expect(await lagBucket(activity, "5")).toBe(2);
      expect(await lag(clicks, "count")).toBe(1);
      expect(await lag(clicks, "sum")).toBe(5);
    });

    it("grows while nothing arrives: computed at scrape time", async () => {
      clock = T + 10_000;
      expect(await freshness(activity)).toBe(12);
      expect(await freshness(clicks)).toBe(15);
      clock = T + 70_000;
      expect(await freshness(activity)).toBe(72); // now above the view's SLO of 60
      expect(await lag(activity, "count")).toBe(2); // no update, no observation
    });

    it("counts nothing for a replayed batch (nothing applied)", async () => {
      await commit(s, first);
      expect(await lag(activity, "count")).toBe(2);
      expect(await freshness(activity)).toBe(72);
    });

    it("a backfill lands in the top buckets of the lag but never makes the view look older", async () => {
      const hourAgo = clock - 7_200_000;
      await commit(s, [ev("u3", "view", hourAgo)]);
      expect(await lag(activity, "count")).toBe(3);
      expect(await lagBucket(activity, "3600")).toBe(2); // 7200 s: above the last bound, only +Inf
      expect(await lagBucket(activity, "+Inf")).toBe(3);
      expect(await freshness(activity)).toBe(72);
    });

    it("a fresh update brings freshness back; an event time ahead of the clock counts as 0, never negative", async () => {
      await commit(s, [ev("u1", "click", clock - 1000)]);
      expect(await freshness(activity)).toBe(1);
      expect(await freshness(clicks)).toBe(1);
      await commit(s, [ev("u2", "click", clock + 5000)]);
      expect(await freshness(activity)).toBe(0);
      expect(await lagBucket(activity, "0.05")).toBe(1);
      clock += 8000;
      expect(await freshness(activity)).toBe(3);
    });

    it("a direct write (exact mode) is measured the same way", async () => {
      await s.write([ev("u4", "view", clock - 500)]);
      expect(await freshness(activity)).toBe(0.5);
      expect(await lag(activity, "count")).toBe(6);
    });
  });
});
