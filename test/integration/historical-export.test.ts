/**
 * Point-in-time retrieval through its three doors — the TS client, the feature server's
 * POST /v1/historical/{view} and `streamfleet features export` — on real Redis and
 * PostgreSQL: hand-checked values per feature kind, rows in the order asked with their
 * labels, nothing after a row's time, null (windows 0) before any data, and clear errors.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { historicalValues } from "../../lib/features/historical.ts";
import type { LoggedViewDef } from "../../lib/features/historical.ts";
import { startFeatureServer } from "../../lib/features/server.ts";
import type { FeatureServer } from "../../lib/features/server.ts";
import { featuresCommand } from "../../lib/cli/features-command.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";

const scope = new TestScope("histexp");
const H = 3_600_000;
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const TOKEN = "historical-test-token";
let redis: Redis;
let pool: pg.Pool;
let sink: Sink;
let client: FeatureClient;
let server: FeatureServer;
let dir: string;

const features = [
  { name: "orders", kind: "counter" },
  { name: "spent", kind: "counter", by: "{amount}" },
  { name: "last_item", kind: "latest", field: "item" },
  { name: "max_amount", kind: "max", field: "amount" },
  { name: "min_amount", kind: "min", field: "amount" },
  { name: "recent_items", kind: "last_n", field: "item", n: 2 },
  { name: "orders_1h", kind: "window_count", window: "1h" },
  { name: "amount_1h", kind: "window_sum", field: "amount", window: "1h" },
];

const events = [
  // u1: written out of event-time order (offsets 0..3)
  { user: "u1", item: "b", amount: 5, at: T0 + 30 * 60_000 },
  { user: "u1", item: "a", amount: 10, at: T0 },
  { user: "u1", item: "c", amount: 2, at: T0 + 90 * 60_000 },
  { user: "u2", item: "z", amount: 7, at: T0 + 10 * 60_000 },
];

beforeAll(async () => {
  redis = new Redis(stack().REDIS_URL);
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 2 });
  const schema = scope.pgSchema;
  const views = [
    { name: `${scope.id}_orders`, entity: "user", key: "{user}", event_time: "at", features, offline: { schema } },
    { name: `${scope.id}_online`, entity: "user", key: "{user}", event_time: "at", features: [{ name: "n", kind: "counter" }] },
  ];
  const config = featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views });
  sink = featuresSink.create(config, makeContext({ connections: new Connections({ REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL }) })) as Sink;
  await sink.open!();
  const b = sink.batch!();
  b.add(events.map((v, i) => makeRecord(v, { topic: "histexp", offset: String(i) })));
  expect(await b.flush()).toBeUndefined();
  client = new FeatureClient({ redis, keyPrefix: scope.keyPrefix, offline: pool });
  server = await startFeatureServer({ redis, token: TOKEN, port: 0, host: "127.0.0.1", keyPrefix: scope.keyPrefix, offline: pool });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-histexp-"));
});
afterAll(async () => {
  await sink?.close();
  await server?.close();
  redis.disconnect();
  await pool.end();
  fs.rmSync(dir, { recursive: true, force: true });
  await scope.cleanup();
});

const view = () => `${scope.id}_orders`;
/** Asked rows: before any data, at each event (inclusive), between, in the next window, another entity, unknown entity. */
const asks = () => [
  { entity: "u1", t: T0 - 1, label: 0 },
  { entity: "u1", t: T0 + 30 * 60_000, label: 1 },
  { entity: "u2", t: T0 + 2 * H, label: 0 },
  { entity: "u1", t: T0 + 29 * 60_000, label: 1 },
  { entity: "u1", t: T0 + 90 * 60_000, label: 0 },
  { entity: "nobody", t: T0 + 2 * H, label: 1 },
];
const expected = [
  { orders: null, spent: null, last_item: null, max_amount: null, min_amount: null, recent_items: null, orders_1h: 0, amount_1h: 0 },
  { orders: 2, spent: 15, last_item: "b", max_amount: 10, min_amount: 5, recent_items: ["b", "a"], orders_1h: 2, amount_1h: 15 },
  { orders: 1, spent: 7, last_item: "z", max_amount: 7, min_amount: 7, recent_items: ["z"], orders_1h: 0, amount_1h: 0 },
  { orders: 1, spent: 10, last_item: "a", max_amount: 10, min_amount: 10, recent_items: ["a"], orders_1h: 1, amount_1h: 10 },
  { orders: 3, spent: 17, last_item: "c", max_amount: 10, min_amount: 2, recent_items: ["c", "b"], orders_1h: 1, amount_1h: 2 },
  { orders: null, spent: null, last_item: null, max_amount: null, min_amount: null, recent_items: null, orders_1h: 0, amount_1h: 0 },
];

describeStack("point-in-time retrieval: client, feature server, CLI", () => {
  it("the TS client answers every kind as of each row's time, rows in order with their labels", async () => {
    const got = await client.historical(view(), asks());
    expect(got).toEqual(asks().map((a, i) => ({ ...a, features: expected[i] })));
    // the online store, read as of after the last event, agrees with the log as of then
    const [online] = await client.getFeatures(view(), ["u1"], undefined, { asOf: T0 + 90 * 60_000 });
    expect(Object.fromEntries(Object.entries(online!.features).map(([k, v]) => [k, v.value]))).toEqual(expected[4]);
    // in chunks of one or two rows, several queries in flight: the same answers, in the order asked
    const view_ = (await client.known(view())) as LoggedViewDef;
    for (const [chunk, parallel] of [[1, 4], [2, 3], [4, 1]] as const) {
      expect(await historicalValues(pool, view_, asks(), { chunk, parallel }), `chunk ${chunk}, parallel ${parallel}`).toEqual(expected.map((e) => Object.values(e)));
    }
  });

  it("replaying the batch adds nothing to the log", async () => {
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${scope.pgSchema}".feature_log WHERE view = $1`, [view()]);
    const b = sink.batch!();
    b.add(events.map((v, i) => makeRecord(v, { topic: "histexp", offset: String(i) })));
    await b.flush();
    const again = await pool.query(`SELECT count(*)::int AS n FROM "${scope.pgSchema}".feature_log WHERE view = $1`, [view()]);
    expect(rows[0].n).toBe(4);
    expect(again.rows[0].n).toBe(4);
    expect(await client.historical(view(), asks())).toEqual(asks().map((a, i) => ({ ...a, features: expected[i] })));
  });

  it("POST /v1/historical/{view} streams one NDJSON line per row, in order", async () => {
    const rows = asks().map((a) => ({ entity: a.entity, timestamp: a.t % 2 ? a.t : new Date(a.t).toISOString(), label: a.label }));
    const res = await fetch(`${server.url}/v1/historical/${view()}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ rows, names: ["orders", "recent_items", "orders_1h"] }) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual(rows.map((r, i) => ({ ...r, features: { orders: expected[i]!.orders, recent_items: expected[i]!.recent_items, orders_1h: expected[i]!.orders_1h } })));
  });

  it("the server refuses bad requests with the reason", async () => {
    const post = (v: string, body: unknown, token = TOKEN) => fetch(`${server.url}/v1/historical/${v}`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    expect((await post(view(), { rows: [{ entity: "u1", timestamp: 1 }] }, "wrong")).status).toBe(401);
    expect((await post("no_such_view", { rows: [{ entity: "u1", timestamp: 1 }] })).status).toBe(404);
    const noLog = await post(`${scope.id}_online`, { rows: [{ entity: "u1", timestamp: 1 }] });
    expect(noLog.status).toBe(400);
    expect(await noLog.text()).toMatch(/has no offline log/);
    const badTime = await post(view(), { rows: [{ entity: "u1", timestamp: "yesterday" }] });
    expect(badTime.status).toBe(400);
    expect(await badTime.text()).toMatch(/row 1: expected a timestamp/);
    expect((await post(view(), { rows: [] })).status).toBe(400);
  });

  it("`streamfleet features export` writes the rows' columns then the features, CSV-quoted", async () => {
    const rowsFile = path.join(dir, "rows.csv");
    const outFile = path.join(dir, "training.csv");
    fs.writeFileSync(rowsFile, `user,at,label,note\n${asks().map((a, i) => `${a.entity},${i % 2 ? new Date(a.t).toISOString() : a.t},${a.label},"x, ""${i}"""`).join("\n")}\n`);
    const env = { REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL };
    const args = ["export", "--view", view(), "--rows", rowsFile, "--out", outFile, "--entity-column", "user", "--time-column", "at", "--key-prefix", scope.keyPrefix, "--names", "orders,last_item,recent_items,amount_1h"];
    expect(await featuresCommand(args, env)).toBe(0);
    const lines = fs.readFileSync(outFile, "utf8").trim().split("\n");
    expect(lines[0]).toBe("user,at,label,note,orders,last_item,recent_items,amount_1h");
    expect(lines[1]).toBe(`u1,${T0 - 1},0,"x, ""0""",,,,0`);
    expect(lines[2]).toBe(`u1,${new Date(T0 + 30 * 60_000).toISOString()},1,"x, ""1""",2,b,"[""b"",""a""]",15`);
    expect(lines[5]).toBe(`u1,${T0 + 90 * 60_000},0,"x, ""4""",3,c,"[""c"",""b""]",2`);
    expect(lines).toHaveLength(7);
    fs.writeFileSync(rowsFile, "user,at\nu1,not-a-time\n");
    await expect(featuresCommand(args.slice(0, 11), env)).rejects.toThrow(/line 2: expected a timestamp/);
  });

  it("a large flush goes to the log in one transaction, each row once; replayed, nothing more", async () => {
    const count = async () => (await pool.query(`SELECT count(*)::int AS n FROM "${scope.pgSchema}".feature_log WHERE view = $1 AND entity = 'bulk'`, [view()])).rows[0].n as number;
    const bulk = Array.from({ length: 5001 }, (_, i) => makeRecord({ user: "bulk", item: `i${i}`, amount: 1, at: T0 + i }, { topic: "histexp-bulk", offset: String(i) }));
    for (let round = 0; round < 2; round++) {
      const b = sink.batch!();
      b.add(bulk);
      expect(await b.flush()).toBeUndefined();
      expect(await count()).toBe(5001);
    }
    const [row] = await client.historical(view(), [{ entity: "bulk", t: T0 + 5000 }], ["orders", "last_item", "recent_items"]);
    expect(row!.features).toEqual({ orders: 5001, last_item: "i5000", recent_items: ["i5000", "i4999"] });
  });
});
