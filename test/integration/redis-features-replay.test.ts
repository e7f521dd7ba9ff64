/**
 * A replay that overlaps an earlier feature write in part, through the runner: a previous
 * worker applied offsets 0..599 of a partition and died before committing; this worker
 * reads 0..999 in one batch, folds it, and the sink answers that the batch overlaps an
 * earlier write in part — the runner takes it again record by record, and every record
 * counts exactly once.
 */
import { afterAll, describe, expect, it } from "vitest";
import { clusterTag } from "../../lib/connectors/kafka/cluster.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { startFleet, writeTopologies } from "../support/fleet.ts";
import { makeContext } from "../support/records.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { REDIS_MODES, useRedis } from "../support/redis-modes.ts";
import { waitUntil } from "../support/worker.ts";

const scope = new TestScope("freplay");
afterAll(async () => {
  await scope.cleanup();
});

const N = 1000;
const USERS = 10;
const view = (name: string) => ({ name, entity: "user", key: "{user}", event_time: "at", features: [{ name: "count", kind: "counter" }, { name: "sum", kind: "counter", by: "{amount}" }, { name: "last", kind: "latest", field: "n" }] });
const value = (i: number) => ({ user: `u${i % USERS}`, amount: i % 5, n: i, at: 1_700_000_000_000 + i });

describeStack("redis.features: a replay overlapping an earlier write in part, through the runner", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const target = useRedis(mode);
    let fleet: Fleet | undefined;
    afterAll(async () => {
      await fleet?.stop(5000);
    });

    it("takes the batch again record by record and counts every record once", async () => {
      const topic = scope.topic(`in_${mode}`);
      await scope.createTopics([topic], 1);
      const producer = scope.producer();
      await producer.connect();
      await producer.send({ topic, messages: Array.from({ length: N }, (_, i) => ({ key: `k${i}`, value: JSON.stringify(value(i)) })) });
      await producer.disconnect();
      const name = `replay_${scope.id}_${mode}`;

      // The worker that died: it applied offsets 0..599 with the same record origins.
      const cluster = await clusterTag(scope.kafka());
      const earlier = featuresSink.create(featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [view(name)] }), makeContext({ connections: target.connections() })) as Sink;
      await earlier.open!();
      const records: StreamRecord[] = Array.from({ length: 600 }, (_, i) => ({
        key: `k${i}`,
        value: value(i),
        headers: {},
        id: `${topic}/0/${i}@${cluster}`,
        origin: { cluster, topic, partition: 0, offset: String(i), timestamp: 0, rawKey: null, rawValue: null, rawHeaders: {} },
      }));
      expect(await earlier.write(records)).toBeUndefined();
      await earlier.close();

      fleet = await startFleet(
        writeTopologies([
          {
            name: `${scope.id}-replay-${mode}`,
            source: { topics: [topic] },
            codec: { value: { type: "json" } },
            sinks: [{ type: "redis.features", key_prefix: scope.keyPrefix, views: [view(name)] }],
            errors: { dlq: { topic: scope.topic(`dlq_${mode}`) } },
          },
        ]),
        target.processEnv(),
      );
      const hash = (u: number) => target.redis.hgetall(target.entityKey(scope.keyPrefix, name, `u${u}`));
      const total = async () => {
        let n = 0;
        for (let u = 0; u < USERS; u++) n += Number((await hash(u)).count ?? 0);
        return n;
      };
      await waitUntil(async () => (await total()) >= N, 30_000, `all ${N} records counted`);
      await new Promise((r) => setTimeout(r, 1000));
      for (let u = 0; u < USERS; u++) {
        const mine = Array.from({ length: N }, (_, i) => value(i)).filter((v) => v.user === `u${u}`);
        const h = await hash(u);
        expect({ count: Number(h.count), sum: Number(h.sum ?? 0), last: Number(h.last) }).toEqual({ count: mine.length, sum: mine.reduce((a, v) => a + v.amount, 0), last: mine.at(-1)!.n });
      }
      const results = await fleet.metrics.registry.getSingleMetric("streamfleet_redis_script_results_total")!.get();
      const by = (r: string) => results.values.filter((v) => v.labels.result === r && v.labels.topology === `${scope.id}-replay-${mode}`).reduce((a, v) => a + v.value, 0);
      // the 600 records the earlier worker applied were skipped as duplicates, the 400 after them applied
      expect({ duplicate: by("duplicate"), applied: by("applied") }).toEqual({ duplicate: 600, applied: 400 });
    });
  });
});
