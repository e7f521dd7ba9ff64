/**
 * Snapshots of a view's offline log: per entity, at the close of each period (a day by default)
 * in which it changed, the folded state of its features without windows — what the online
 * store held once every record up to then was applied. A point-in-time read then starts from
 * the newest snapshot at or before its time and reads only the log rows after it (and, for
 * windows, the rows of the window holding the time), instead of the entity's whole history:
 * on the benchmark's 10,000,000-row log an entity's ~50 rows per ask become ~5
 * (BENCHMARKS.md, "reads from snapshots": 100,000 asks in 3.8–4.6 s against 18.2–25.2 s).
 *
 * Snapshots only make reads faster: the log stays whole and is the truth; a read with no usable
 * snapshot folds the log as before, and the answers are the same (up to the rounding of sums of
 * non-integers, which add in another order).
 *
 * Built by `streamfleet features compact --view V` (`buildSnapshots`), for periods that closed
 * at least `grace` ago. Late rows are the one hazard: a row with an event time at or before a
 * snapshot makes it wrong. So the build first moves the view's *horizon* (the time up to which
 * it will build) in a transaction that takes the partition in SHARE mode — it waits for the
 * writes in flight and lets none start meanwhile — and commits at once; then it reads the log
 * in one REPEATABLE READ transaction that starts after that. A write either committed before
 * the horizon moved (the build sees its rows) or reads the new horizon once it holds the
 * partition (OfflineLogWriter) and records its rows at or before it in `<table>__stale`. A
 * reader skips an entity's snapshots at or after its earliest stale time; the next build drops
 * them and builds them again from the log.
 */
import crypto from "node:crypto";
import type pg from "pg";
import { SfError } from "../errors.ts";
import { foldPlan, foldSegments, segmentsByEntity, toSegments, windowed } from "./historical-fold.ts";
import type { SegmentRow } from "./historical-fold.ts";
import { segmentsSql } from "./historical-sql.ts";
import type { SnapshotRead } from "./historical-sql.ts";
import { storeOf } from "./layout.ts";
import { layoutOf, offlineTableOf, partitionName, partitionOid, snapshotDdl, snapshotTables } from "./offline-log.ts";
import type { LoggedViewDef } from "./offline-log.ts";

export const DAY_MS = 86_400_000;

/** The form of a snapshot's `state` (historical-fold.ts, stateText); part of the fingerprint, so snapshots of another form are never read. */
const STATE_FORMAT = 2;

/**
 * What snapshots of a view are valid for: the form of their state, the period and the view's
 * features without windows (name, kind, n). A view whose definition changed in these is built
 * again from scratch, and readers ignore snapshots with another fingerprint. The Python client
 * computes the same (clients/python/streamfleet_features/historical.py, `fingerprint`).
 */
export function fingerprint(view: Pick<LoggedViewDef, "features">, every: number): string {
  const defs = view.features.filter((d) => !windowed(d)).map((d) => [d.name, d.kind, d.n ?? null]);
  return crypto.createHash("sha1").update(JSON.stringify([STATE_FORMAT, every, defs])).digest("hex").slice(0, 16);
}

/**
 * The snapshots a read of `view` may start from: the tables and the fingerprint in force, or
 * undefined when the view has none usable (never built, built for another definition of it, a
 * log of layout 1 or from before snapshots, or tables the reader's role may not read).
 */
export async function snapshotRead(db: pg.Pool | pg.ClientBase, view: LoggedViewDef): Promise<(SnapshotRead & { fp: string }) | undefined> {
  const tables = snapshotTables(offlineTableOf(view));
  const { rows: can } = await db.query<{ ok: boolean }>(
    "SELECT coalesce(has_table_privilege(to_regclass($1), 'SELECT') AND has_table_privilege(to_regclass($2), 'SELECT') AND has_table_privilege(to_regclass($3), 'SELECT'), false) AS ok",
    [tables.horizon, tables.snapshots, tables.stale],
  );
  if (!can[0]!.ok) return undefined;
  const { rows } = await db.query<{ fp: string; every: string }>(`SELECT fp, every::text FROM ${tables.horizon} WHERE view = $1`, [storeOf(view)]);
  // built with the view's present definition, or of no use
  return rows[0] && rows[0].fp === fingerprint(view, Number(rows[0].every)) ? { ...tables, fp: rows[0].fp } : undefined;
}

export interface SnapshotOptions {
  /** Period length in ms (default a day): a snapshot closes each period in which the entity changed. */
  every?: number;
  /** Periods are built once they closed this long ago (ms, default an hour): later rows of them are late rows. */
  grace?: number;
  /** The time taken as now (epoch ms; tests). */
  now?: number;
  /** Entities per log query (default 2,000). */
  chunk?: number;
}

export interface Snapshotted {
  /** The horizon now: snapshots cover the periods that closed up to it. */
  horizon: number;
  /** Snapshots written by this build. */
  written: number;
  /** Entities whose snapshots late rows had made wrong: theirs from the late row on were built again. */
  repaired: number;
  /** Every snapshot of the view was built again (its definition or the period changed). */
  rebuilt: boolean;
  ms: number;
}

/** The close of the period holding t: the smallest multiple of `every` at or after t (SQL on a bigint column). */
const periodEnd = (column: string, every: number) => `${column} + ((((-${column}) % ${every}) + ${every}) % ${every})`;

/**
 * Builds the view's snapshots up to the horizon (the last period end at least `grace` before
 * now): for each entity, one per period with log rows since its newest snapshot. Runs on one
 * connection (a session advisory lock keeps two builds of a view apart), in two transactions
 * (see the module comment). The log's writers go on meanwhile, except for the moment the
 * horizon moves.
 */
export async function buildSnapshots(client: pg.ClientBase, view: LoggedViewDef, options: SnapshotOptions = {}): Promise<Snapshotted> {
  const started = performance.now();
  const table = offlineTableOf(view);
  const store = storeOf(view);
  const partition = partitionName(table, store);
  const every = options.every ?? DAY_MS;
  const grace = options.grace ?? 3_600_000;
  if (!Number.isInteger(every) || every < 1000) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `a snapshot period must be a whole number of ms ≥ 1000, got ${every}`, { where: "every" });
  const names = view.features.filter((d) => !windowed(d)).map((d) => d.name);
  if (names.length === 0) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `feature view "${view.name}" has only window features: a read never needs more than the window holding its time, snapshots would not help`, { where: "view" });
  const layout = await layoutOf(client, table);
  if (layout === undefined) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `the offline log ${table.schema}.${table.table} does not exist: nothing was logged for "${view.name}" yet`, { where: "view" });
  if (layout === 1) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `the offline log ${table.schema}.${table.table} is in layout 1 (made by streamfleet before 2026-11): snapshots need layout 2; move the rows to a new table (docs/feature-store.md, "Offline feature log")`, { where: "offline" });
  await partitionOid(client, table, store);
  const tables = snapshotTables(table);
  const fp = fingerprint(view, every);
  const now = options.now ?? Date.now();
  const target = Math.floor((now - grace) / every) * every;

  await client.query("SELECT pg_advisory_lock(hashtext($1))", [`streamfleet snapshots ${partition}`]);
  try {
    for (const sql of snapshotDdl(table)) await client.query(sql);
    // 1. the horizon moves while no write is in flight: every write from now on sees it
    await client.query("BEGIN");
    try {
      await client.query(`LOCK TABLE ${partition} IN SHARE MODE`);
      await client.query(
        `INSERT INTO ${tables.horizon} AS h (view, through, every, fp) VALUES ($1, $2, $3, '') ON CONFLICT (view) DO UPDATE SET through = greatest(h.through, excluded.through)`,
        [store, target, every],
      );
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
    // 2. the build, seeing every write the horizon did not reach
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    try {
      const { rows: h } = await client.query<{ through: string; fp: string }>(`SELECT through::text, fp FROM ${tables.horizon} WHERE view = $1`, [store]);
      // a period end: an earlier build with another period may have left the horizon between two
      const horizon = Math.floor(Number(h[0]!.through) / every) * every;
      const rebuilt = h[0]!.fp !== "" && h[0]!.fp !== fp;
      let repaired = 0;
      if (h[0]!.fp !== fp) {
        await client.query(`DELETE FROM ${tables.snapshots} WHERE view = $1`, [store]);
      } else {
        const { rowCount } = await client.query(
          `WITH st AS (SELECT entity, min(event_time) AS t FROM ${tables.stale} WHERE view = $1 GROUP BY entity),
                gone AS (DELETE FROM ${tables.snapshots} sn USING st WHERE sn.view = $1 AND sn.entity = st.entity AND sn.through >= st.t RETURNING sn.entity)
           SELECT DISTINCT entity FROM gone`,
          [store],
        );
        repaired = rowCount ?? 0;
      }
      // late rows this transaction sees are dealt with; those committed since stay for the next build
      await client.query(`DELETE FROM ${tables.stale} WHERE view = $1`, [store]);
      await client.query(`UPDATE ${tables.horizon} SET fp = $2, every = $3 WHERE view = $1`, [store, fp, every]);
      // per entity: its newest snapshot, and the period ends of its rows after that up to the horizon
      const { rows: todo } = await client.query<{ entity: string; last: string | null; ends: string[] }>(
        `WITH last AS (SELECT entity, max(through) AS through FROM ${tables.snapshots} WHERE view = $1 GROUP BY entity)
         SELECT d.entity, min(last.through)::text AS last, array_agg(d.b::text ORDER BY d.b) AS ends
         FROM (SELECT DISTINCT l.entity, ${periodEnd("l.event_time", every)} AS b
               FROM ${partition} l LEFT JOIN last ON last.entity = l.entity
               WHERE l.event_time <= $2 AND l.event_time > coalesce(last.through, (-9223372036854775808)::int8)) d
         LEFT JOIN last ON last.entity = d.entity
         GROUP BY d.entity ORDER BY d.entity`,
        [store, horizon],
      );
      const plan = foldPlan(view, names);
      const sql = segmentsSql(table, plan.defs, tables);
      const size = options.chunk ?? 2_000;
      let written = 0;
      const lastOf = new Map(todo.map((e) => [e.entity, e.last === null ? null : Number(e.last)]));
      for (let i = 0; i < todo.length; i += size) {
        const part = todo.slice(i, i + size);
        const entities: string[] = [];
        const times: number[] = [];
        for (const e of part) {
          if (e.last !== null) {
            entities.push(e.entity);
            times.push(Number(e.last));
          }
          for (const b of e.ends) {
            entities.push(e.entity);
            times.push(Number(b));
          }
        }
        const { rows } = await client.query<SegmentRow>(sql, [store, entities, times, fp]);
        const out = { entity: [] as string[], through: [] as number[], state: [] as string[] };
        for (const [entity, list] of segmentsByEntity(rows)) {
          const last = lastOf.get(entity) ?? null;
          foldSegments(plan, toSegments(plan.names, list), (k, state) => {
            if (list[k]!.t === last) return; // the snapshot it started from
            out.entity.push(entity);
            out.through.push(list[k]!.t);
            out.state.push(state);
          });
        }
        if (out.entity.length > 0) {
          await client.query(
            `INSERT INTO ${tables.snapshots} (view, entity, through, state) SELECT $1, e, t, s::jsonb FROM unnest($2::text[], $3::int8[], $4::text[]) AS u(e, t, s)`,
            [store, out.entity, out.through, out.state],
          );
          written += out.entity.length;
        }
      }
      await client.query("COMMIT");
      await client.query(`ANALYZE ${tables.snapshots}`);
      return { horizon, written, repaired, rebuilt, ms: performance.now() - started };
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
  } finally {
    await client.query("SELECT pg_advisory_unlock(hashtext($1))", [`streamfleet snapshots ${partition}`]).catch(() => undefined);
  }
}
