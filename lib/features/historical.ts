/**
 * Point-in-time retrieval from the offline feature log: for rows of (entity, time), every
 * requested feature as of that time. PostgreSQL does the searching — per chunk of rows, one
 * query walks each entity's history up to its latest asked time along the log's primary key
 * (already in event-time order, so nothing is sorted) — and the feature algebra does the
 * folding (historical-fold.ts), so the values are the online store's by construction.
 * Chunks go in row order and the next chunk's query runs while one is folded, so answers
 * stream out in the order asked.
 */
import type pg from "pg";
import { SfError } from "../errors.ts";
import { foldAsOf, foldPlan } from "./historical-fold.ts";
import type { LogEntry } from "./historical-fold.ts";
import type { ViewDef } from "./layout.ts";
import { tableName } from "./offline-log.ts";
import type { OfflineTable } from "./offline-log.ts";

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
}

/** A view as the registry holds it, with the offline log it names (if any). */
export type LoggedViewDef = ViewDef & { offline?: OfflineTable };

/** The log table of a view; SF_ERR_FEATURES_BAD_REQUEST when the view keeps none. */
export function offlineTableOf(view: LoggedViewDef): OfflineTable {
  if (!view.offline) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `feature view "${view.name}" has no offline log (give it \`offline:\` in its redis.features sink)`, { where: "offline" });
  return view.offline;
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

function historySql(t: OfflineTable): string {
  return `SELECT r.i, l.event_time::float8 AS t, l.contributions AS c
    FROM unnest($2::text[], $3::int8[]) WITH ORDINALITY AS r(entity, upto, i)
    CROSS JOIN LATERAL (
      SELECT event_time, contributions FROM ${tableName(t)}
      WHERE view = $1 AND entity = r.entity AND event_time <= r.upto
      ORDER BY event_time, cluster, topic, partition, "offset", seq
    ) AS l`;
}

/** One chunk's query: its entities, each with its latest asked time. */
function query(pool: pg.Pool, sql: string, view: string, asks: readonly HistoricalAsk[]): Promise<{ entities: Map<string, number>; rows: Array<{ i: string; t: number; c: Record<string, unknown> }> }> {
  const entities = new Map<string, number>();
  const upto: number[] = [];
  for (const a of asks) {
    const at = entities.get(a.entity);
    if (at === undefined) {
      entities.set(a.entity, upto.length);
      upto.push(Math.floor(a.t));
    } else if (a.t > upto[at]!) upto[at] = Math.floor(a.t);
  }
  return pool.query<{ i: string; t: number; c: Record<string, unknown> }>(sql, [view, [...entities.keys()], upto]).then((res) => ({ entities, rows: res.rows }));
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
  const sql = historySql(table);
  const chunks: HistoricalAsk[][] = [];
  for (let i = 0; i < asks.length; i += size) chunks.push(asks.slice(i, i + size));
  let pending = chunks.length ? query(pool, sql, view.name, chunks[0]!) : undefined;
  for (let k = 0; k < chunks.length; k++) {
    const { entities, rows } = await pending!;
    pending = k + 1 < chunks.length ? query(pool, sql, view.name, chunks[k + 1]!) : undefined;
    pending?.catch(() => undefined); // reported when awaited
    const logs: LogEntry[][] = Array.from({ length: entities.size }, () => []);
    for (const r of rows) logs[Number(r.i) - 1]!.push({ t: r.t, c: r.c });
    const chunk = chunks[k]!;
    const asked: number[][] = logs.map(() => []);
    const at: number[] = [];
    for (const a of chunk) {
      const e = entities.get(a.entity)!;
      at.push(asked[e]!.length);
      asked[e]!.push(a.t);
    }
    const answers = logs.map((log, e) => foldAsOf(plan, log, asked[e]!));
    yield chunk.map((a, j) => answers[entities.get(a.entity)!]![at[j]!]!);
  }
}

/** Every asked row's values (see historicalChunks), in the order asked. */
export async function historicalValues(pool: pg.Pool, view: LoggedViewDef, asks: readonly HistoricalAsk[], options: HistoricalOptions = {}): Promise<unknown[][]> {
  const out: unknown[][] = [];
  for await (const chunk of historicalChunks(pool, view, asks, options)) for (const v of chunk) out.push(v);
  return out;
}
