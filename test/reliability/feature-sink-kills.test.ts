import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { writeTopologies } from "../support/fleet.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";

const scope = new TestScope("fkill");
let redis: Redis;
beforeAll(() => {
  redis = new Redis(stack().REDIS_URL);
});
afterAll(async () => {
  redis.disconnect();
  await scope.cleanup();
});

const USERS = 40;
const N = 9_000;
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const VIEW = `kills_${scope.id}`;

interface Want {
  count: number;
  sum: number;
  max: number;
  latest: string;
  latestAt: number;
}

function event(i: number) {
  // event times run backwards every 7th record: out of order within a user's partition
  const at = T0 + (i % 7 === 0 ? i - 5_000 : i) * 1000;
  return { user: `u${i % USERS}`, amount: (i % 13) - 4, score: (i * 7919) % 1000, cat: `c${i % 11}`, at };
}

async function totalCount(): Promise<number> {
  const p = redis.pipeline();
  for (let u = 0; u < USERS; u++) p.hget(`${scope.keyPrefix}sf:v1:fv:${VIEW}:u${u}`, "count");
  const res = (await p.exec()) ?? [];
  return res.reduce((a, [, v]) => a + Number(v ?? 0), 0);
}

describeStack("redis.features under SIGKILL", () => {
  it("a worker killed three times mid-run leaves every counter, sum, max and latest exact", async () => {
    const input = scope.topic("in");
    await scope.createTopics([input], 3);
    const dir = writeTopologies([
      {
        name: `${scope.id}-features`,
        source: { topics: [input], session_timeout_ms: 8000 },
        codec: { value: { type: "json" } },
        // about a millisecond a record, so the kills land mid-stream (and mid-batch)
        steps: [{ transform: { module: "./transforms.ts", export: "slow" } }],
        sinks: [
          {
            type: "redis.features",
            key_prefix: scope.keyPrefix,
            views: [
              {
                name: VIEW,
                entity: "user",
                key: "{user}",
                event_time: "at",
                features: [
                  { name: "count", kind: "counter" },
                  { name: "sum", kind: "counter", by: "{amount}" },
                  { name: "max_score", kind: "max", field: "score" },
                  { name: "last_cat", kind: "latest", field: "cat" },
                  { name: "per_hour", kind: "window_count", window: "1h", buckets: 100 },
                ],
              },
            ],
          },
        ],
        errors: { dlq: { topic: scope.topic("dlq") } },
      },
    ]);

    // Records keep arriving while workers die, so a replayed batch ends elsewhere than the
    // first try: replays overlap earlier writes whole and in part.
    const producer = scope.producer();
    await producer.connect();
    const producing = (async () => {
      for (let start = 0; start < N; start += 300) {
        const messages = Array.from({ length: Math.min(300, N - start) }, (_, j) => {
          const e = event(start + j);
          return { key: e.user, value: JSON.stringify(e) };
        });
        await producer.send({ topic: input, messages });
        await new Promise((r) => setTimeout(r, 150));
      }
    })();

    for (const share of [0.15, 0.4, 0.65]) {
      const worker = spawnWorker(dir);
      await waitUntil(async () => (await totalCount()) >= N * share, 120_000, `${share * 100} % of the counts written`);
      worker.child.kill("SIGKILL");
      await worker.exited;
    }
    expect(await totalCount()).toBeLessThan(N);
    await producing;
    await producer.disconnect();
    const last = spawnWorker(dir);
    try {
      await waitUntil(async () => (await totalCount()) >= N, 180_000, `all ${N} records counted`);
      await new Promise((r) => setTimeout(r, 2000)); // a double count would show up by now
    } finally {
      last.child.kill("SIGTERM");
      await last.exited;
    }

    const want = new Map<string, Want>();
    for (let i = 0; i < N; i++) {
      const e = event(i);
      const w = want.get(e.user) ?? { count: 0, sum: 0, max: -Infinity, latest: "", latestAt: -Infinity };
      w.count++;
      w.sum += e.amount;
      w.max = Math.max(w.max, e.score);
      if (e.at >= w.latestAt) [w.latest, w.latestAt] = [e.cat, e.at];
      want.set(e.user, w);
    }
    for (const [user, w] of want) {
      const h = await redis.hgetall(`${scope.keyPrefix}sf:v1:fv:${VIEW}:${user}`);
      expect({ user, count: Number(h.count), sum: Number(h.sum), max: Number(h.max_score), latest: JSON.parse(h.last_cat!) as string, latestAt: Number(h["last_cat@t"]) }).toEqual({
        user,
        count: w.count,
        sum: w.sum,
        max: w.max,
        latest: w.latest,
        latestAt: w.latestAt,
      });
      const windows = Object.entries(h).filter(([k]) => k.startsWith("per_hour|"));
      expect(windows.reduce((a, [, v]) => a + Number(v), 0), `${user}: window counts`).toBe(w.count);
    }
  }, 420_000);
});
