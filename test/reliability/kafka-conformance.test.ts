/**
 * The Kafka connector's conformance suite, reliability part: a sink outage (partitions paused
 * and resumed) through each client (KAFKA_CLIENT=kafkajs|platformatic). Worker processes
 * killed and restarted mid-stream: worker-restart.test.ts, through each client too.
 */
import { afterAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { startFleet, writeTopologies } from "../support/fleet.ts";
import { KAFKA_CLIENTS, produceNumbered } from "../support/kafka.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

describeStack("Kafka connector conformance: outages", () => {
  describe.each(KAFKA_CLIENTS)("KAFKA_CLIENT=%s", (client) => {
    const scope = new TestScope(`rconf-${client.slice(0, 4)}`);
    afterAll(() => scope.cleanup());
    const env = { KAFKA_CLIENT: client };

    it("a sink outage pauses the partitions it holds up; once the sink is back every record lands and they resume", { timeout: 120_000 }, async () => {
      const redis = await PrivateRedis.start();
      const client2 = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        const input = scope.topic("outage-in");
        await scope.createTopics([input]);
        const name = `${scope.id}-outage`;
        const fleet = await startFleet(
          writeTopologies([
            {
              name,
              source: { topics: [input] },
              codec: { value: { type: "json" } },
              sinks: [{ type: "redis.cache", key_prefix: scope.keyPrefix, key: "entity:{id}" }],
              errors: { backoff_ms: 50, max_backoff_ms: 300, dlq: { topic: scope.topic("outage-dlq") } },
            },
          ]),
          { ...process.env, ...env, REDIS_URL: redis.url },
        );
        const paused = async () => (await fleet.metrics.paused.get()).values.filter((v) => v.labels.topology === name).reduce((a, v) => a + v.value, 0);
        try {
          await produceNumbered(scope, input, 300);
          await client2.connect();
          await waitUntil(async () => (await client2.dbsize()) >= 300, 30_000, "the first 300 records in Redis");
          client2.disconnect();
          await redis.kill();
          // Written while Redis is down: the sink fails, the partitions holding them pause and retry.
          await produceNumbered(scope, input, 600, 300);
          await waitUntil(async () => (await paused()) > 0, 30_000, "a paused partition while Redis is down");
          await redis.start();
          // The restarted Redis is empty (no persistence): what it holds now came after the outage.
          await client2.connect();
          await waitUntil(async () => (await client2.dbsize()) >= 600, 60_000, "the 600 records written during the outage");
          const missing: string[] = [];
          for (let i = 300; i < 900; i++) if (!(await client2.exists(`${scope.keyPrefix}entity:r${i}`))) missing.push(`r${i}`);
          expect(missing).toEqual([]);
          await waitUntil(async () => (await paused()) === 0, 30_000, "every partition resumed");
        } finally {
          await fleet.stop(5000);
        }
      } finally {
        client2.disconnect();
        await redis.kill();
      }
    });
  });
});
