import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bucketStart, keys } from "../../lib/features/layout.ts";
import type { ViewDef } from "../../lib/features/layout.ts";
import { startFeatureServer } from "../../lib/features/server.ts";
import type { FeatureServer, FeatureServerOptions } from "../../lib/features/server.ts";
import { PrivateRedis } from "../support/private-redis.ts";

// A redis-server of this test's own: its command statistics count only our commands, and the
// ACL user without scripts is not left on the shared one.
const TOKEN = "batch-token";
const WINDOW = 86_400_000; // a day: no window rolls over between two reads of one test
const view: ViewDef = {
  name: "batch_view",
  entity: "user",
  features: [
    { name: "orders", kind: "counter" },
    { name: "item", kind: "latest" },
    { name: "clicks", kind: "window_count", window_ms: WINDOW },
  ],
};
const ITEMS = ['"tea"', '"say \\"hi\\""', '{"a": [1, 2]}', "bare text", "12.50"];
const ids = [...Array.from({ length: 99 }, (_, i) => `u${i}`), "nobody"];
const t0 = Date.now() - 5_000;
let privateRedis: PrivateRedis;
let admin: Redis;
const clients: Redis[] = [];
const servers: FeatureServer[] = [];

async function serve(options: Partial<FeatureServerOptions>, url = privateRedis.url): Promise<FeatureServer> {
  const redis = new Redis(url, { enableAutoPipelining: true });
  clients.push(redis);
  const server = await startFeatureServer({ redis, token: TOKEN, port: 0, host: "127.0.0.1", views: [view], ...options });
  servers.push(server);
  return server;
}

interface Entity {
  id: string;
  found: boolean;
  features: Record<string, { value: unknown; event_time: number | null; staleness_ms: number | null; window_start?: number }>;
}
async function batch(server: FeatureServer): Promise<Entity[]> {
  const res = await fetch(`${server.url}/v1/features/${view.name}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ ids }) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { view: string; entities: Entity[] };
  expect(body.view).toBe(view.name);
  return body.entities;
}
/** Staleness depends on the moment of the read; everything else must be the same whichever way Redis was read. */
const timeless = (entities: Entity[]) => entities.map((e) => ({ ...e, features: Object.fromEntries(Object.entries(e.features).map(([k, { staleness_ms: _, ...f }]) => [k, f])) }));

async function calls(command: string): Promise<number> {
  const m = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await admin.info("commandstats"));
  return Number(m?.[1] ?? 0);
}

beforeAll(async () => {
  privateRedis = await PrivateRedis.start();
  admin = new Redis(privateRedis.url);
  const p = admin.pipeline();
  const bucket = bucketStart(Date.now(), WINDOW);
  for (let i = 0; i < 99; i++) {
    p.hset(keys.entity("", view.name, `u${i}`), { orders: String(i), "orders@t": String(t0 + i), item: ITEMS[i % ITEMS.length]!, "item@t": String(t0), [`clicks|${bucket}`]: String(i % 7), "clicks@t": String(t0) });
  }
  // a user that may read every key but run no script: the server falls back to a pipeline of HMGETs
  p.call("ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting");
  await p.exec();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const c of clients) c.disconnect();
  admin?.disconnect();
  await privateRedis?.kill();
});

describe("feature server batches (a private redis-server)", () => {
  it("reads a 100-entity batch with one script call, the same answer as a pipeline of HMGETs", async () => {
    const script = await serve({});
    const pipeline = await serve({ batchRead: "pipeline" });
    await batch(script); // Redis caches the script (EVAL after a NOSCRIPT) on the first batch
    await admin.config("RESETSTAT");
    const viaScript = await batch(script);
    expect(await calls("evalsha")).toBe(1);
    expect(await calls("eval")).toBe(0);
    await admin.config("RESETSTAT");
    const viaPipeline = await batch(pipeline);
    expect(await calls("evalsha")).toBe(0);
    expect(await calls("hmget")).toBe(100);

    expect(timeless(viaScript)).toEqual(timeless(viaPipeline));
    expect(viaScript.map((e) => e.id)).toEqual(ids);
    const u7 = viaScript[7]!;
    expect(u7.found).toBe(true);
    expect(u7.features.orders).toEqual({ value: 7, event_time: t0 + 7, staleness_ms: expect.any(Number) });
    expect(u7.features.orders!.staleness_ms).toBeGreaterThanOrEqual(5_000 - 7);
    expect(u7.features.item!.value).toEqual({ a: [1, 2] });
    expect(viaScript[1]!.features.item!.value).toBe('say "hi"');
    expect(viaScript[3]!.features.item!.value).toBe("bare text");
    expect(viaScript[4]!.features.item!.value).toBe(12.5);
    expect(u7.features.clicks).toMatchObject({ value: 0, window_start: bucketStart(Date.now(), WINDOW) });
    expect(viaScript[13]!.features.clicks!.value).toBe(6);
    expect(viaScript[99]).toEqual({ id: "nobody", found: false, features: { orders: { value: null, event_time: null, staleness_ms: null }, item: { value: null, event_time: null, staleness_ms: null }, clicks: { value: 0, event_time: null, staleness_ms: null, window_start: expect.any(Number) } } });
  });

  it("answers a batch through a Redis user that may not run scripts (falls back to the pipeline)", async () => {
    const restricted = await serve({}, `redis://noscripts:pw@127.0.0.1:${privateRedis.port}`);
    const reference = await serve({ batchRead: "pipeline" });
    const first = await batch(restricted);
    const second = await batch(restricted);
    expect(timeless(first)).toEqual(timeless(await batch(reference)));
    expect(timeless(second)).toEqual(timeless(first));
    expect(first[42]!.features.orders!.value).toBe(42);
  });
});
