/**
 * Point-in-time retrieval from the offline feature log: for rows of (entity, time), every
 * requested feature as of that time. Per chunk of rows, PostgreSQL reads each asked entity's
 * history once, along the log's (entity, event_time) index, and merges it per feature between consecutive
 * asked times (historical-sql.ts): what crosses the wire is one row per asked (entity, time),
 * not the log. The feature algebra then combines those segments (historical-fold.ts), so the
 * values are the online store's by construction. Chunks go in row order, `parallel` queries
 * (default 2: PostgreSQL spends a core on each) in flight while earlier ones are folded and
 * handed out, so answers stream out in the order asked.
 */
import type pg from "pg";
import { SfError } from "../errors.ts";
import { foldPlan, foldSegments, segmentsByEntity, toSegments } from "./historical-fold.ts";
import type { FoldPlan, SegmentRow } from "./historical-fold.ts";
import { segmentsSql } from "./historical-sql.ts";
import { storeOf } from "./layout.ts";
import { offlineTableOf } from "./offline-log.ts";
import type { LoggedViewDef } from "./offline-log.ts";
import { snapshotRead } from "./snapshots.ts";

export { offlineTableOf };
export type { LoggedViewDef };

/** One row asked for: an entity id and a time (epoch ms). */
export interface HistoricalAsk {
  entity: string;
  t: number;
}

export interface HistoricalOptions {
  /** Requested features; default all of the view's. */
  names?: readonly string[];
  /** Rows per query; default 5,000. */
  chunk?: number;
  /** Chunk queries in flight at once (each on its own pool client); default 2. */
  parallel?: number;
}

/** Epoch ms of a time given as a number (epoch ms) or a string (digits: epoch ms; else ISO 8601); NaN when unreadable. */
export function parseTime(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v !== "string" || v.trim() === "") return NaN;
  return /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : Date.parse(v);
}

/** Checks asked rows; throws SF_ERR_FEATURES_BAD_REQUEST naming the first bad one. */
export function checkAsks(asks: readonly HistoricalAsk[]): void {
  asks.forEach((a, i) => {
    if (typeof a.entity !== "string" || a.entity === "") throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `row ${i + 1}: expected a non-empty entity id, got ${JSON.stringify(a.entity)}`, { where: "rows" });
    if (!Number.isFinite(a.t)) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `row ${i + 1}: expected a timestamp (epoch ms or ISO 8601) for entity ${JSON.stringify(a.entity)}`, { where: "rows" });
  });
}

/** One chunk: its segments from PostgreSQL, folded per entity; values per asked row, in order. */
async function answerChunk(pool: pg.Pool, sql: string, params: readonly unknown[], plan: FoldPlan, asks: readonly HistoricalAsk[]): Promise<unknown[][]> {
  const times = asks.map((a) => Math.floor(a.t));
  const { rows } = await pool.query<SegmentRow>(sql, [params[0], asks.map((a) => a.entity), times, ...params.slice(1)]);
  const answers = new Map<string, unknown[]>();
  for (const [entity, list] of segmentsByEntity(rows)) {
    foldSegments(plan, toSegments(plan.names, list)).forEach((v, k) => answers.set(`${list[k]!.t}\u0000${entity}`, v));
  }
  return asks.map((a, i) => answers.get(`${times[i]}\u0000${a.entity}`)!);
}

/**
 * The values of `names` for each asked row, chunk by chunk in the order asked: each yielded
 * array holds, per row of the chunk, one value per name (null when the feature has no data
 * at or before the row's time; windows 0).
 */
export async function* historicalChunks(pool: pg.Pool, view: LoggedViewDef, asks: readonly HistoricalAsk[], options: HistoricalOptions = {}): AsyncGenerator<unknown[][]> {
  const table = offlineTableOf(view);
  const names = options.names && options.names.length > 0 ? options.names : view.features.map((f) => f.name);
  const plan = foldPlan(view, names);
  const size = options.chunk ?? 5_000;
  // snapshots (lib/features/snapshots.ts), when the view has any built with its present definition
  const snap = await snapshotRead(pool, view);
  const sql = segmentsSql(table, plan.defs, snap);
  const params = snap ? [storeOf(view), snap.fp] : [storeOf(view)];
  const chunks: HistoricalAsk[][] = [];
  for (let i = 0; i < asks.length; i += size) chunks.push(asks.slice(i, i + size));
  const ahead = Math.max(1, options.parallel ?? 2);
  // the next chunks' queries run while this one is folded and written
  const pending: Promise<unknown[][]>[] = [];
  const start = (k: number) => {
    const p = answerChunk(pool, sql, params, plan, chunks[k]!);
    p.catch(() => undefined); // reported when awaited
    pending.push(p);
  };
  for (let k = 0; k < Math.min(ahead, chunks.length); k++) start(k);
  for (let k = 0; k < chunks.length; k++) {
    const values = await pending.shift()!;
    if (k + ahead < chunks.length) start(k + ahead);
    yield values;
  }
}

/** Every asked row's values (see historicalChunks), in the order asked. */
export async function historicalValues(pool: pg.Pool, view: LoggedViewDef, asks: readonly HistoricalAsk[], options: HistoricalOptions = {}): Promise<unknown[][]> {
  const out: unknown[][] = [];
  for await (const chunk of historicalChunks(pool, view, asks, options)) for (const v of chunk) out.push(v);
  return out;
}
