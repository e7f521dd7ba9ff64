import { afterAll, describe, expect, it } from "vitest";
import type { ComponentSpec, Sink, Step, StreamRecord } from "../../lib/runtime/contracts.ts";
import { redis as connector } from "../../lib/connectors/redis/index.ts";
import { cacheSink } from "../../lib/connectors/redis/sink-cache.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { REDIS_MODES, useRedis } from "../support/redis-modes.ts";
import type { RedisTarget } from "../support/redis-modes.ts";

const scope = new TestScope("redissteps");
const opened: Array<Step | Sink> = [];

async function step(target: RedisTarget, kind: "enrich" | "dedupe" | "rate-limit", config: object): Promise<Step> {
  const spec = connector.steps[kind] as ComponentSpec<unknown, Step>;
  const s = await spec.create(spec.schema.parse({ key_prefix: scope.keyPrefix, ...config }), makeContext({ topology: `t_${scope.id}`, component: `steps[0].${kind}`, connections: target.connections() }));
  opened.push(s);
  return s;
}
const values = (rs: StreamRecord[]) => rs.map((r) => r.value);

afterAll(async () => {
  for (const s of opened) await s.close?.();
  await scope.cleanup();
});

describeStack("enrich step", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);

    it("sets a cached entity into a field, null when absent", async () => {
      const cache = await cacheSink.create(cacheSink.schema.parse({ key_prefix: scope.keyPrefix, key: "building:{id}" }), makeContext({ connections: target.connections() }));
      opened.push(cache);
      await cache.write([makeRecord({ id: "b1", name: "Tower A" })]);
      const enrich = await step(target, "enrich", { cache: "building:{buildingId}", into: "building" });
      const out = await enrich.process([makeRecord({ buildingId: "b1", n: 1 }), makeRecord({ buildingId: "nope", n: 2 }), makeRecord({ buildingId: "b1", n: 3 })]);
      expect(values(out.records)).toEqual([
        { buildingId: "b1", n: 1, building: { id: "b1", name: "Tower A" } },
        { buildingId: "nope", n: 2, building: null },
        { buildingId: "b1", n: 3, building: { id: "b1", name: "Tower A" } },
      ]);
    });

    it("sets a feature view's features into a field", async () => {
      const view = { name: `residents_${scope.id}`, entity: "resident", key: "{residentId}", features: [{ name: "complaints", kind: "counter" }, { name: "last_type", kind: "latest", field: "type" }] };
      const sink = await featuresSink.create(featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [view] }), makeContext({ connections: target.connections() }));
      opened.push(sink);
      await sink.write([makeRecord({ residentId: "r1", type: "noise" }), makeRecord({ residentId: "r1", type: "leak" })]);
      const enrich = await step(target, "enrich", { view: view.name, key: "{residentId}", into: "resident" });
      const out = await enrich.process([makeRecord({ residentId: "r1" }), makeRecord({ residentId: "r9" })]);
      expect(values(out.records)).toEqual([{ residentId: "r1", resident: { complaints: 2, last_type: "leak" } }, { residentId: "r9", resident: null }]);
      const some = await step(target, "enrich", { view: view.name, key: "{residentId}", names: ["complaints"], into: "f" });
      expect(values((await some.process([makeRecord({ residentId: "r1" })])).records)).toEqual([{ residentId: "r1", f: { complaints: 2 } }]);
    });
  });
});

describeStack("dedupe step", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);

    it("drops records whose key was seen within the window, but lets a replay of the first through", async () => {
      const dedupe = await step(target, "dedupe", { key: "{eventId}", window_seconds: 60 });
      const first = [makeRecord({ eventId: "e1", n: 1 }), makeRecord({ eventId: "e1", n: 2 }), makeRecord({ eventId: "e2", n: 3 })];
      const out = await dedupe.process(first);
      expect(values(out.records)).toEqual([{ eventId: "e1", n: 1 }, { eventId: "e2", n: 3 }]);
      expect(out.filtered).toBe(1);
      const later = await dedupe.process([makeRecord({ eventId: "e2", n: 4 }), makeRecord({ eventId: "e3", n: 5 })]);
      expect(values(later.records)).toEqual([{ eventId: "e3", n: 5 }]);
      expect(later.filtered).toBe(1);
      const replay = await dedupe.process(first); // the core retried the batch
      expect(values(replay.records)).toEqual([{ eventId: "e1", n: 1 }, { eventId: "e2", n: 3 }]);
    });

    it("forgets a key after window_seconds", async () => {
      const dedupe = await step(target, "dedupe", { key: "{eventId}", window_seconds: 1 });
      await dedupe.process([makeRecord({ eventId: "w1" })]);
      expect((await dedupe.process([makeRecord({ eventId: "w1" })])).filtered).toBe(1);
      await new Promise((r) => setTimeout(r, 1200));
      expect((await dedupe.process([makeRecord({ eventId: "w1" })])).records).toHaveLength(1);
    });
  });
});

describeStack("rate-limit step", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);

    const ts = Date.UTC(2024, 0, 1, 12, 0, 30);
    const burst = (user: string, n: number) => Array.from({ length: n }, (_, i) => makeRecord({ userId: user, i }, { timestamp: ts + i }));

    it("admits `limit` records per key and interval and drops the rest", async () => {
      const limit = await step(target, "rate-limit", { key: "{userId}", limit: 2, interval_seconds: 60 });
      const batch = [...burst("u1", 4), ...burst("u2", 1)];
      const out = await limit.process(batch);
      expect(values(out.records)).toEqual([{ userId: "u1", i: 0 }, { userId: "u1", i: 1 }, { userId: "u2", i: 0 }]);
      expect(out.filtered).toBe(2);
      const replay = await limit.process(batch); // a retried batch gets the same answer
      expect(values(replay.records)).toEqual(values(out.records));
      const nextMinute = await limit.process([makeRecord({ userId: "u1", i: 9 }, { timestamp: ts + 60_000 })]);
      expect(nextMinute.records).toHaveLength(1);
    });

    it("routes records over the limit to the named sink", async () => {
      const limit = await step(target, "rate-limit", { key: "{userId}", limit: 1, interval_seconds: 60, over_limit: { route: "overflow" } });
      const out = await limit.process(burst("u3", 3));
      expect(out.records.map((r) => r.targets)).toEqual([undefined, ["overflow"], ["overflow"]]);
      expect(out.filtered ?? 0).toBe(0);
    });

    it("verify() names a route to a sink the topology does not have", async () => {
      const spec = connector.steps!["rate-limit"]!;
      const config = spec.schema.parse({ key: "{userId}", limit: 1, interval_seconds: 1, over_limit: { route: "nope" } });
      expect(await spec.verify!(config, { baseDir: ".", sinkNames: ["main", "overflow"] })).toEqual([
        { path: ["over_limit", "route"], message: 'expected a sink name of this topology (main, overflow), got "nope"' },
      ]);
    });
  });
});
