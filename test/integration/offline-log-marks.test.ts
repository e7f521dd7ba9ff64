/**
 * The offline log's idempotence in layout 2: a high-water mark per (view, source partition),
 * taken FOR UPDATE and moved in the transaction of the COPY (lib/features/offline-log.ts). Two
 * writers of one partition at once — a worker that lost the partition and still writes its
 * stale batch (a zombie) next to its new owner, which reads again from the committed offset —
 * must leave every offset in the log once; a mark never moves back; marks of different views
 * (a rebuilt view's store `<view>@v<n>`) and partitions are apart. A table an earlier version
 * created (layout 1, primary key) keeps being written idempotently by its key.
 */
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Connections } from "../../lib/runtime/connections.ts";
import { marksName, OfflineLogWriter, tableName } from "../../lib/features/offline-log.ts";
import type { LogRow, OfflineTable } from "../../lib/features/offline-log.ts";
import { createLayout1Table } from "../support/offline-log-layout1.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

const scope = new TestScope("logmarks");
let pool: pg.Pool;
const writers: OfflineLogWriter[] = [];

beforeAll(() => {
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 2 });
});
afterAll(async () => {
  for (const w of writers) await w.close();
  await pool.end();
  await scope.cleanup();
});

async function writer(t: OfflineTable, views: string[]): Promise<OfflineLogWriter> {
  const w = new OfflineLogWriter(new Connections({ DATABASE_URL: stack().DATABASE_URL }), "default", "test");
  writers.push(w);
  await w.prepare(t, views);
  return w;
}

/** Rows of offsets [from, to) of one partition; offsets divisible by 3 fan out to a second entity (seq numbers per entity). */
function rows(from: number, to: number, partition = 0, topic = "orders"): LogRow[] {
  const out: LogRow[] = [];
  for (let i = from; i < to; i++) {
    out.push({ entity: `u${i % 5}`, eventTime: 1_000 + i, cluster: "c0ffee00", topic, partition, offset: String(i), seq: 0, contributions: `{"n":${i}}` });
    if (i % 3 === 0) out.push({ entity: `w${i % 2}`, eventTime: 1_000 + i, cluster: "c0ffee00", topic, partition, offset: String(i), seq: 0, contributions: `{"n":${i}}` });
  }
  return out;
}
const expected = (from: number, to: number) => rows(from, to).length;

async function logged(t: OfflineTable, view: string, partition = 0): Promise<{ n: number; distinct: number; lo: number | null; hi: number | null }> {
  const { rows: r } = await pool.query(
    `SELECT count(*)::int AS n, count(DISTINCT (entity, "offset", seq))::int AS distinct, min("offset")::int AS lo, max("offset")::int AS hi FROM ${tableName(t)} WHERE view = $1 AND partition = $2`,
    [view, partition],
  );
  return r[0];
}
async function mark(t: OfflineTable, view: string, partition = 0): Promise<string | undefined> {
  const { rows: r } = await pool.query<{ o: string }>(`SELECT "offset"::text AS o FROM ${marksName(t)} WHERE view = $1 AND partition = $2`, [view, partition]);
  return r[0]?.o;
}

describeStack("offline log layout 2: high-water marks instead of a unique key", () => {
  it("a stale writer next to the partition's new owner: every offset once, whichever commits first", async () => {
    const t = { schema: scope.pgSchema, table: "feature_log" };
    for (let round = 0; round < 6; round++) {
      const view = `zombie_${round}`;
      const owner = await writer(t, [view]);
      const zombie = await writer(t, [view]);
      expect(owner.layout(t)).toBe(2);
      await owner.write(t, view, rows(0, 100)); // committed offsets up to 100
      // the zombie still holds the batch [100, 400) it read before losing the partition; the new
      // owner reads again from 100 in other spans; both write at once, in a different order each round
      const stale = zombie.write(t, view, rows(100, 400));
      const mine = (async () => {
        if (round % 2) await new Promise((r) => setTimeout(r, round * 3));
        await owner.write(t, view, rows(100, 250));
        await owner.write(t, view, rows(250, 520));
      })();
      await Promise.all([stale, mine]);
      expect(await logged(t, view)).toEqual({ n: expected(0, 520), distinct: expected(0, 520), lo: 0, hi: 519 });
      expect(await mark(t, view)).toBe("519");
    }
    // the log table has no unique key: it was the marks that kept the rows single
    const { rows: keys } = await pool.query(`SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u')`, [tableName(t)]);
    expect(keys).toEqual([]);
  });

  it("a mark moves only forward; marks are per view (a rebuilt version's store) and per partition", async () => {
    const t = { schema: scope.pgSchema, table: "feature_log" };
    const w = await writer(t, ["orders", "orders@v2"]);
    await w.write(t, "orders", [...rows(0, 500, 0), ...rows(0, 40, 1)]);
    expect([await mark(t, "orders", 0), await mark(t, "orders", 1)]).toEqual(["499", "39"]);
    expect(w.counts).toEqual({ optimistic: 1, careful: 0 }); // rows all new: one round, the marks taken after the COPY
    await w.write(t, "orders", rows(100, 300)); // a replay from an older committed offset
    expect(w.counts).toEqual({ optimistic: 1, careful: 1 }); // rolled back, written again leaving the replay out
    expect(await mark(t, "orders", 0)).toBe("499");
    expect(await logged(t, "orders")).toEqual({ n: expected(0, 500), distinct: expected(0, 500), lo: 0, hi: 499 });
    // a replay that goes beyond the mark adds exactly the rows after it, in one partition, not the other
    await w.write(t, "orders", [...rows(450, 600, 0), ...rows(30, 40, 1)]);
    expect(await logged(t, "orders")).toEqual({ n: expected(0, 600), distinct: expected(0, 600), lo: 0, hi: 599 });
    expect((await logged(t, "orders", 1)).n).toBe(expected(0, 40));
    // the new version's store starts with no mark: it takes the same offsets again, once
    await w.write(t, "orders@v2", rows(0, 300));
    await w.write(t, "orders@v2", rows(200, 300));
    expect(await logged(t, "orders@v2")).toEqual({ n: expected(0, 300), distinct: expected(0, 300), lo: 0, hi: 299 });
    expect(await mark(t, "orders@v2")).toBe("299");
    // a failed write moves nothing: the view's partition out of reach, then back
    const part = `${scope.pgSchema}.feature_log_orders`;
    await pool.query(`ALTER TABLE ${part} RENAME TO feature_log_away`);
    try {
      await expect(w.write(t, "orders", rows(600, 700))).rejects.toMatchObject({ code: "SF_ERR_FEATURES_OFFLINE_LOG" });
    } finally {
      await pool.query(`ALTER TABLE ${scope.pgSchema}.feature_log_away RENAME TO feature_log_orders`);
    }
    expect(await mark(t, "orders", 0)).toBe("599");
    // a row PostgreSQL refuses in the middle of the COPY (text with a NUL): nothing of the write
    // stays, and the connection, whose COPY data was all sent before the refusal, serves the next write
    const bad = rows(600, 700);
    bad[50] = { ...bad[50]!, entity: "u\u0000x" };
    await expect(w.write(t, "orders", bad)).rejects.toMatchObject({ code: "SF_ERR_FEATURES_OFFLINE_LOG" });
    expect(await mark(t, "orders", 0)).toBe("599");
    await w.write(t, "orders", rows(600, 700));
    expect(await logged(t, "orders")).toEqual({ n: expected(0, 700), distinct: expected(0, 700), lo: 0, hi: 699 });
  });

  it("a table in layout 1 (primary key, no marks) keeps being written, idempotently, by its key", async () => {
    const t = { schema: scope.pgSchema, table: "old_log" };
    await createLayout1Table(pool, t);
    const w = await writer(t, ["orders"]);
    expect(w.layout(t)).toBe(1);
    await w.write(t, "orders", rows(0, 3000));
    await w.write(t, "orders", rows(2500, 4000)); // meets rows already there
    expect(await logged(t, "orders")).toEqual({ n: expected(0, 4000), distinct: expected(0, 4000), lo: 0, hi: 3999 });
    const { rows: marks } = await pool.query(`SELECT to_regclass($1) AS r`, [marksName(t)]);
    expect(marks[0].r).toBeNull();
  });
});
