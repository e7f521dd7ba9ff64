import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { postgres, postgresSink } from "../../lib/connectors/postgres/index.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { SfError } from "../../lib/errors.ts";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const scope = new TestScope("postgres");
const pgSchema = scope.pgSchema;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-pg-"));
const sinks: Sink[] = [];
let db: pg.Client;

const v1 = {
  type: "record",
  name: "PageView",
  fields: [
    { name: "user_id", type: "string" },
    { name: "views", type: "int" },
    { name: "score", type: ["null", "double"], default: null },
    { name: "at", type: { type: "long", logicalType: "timestamp-millis" } },
    { name: "tags", type: { type: "array", items: "string" } },
  ],
};
const v2 = { ...v1, fields: [...v1.fields, { name: "country", type: ["null", "string"], default: null }] };
fs.writeFileSync(path.join(dir, "v1.avsc"), JSON.stringify(v1));
fs.writeFileSync(path.join(dir, "v2.avsc"), JSON.stringify(v2));

beforeAll(async () => {
  db = new pg.Client({ connectionString: stack().DATABASE_URL });
  await db.connect();
});
afterAll(async () => {
  for (const s of sinks) await s.close();
  await db.end();
  await scope.cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function openSink(config: Record<string, unknown>): Promise<Sink> {
  const sink = await postgresSink.create(postgresSink.schema.parse({ pg_schema: pgSchema, ...config }), makeContext({ baseDir: dir, component: "sinks[0]:postgres" }));
  sinks.push(sink);
  await sink.open?.();
  return sink;
}
const view = (user: string, views: unknown, extra: Record<string, unknown> = {}) => ({ user_id: user, views, score: null, at: Date.UTC(2026, 0, 2, 3, 4, 5), tags: ["a", "b"], ...extra });
const count = async (table: string) => Number((await db.query(`SELECT count(*) FROM "${pgSchema}"."${table}"`)).rows[0].count);

describeStack("postgres sink", () => {
  it("creates the table from the Avro schema and writes a batch with typed columns", async () => {
    const sink = await openSink({ table: "views", schema: "v1.avsc" });
    const records = [makeRecord(view("u1", 3, { score: 0.5 })), makeRecord(view("u2", 7))];
    await sink.write(records);
    const { rows } = await db.query(`SELECT record_id, user_id, views, score, at, tags FROM "${pgSchema}".views ORDER BY user_id`);
    expect(rows).toEqual([
      { record_id: records[0]!.id, user_id: "u1", views: 3, score: 0.5, at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), tags: ["a", "b"] },
      { record_id: records[1]!.id, user_id: "u2", views: 7, score: null, at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5)), tags: ["a", "b"] },
    ]);
    const nn = await db.query(`SELECT column_name, is_nullable FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'views' ORDER BY column_name`, [pgSchema]);
    expect(Object.fromEntries(nn.rows.map((r: { column_name: string; is_nullable: string }) => [r.column_name, r.is_nullable]))).toMatchObject({ user_id: "NO", score: "YES" });
    await postgres.health!(new Connections(process.env), AbortSignal.timeout(5000));
  });

  it("adds no second row when a batch is replayed", async () => {
    const sink = await openSink({ table: "replay", schema: "v1.avsc" });
    const records = Array.from({ length: 100 }, (_, i) => makeRecord(view(`u${i}`, i)));
    await sink.write(records);
    await sink.write(records);
    await sink.write(records.slice(20, 40));
    expect(await count("replay")).toBe(100);
  });

  it("dedupes on an explicit key of columns", async () => {
    const sink = await openSink({ table: "orders", columns: [{ name: "order_id", type: "text", nullable: false }, { name: "total", type: "numeric" }], key: ["order_id"] });
    await sink.write([makeRecord({ order_id: "o1", total: 9.5 }), makeRecord({ order_id: "o2", total: "12.25" })]);
    await sink.write([makeRecord({ order_id: "o1", total: 9.5 })]); // same order, new offset
    const { rows } = await db.query(`SELECT order_id, total FROM "${pgSchema}".orders ORDER BY order_id`);
    expect(rows).toEqual([{ order_id: "o1", total: "9.5" }, { order_id: "o2", total: "12.25" }]);
  });

  it("adds a column when the schema gains an optional field", async () => {
    const first = await openSink({ table: "evolve", schema: "v1.avsc" });
    await first.write([makeRecord(view("old", 1))]);
    const second = await openSink({ table: "evolve", schema: "v2.avsc" });
    await second.write([makeRecord(view("new", 2, { country: "FR" }))]);
    const { rows } = await db.query(`SELECT user_id, country FROM "${pgSchema}".evolve ORDER BY user_id`);
    expect(rows).toEqual([{ user_id: "new", country: "FR" }, { user_id: "old", country: null }]);
  });

  it("returns records that do not fit the table as failed, with the reason, and writes the rest", async () => {
    const sink = await openSink({ table: "misfit", schema: "v1.avsc" });
    const good = [makeRecord(view("g1", 1)), makeRecord(view("g2", 2))];
    const wrongType = makeRecord(view("bad", "many"));
    const missing = makeRecord({ ...view("x", 1), user_id: null });
    const result = await sink.write([good[0]!, wrongType, missing, good[1]!]);
    expect(result?.failed?.map((f) => f.record)).toEqual([wrongType, missing]);
    const [e1, e2] = result!.failed!.map((f) => f.error as SfError);
    expect(e1!.code).toBe("SF_ERR_SINK_RECORD_INVALID");
    expect(e1!.retriable).toBe(false);
    expect(e1!.message).toMatch(/column views \(integer\): expected a 32-bit integer, got "many"/);
    expect(e2!.message).toMatch(/column user_id is NOT NULL/);
    expect(await count("misfit")).toBe(2);
  });

  it("isolates a row the database itself refuses (a CHECK constraint) with per-row inserts", async () => {
    await db.query(`CREATE SCHEMA IF NOT EXISTS "${pgSchema}"`);
    await db.query(`CREATE TABLE "${pgSchema}".checked (record_id text NOT NULL, n integer CHECK (n > 0))`);
    const sink = await openSink({ table: "checked", columns: [{ name: "n", type: "integer" }] });
    const records = [makeRecord({ n: 1 }), makeRecord({ n: -5 }), makeRecord({ n: 3 })];
    const result = await sink.write(records);
    expect(result?.failed).toHaveLength(1);
    expect(result!.failed![0]!.record).toBe(records[1]);
    expect((result!.failed![0]!.error as SfError).message).toMatch(/check constraint/);
    expect(await count("checked")).toBe(2);
  });

  it("splits a batch over the 65535-parameter limit into several inserts", async () => {
    const sink = await openSink({ table: "wide", columns: [{ name: "a", type: "integer" }, { name: "b", type: "text" }] });
    const records = Array.from({ length: 25_000 }, (_, i) => makeRecord({ a: i, b: `b${i}` }));
    await sink.write(records); // 3 columns: at most 21845 rows a statement
    expect(await count("wide")).toBe(25_000);
  });

  it("reports an unreachable database as a retriable not-connected error", async () => {
    const ctx = makeContext({ baseDir: dir, connections: new Connections({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/test" }) });
    const sink = await postgresSink.create(postgresSink.schema.parse({ table: "nowhere", schema: "v1.avsc" }), ctx);
    const err = await sink.write([makeRecord(view("u", 1))]).then(() => undefined, (e: unknown) => e as SfError);
    await sink.close();
    expect(err?.code).toBe("SF_ERR_SINK_NOT_CONNECTED");
    expect(err?.retriable).toBe(true);
  });
});
