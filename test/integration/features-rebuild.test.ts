import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FeatureClient } from "../../lib/features/client.ts";
import { keys } from "../../lib/features/layout.ts";
import { dropVersion, rebuildView } from "../../lib/features/rebuild.ts";
import { readVersions, resolveStore } from "../../lib/features/versions.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { avroEncoder, startFleet, writeTopologies } from "../support/fleet.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const scope = new TestScope("rebuild");
/** The Python client's part runs where Debian's python3 has redis, psycopg2 and pandas (python-client.test.ts gates the same way). */
const PYTHON_OK = fs.existsSync("/usr/bin/python3") && spawnSync("/usr/bin/python3", ["-c", "import redis, psycopg2, pandas"]).status === 0;
let fleet: Fleet | undefined;
let redis: Redis;
let pool: pg.Pool;
beforeAll(() => {
  redis = new Redis(stack().REDIS_URL);
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 2 });
});
afterAll(async () => {
  await fleet?.stop(5000);
  redis.disconnect();
  await pool.end();
  const admin = scope.kafka().admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [`${scope.id}-feat.rebuild.dlq`] }).catch(() => undefined);
  await admin.disconnect();
  await scope.cleanup();
});

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Ev {
  user_id: string;
  amount: number;
  score: number;
  category: string;
  event_time: number;
}
const T0 = 1_700_000_000_000;
const ev = (i: number): Ev => ({ user_id: `u${i % 4}`, amount: i + 0.5, score: i % 7, category: `c${i % 3}`, event_time: T0 + i * 1000 });
const users = ["u0", "u1", "u2", "u3"];
const sum = (evs: Ev[], u: string, f: (e: Ev) => number) => evs.filter((e) => e.user_id === u).reduce((a, e) => a + f(e), 0);

describeStack(`features rebuild: a changed view computed from history, then readers switched${PYTHON_OK ? "" : " (the Python client's check skipped: /usr/bin/python3 lacks redis, psycopg2 or pandas)"}`, () => {
  it("readers see the old version until the switch, then the new definition's values over all history; the topology takes over", async () => {
    const topic = scope.topic("events");
    await scope.createTopics([topic], 2);
    const view = `spend_${scope.id}`;
    const pgSchema = scope.pgSchema;
    const topology = (features: unknown[]) => ({
      name: `${scope.id}-feat`,
      source: { topics: [topic], commit_interval_ms: 200 },
      codec: { value: { type: "avro", schema: "./schemas/user-event.avsc" } },
      sinks: [{ type: "redis.features", key_prefix: scope.keyPrefix, views: [{ name: view, entity: "user", key: "{user_id}", event_time: "event_time", offline: { schema: pgSchema }, features }] }],
      errors: { dlq: { topic: scope.topic("dlq") } },
    });
    const oldDir = writeTopologies([topology([{ name: "total", kind: "counter", by: "{amount}" }, { name: "last_cat", kind: "latest", field: "category" }])]);
    const newDir = writeTopologies([topology([{ name: "total", kind: "counter", by: "{score}" }, { name: "max_score", kind: "max", field: "score" }])]);
    const newFile = path.join(newDir, fs.readdirSync(newDir)[0]!);

    fleet = await startFleet(oldDir);
    const encode = await avroEncoder(topic, "./schemas/user-event.avsc");
    const producer = scope.producer();
    await producer.connect();
    const sent: Ev[] = [];
    const send = async (from: number, to: number) => {
      const evs = Array.from({ length: to - from }, (_, k) => ev(from + k));
      await producer.send({ topic, messages: evs.map((e) => ({ key: e.user_id, value: encode(e) })) });
      sent.push(...evs);
    };
    await send(0, 60);

    const reader = new FeatureClient({ redis, keyPrefix: scope.keyPrefix, viewsRefreshMs: 0, offline: pool });
    const totals = async () => (await reader.view(view)) ? (await reader.getFeatures(view, users, ["total"])).map((r) => r.features.total!.value) : [];
    const oldTotals = () => users.map((u) => sum(sent, u, (e) => e.amount));
    const newTotals = () => users.map((u) => sum(sent, u, (e) => e.score));
    expect(await until(totals, (t) => JSON.stringify(t) === JSON.stringify(oldTotals()))).toEqual(oldTotals());

    const lines: string[] = [];
    let sawBefore: unknown[] = [];
    const rebuilt = rebuildView({
      file: newFile,
      view,
      from: Date.now() - 10 * 60_000,
      env: process.env,
      logger: createLogger({ level: "silent" }),
      pollMs: 200,
      report: (l) => lines.push(l),
      beforeSwitch: async () => {
        // caught up, not switched: readers still read version 1 with the old definition
        sawBefore = await totals();
        expect((await reader.view(view))!.version).toBeUndefined();
        const v2 = await redis.hget(keys.entity(scope.keyPrefix, `${view}@v2`, "u1"), "total");
        expect(Number(v2)).toBe(sum(sent, "u1", (e) => e.score));
        // records arriving now: the old topology puts them in version 1, the rebuild in version 2
        await send(60, 80);
        await until(totals, (t) => JSON.stringify(t) === JSON.stringify(oldTotals()));
      },
    });
    rebuilt.catch(() => undefined);
    await until(async () => lines.some((l) => l.includes("readers switched")), (ok) => ok, 90_000);
    expect(sawBefore).toEqual(users.map((u) => sum(sent.slice(0, 60), u, (e) => e.amount)));

    // switched: version 2, the new definition over all history (the records sent during the rebuild included)
    const entry = (await reader.view(view))!;
    expect(entry).toMatchObject({ version: 2, store: `${view}@v2` });
    expect(entry.features.map((f) => f.name)).toEqual(["total", "max_score"]);
    expect(await until(totals, (t) => JSON.stringify(t) === JSON.stringify(newTotals()))).toEqual(newTotals());
    const maxes = (await reader.getFeatures(view, users, ["max_score"])).map((r) => r.features.max_score!.value);
    expect(maxes).toEqual(users.map((u) => Math.max(...sent.filter((e) => e.user_id === u).map((e) => e.score))));
    // the offline log of version 2 answers the same as the online store, and as of an earlier time
    const hist = await reader.historical(view, users.map((u) => ({ entity: u, t: T0 + 10_000_000 })).concat([{ entity: "u1", t: T0 + 9_000 }]));
    expect(hist.slice(0, 4).map((h) => h.features.total)).toEqual(newTotals());
    expect(hist[4]!.features.total).toBe(sum(sent.filter((e) => e.event_time <= T0 + 9_000), "u1", (e) => e.score));

    // the Python client follows the registry entry too (online and from the log)
    if (PYTHON_OK) {
      const script = `
import json, sys, psycopg2, redis
from streamfleet_features import FeatureClient
c = FeatureClient(redis.Redis.from_url(sys.argv[1], decode_responses=True), key_prefix=sys.argv[2], offline=psycopg2.connect(sys.argv[3]))
online = [e["features"]["total"]["value"] for e in c.get_many(sys.argv[4], ${JSON.stringify(users)})]
frame = c.historical(sys.argv[4], [{"entity": u, "timestamp": ${T0 + 10_000_000}} for u in ${JSON.stringify(users)}], ["total"])
print(json.dumps({"online": online, "historical": [float(x) for x in frame["total"]]}))
`;
      const py = spawnSync("/usr/bin/python3", ["-c", script, stack().REDIS_URL, scope.keyPrefix, stack().DATABASE_URL, view], { encoding: "utf8", env: { ...process.env, PYTHONPATH: path.resolve(import.meta.dirname, "../../clients/python") } });
      expect(py.stderr).toBe("");
      expect(JSON.parse(py.stdout)).toEqual({ online: newTotals(), historical: newTotals() });
    }

    // the old topology (still running) writes version 1 only; restarted, it would not take the entry back
    expect(await resolveStore(redis, scope.keyPrefix, { name: view, entity: "user", features: [{ name: "total", kind: "counter" }, { name: "last_cat", kind: "latest" }], offline: { schema: pgSchema, table: "feature_log" } } as never, undefined)).toBe(view);
    expect((await reader.view(view))!.version).toBe(2);

    // the topology with the new definition takes over: the rebuild ends, new records keep arriving in version 2
    await fleet.stop(10_000);
    fleet = await startFleet(newDir);
    const result = await rebuilt;
    expect(result).toMatchObject({ version: 2, switched: true });
    expect(lines.at(-1)).toContain("the topology writes version 2");
    await send(80, 100);
    expect(await until(totals, (t) => JSON.stringify(t) === JSON.stringify(newTotals()))).toEqual(newTotals());
    expect((await readVersions(redis, scope.keyPrefix, view)).map((v) => [v.version, v.state])).toEqual([
      [1, "retired"],
      [2, "active"],
    ]);

    // the old version's keys go with drop-version; the active one cannot be dropped
    await expect(dropVersion(redis, scope.keyPrefix, view, 2)).rejects.toThrow(/readers read/);
    expect(await dropVersion(redis, scope.keyPrefix, view, 1)).toBe(4);
    expect(await redis.exists(keys.entity(scope.keyPrefix, view, "u1"))).toBe(0);
    expect(await totals()).toEqual(newTotals());
  });
});
