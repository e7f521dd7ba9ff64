import { afterAll, expect, it } from "vitest";
import { startWorker } from "../../lib/cli/run-command.ts";
import { writeTopologies } from "../support/fleet.ts";
import { eventually } from "../support/observability.ts";
import { PrivateRedis } from "../support/private-redis.ts";
import { describeStack, TestScope } from "../support/scope.ts";

interface Readyz {
  status: string;
  joined: boolean;
  down: Array<{ component: string; error?: string }>;
}
interface Health {
  status: string;
  components: Array<{ component: string; status: string; lastError?: string }>;
}

const scope = new TestScope("readyz");
let redis: PrivateRedis | undefined;
let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
afterAll(async () => {
  await redis?.kill();
  await worker?.stop();
  await scope.cleanup();
});

async function get<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

describeStack("/readyz follows a dependency's outage", () => {
  it("turns 503 naming redis while it is down, and 200 again once it is back", { timeout: 120_000 }, async () => {
    redis = await PrivateRedis.start();
    const [input, output] = [scope.topic("in"), scope.topic("out")];
    await scope.createTopics([input, output], 1);
    const dir = writeTopologies([
      {
        name: `${scope.id}-ready`,
        source: { topics: [input] },
        codec: { value: { type: "json" } },
        sinks: [{ type: "kafka", topic: output, value: { type: "json" } }],
        errors: { dlq: { topic: scope.topic("dlq") } },
      },
    ]);
    const env = { ...process.env, REDIS_URL: redis.url, LOG_LEVEL: process.env.LOG_LEVEL ?? "silent" };
    worker = await startWorker({ inputs: [dir], env, adminPort: 0, live: false, shutdownMs: 5000 });
    const admin = worker.adminUrl;

    const ready = await eventually("/readyz 200 after start", async () => {
      const r = await get<Readyz>(`${admin}/readyz`);
      return r.status === 200 ? r.body : undefined;
    });
    expect(ready).toEqual({ status: "ready", joined: true, down: [] });
    const before = await get<Health>(`${admin}/health`);
    expect(before.body.components.find((c) => c.component === "redis")).toMatchObject({ status: "up" });

    await redis.kill();
    const unready = await eventually("/readyz 503 with redis down", async () => {
      const r = await get<Readyz>(`${admin}/readyz`);
      return r.status === 503 ? r.body : undefined;
    });
    expect(unready.status).toBe("unready");
    // every component on that Redis is down (bullmq shares REDIS_URL); Kafka and the registry are not
    expect(unready.down.map((d) => d.component)).toContain("redis");
    expect(unready.down.map((d) => d.component)).not.toContain("kafka");
    expect(unready.down.map((d) => d.component)).not.toContain("schema-registry");
    const degraded = await get<Health>(`${admin}/health`);
    expect(degraded.status).toBe(503);
    expect(degraded.body.status).toBe("degraded");
    const entry = degraded.body.components.find((c) => c.component === "redis");
    expect(entry?.status).toBe("down");
    expect(entry?.lastError).toContain(`127.0.0.1:${redis.port}`);
    // liveness does not depend on dependencies: the process is alive, only not ready
    expect((await fetch(`${admin}/healthz`)).status).toBe(200);

    await redis.start();
    await eventually("/readyz 200 with redis back", async () => ((await get<Readyz>(`${admin}/readyz`)).status === 200 ? true : undefined));
    const healed = await get<Health>(`${admin}/health`);
    expect(healed.status).toBe(200);
    const back = healed.body.components.find((c) => c.component === "redis");
    expect(back?.status).toBe("up");
    expect(back?.lastError).toBeUndefined();
  });
});
