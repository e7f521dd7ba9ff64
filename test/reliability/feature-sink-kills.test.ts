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

async function totalCount(view = VIEW): Promise<number> {
  const p = redis.pipeline();
  for (let u = 0; u < USERS; u++) p.hget(`${scope.keyPrefix}sf:v1:fv:${view}:u${u}`, "count");
  const res = (await p.exec()) ?? [];
  return res.reduce((a, [, v]) => a + Number(v ?? 0), 0);
}

function topologyDir(input: string, name: string, view = VIEW): string {
  return writeTopologies([
      {
        name,
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
                name: view,
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
        errors: { dlq: { topic: scope.topic(`${name}-dlq`) } },
      },
    ]);
}

/** Produces the N events in chunks, slowly, so workers die and stall while records keep arriving. */
async function produceSlowly(input: string): Promise<void> {
  const producer = scope.producer();
  await producer.connect();
  for (let start = 0; start < N; start += 300) {
    const messages = Array.from({ length: Math.min(300, N - start) }, (_, j) => {
      const e = event(start + j);
      return { key: e.user, value: JSON.stringify(e) };
    });
    await producer.send({ topic: input, messages });
    await new Promise((r) => setTimeout(r, 150));
  }
  await producer.disconnect();
}

/** Every user's count, sum, max, latest and windows in Redis equal the producer's, exactly. */
async function expectExact(view: string): Promise<void> {
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
    const h = await redis.hgetall(`${scope.keyPrefix}sf:v1:fv:${view}:${user}`);
    expect({ user, count: Number(h.count), sum: Number(h.sum ?? 0), max: Number(h.max_score), latest: JSON.parse(h.last_cat!) as string, latestAt: Number(h["last_cat@t"]) }).toEqual({
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
}

describeStack("redis.features under SIGKILL and a stalled worker", () => {
  it("a worker killed three times mid-run leaves every counter, sum, max and latest exact", async () => {
    const input = scope.topic("in");
    await scope.createTopics([input], 3);
    const dir = topologyDir(input, `${scope.id}-features`);

    // Records keep arriving while workers die, so a replayed batch ends elsewhere than the
    // first try: replays overlap earlier writes whole and in part.
    const producing = produceSlowly(input);

    for (const share of [0.15, 0.4, 0.65]) {
      const worker = spawnWorker(dir);
      await waitUntil(async () => (await totalCount()) >= N * share, 120_000, `${share * 100} % of the counts written`);
      worker.child.kill("SIGKILL");
      await worker.exited;
    }
    expect(await totalCount()).toBeLessThan(N);
    await producing;
    const last = spawnWorker(dir);
    try {
      await waitUntil(async () => (await totalCount()) >= N, 180_000, `all ${N} records counted`);
      await new Promise((r) => setTimeout(r, 2000)); // a double count would show up by now
    } finally {
      last.child.kill("SIGTERM");
      await last.exited;
    }

    await expectExact(VIEW);
  }, 420_000);

  it("a worker stopped (SIGSTOP) past its session timeout while another takes over, then resumed, double-counts nothing", async () => {
    const input = scope.topic("zin");
    await scope.createTopics([input], 3);
    const view = `${VIEW}_z`;
    const dir = topologyDir(input, `${scope.id}-zombie`, view);
    const producing = produceSlowly(input);
    const a = spawnWorker(dir);
    const b = spawnWorker(dir);
    try {
      await waitUntil(async () => (await totalCount(view)) >= N * 0.2, 120_000, "20 % of the counts written");
      // A stalls with whatever it has taken and not committed; past the 8 s session timeout
      // B owns every partition and reads A's uncommitted records again.
      a.child.kill("SIGSTOP");
      await new Promise((r) => setTimeout(r, 12_000));
      a.child.kill("SIGCONT"); // A wakes up: it may still write what it held, then rejoins
      await producing;
      await waitUntil(async () => (await totalCount(view)) >= N, 180_000, `all ${N} records counted`);
      await new Promise((r) => setTimeout(r, 3000)); // a double count would show up by now
    } finally {
      for (const w of [a, b]) {
        w.child.kill("SIGCONT");
        w.child.kill("SIGTERM");
        await w.exited;
      }
    }
    await expectExact(view);
  }, 420_000);
});
