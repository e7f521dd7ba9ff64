import { afterAll, describe, expect, it } from "vitest";
import { FeatureClient } from "../../lib/features/client.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { startFleet, writeTopologies } from "../support/fleet.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { REDIS_MODES, useRedis } from "../support/redis-modes.ts";

const scope = new TestScope("redistopo");
afterAll(async () => {
  await scope.cleanup();
});

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describeStack("a topology with Redis steps and sinks, through Kafka", () => {
  // the worker's connection: REDIS_URL, or REDIS_CLUSTER_NODES of a cluster the file starts
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);
    let fleet: Fleet | undefined;
    afterAll(async () => {
      await fleet?.stop(5000);
    });

    it("dedupes, keeps features and caches the entity, deleting it on a delete event", async () => {
      const topic = scope.topic(`complaints_${mode}`);
      await scope.createTopics([topic], 1);
      const view = `complaints_${scope.id}_${mode}`;
      const redis = target.redis;
      fleet = await startFleet(
        writeTopologies([
          {
            name: `${scope.id}-complaints-${mode}`,
            source: { topics: [topic] },
            codec: { value: { type: "json" } },
            steps: [{ dedupe: { key: "{eventId}", window_seconds: 600, key_prefix: scope.keyPrefix } }],
            sinks: [
              {
                type: "redis.features",
                key_prefix: scope.keyPrefix,
                views: [{ name: view, entity: "resident", key: "{residentId}", event_time: "at", features: [{ name: "open", kind: "counter", by: "{delta}" }, { name: "last_type", kind: "latest", field: "type" }] }],
              },
              { type: "redis.cache", key_prefix: scope.keyPrefix, key: "complaint:{id}", ttl_seconds: 600, delete_when: { field: "type", eq: "complaint.deleted" } },
            ],
            errors: { dlq: { topic: scope.topic(`dlq_${mode}`) } },
          },
        ]),
        target.processEnv(),
      );
      const producer = scope.producer();
      await producer.connect();
      const ev = (eventId: string, id: string, type: string, delta: number, at: number) => ({ key: id, value: JSON.stringify({ eventId, id, residentId: "r1", type, delta, at }) });
      await producer.send({
        topic,
        messages: [
          ev("e1", "c1", "complaint.created", 1, 1000),
          ev("e2", "c2", "complaint.created", 1, 2000),
          ev("e2", "c2", "complaint.created", 1, 2000), // the producer retried: same event id
          ev("e3", "c1", "complaint.closed", -1, 3000),
          ev("e4", "c2", "complaint.deleted", -1, 4000),
        ],
      });
      await producer.disconnect();

      const features = new FeatureClient({ redis, keyPrefix: scope.keyPrefix });
      const r1 = await until(
        async () => ((await features.view(view)) ? (await features.getFeatures(view, ["r1"]))[0] : undefined),
        (r) => r?.features.last_type?.value === "complaint.deleted",
      );
      expect(r1?.features.open).toMatchObject({ value: 0, event_time: 4000 });
      // the cache is another sink of the same batch: written concurrently with the features, not before them
      const cached = await until(
        () => redis.get(`${scope.keyPrefix}complaint:c1`),
        (v) => v !== null && (JSON.parse(v) as { type?: string }).type === "complaint.closed",
      );
      expect(JSON.parse(cached!)).toMatchObject({ type: "complaint.closed" });
      expect(await until(() => redis.exists(`${scope.keyPrefix}complaint:c2`), (n) => n === 0)).toBe(0);
      // outcomes are counted once the batch is committed, a moment after its sinks wrote
      const filtered = await until(
        async () => (await fleet!.metrics.processed.get()).values.filter((v) => v.labels.outcome === "filtered" && v.labels.topology === `${scope.id}-complaints-${mode}`).reduce((a, v) => a + v.value, 0),
        (n) => n >= 1,
        10_000,
      );
      expect(filtered).toBe(1);
    });
  });
});
