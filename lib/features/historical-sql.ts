/**
 * The SQL of point-in-time retrieval: for each distinct (entity, asked time tk), the
 * entity's log rows with event time in (t(k-1), tk] — one range of the log's (entity,
 * event_time) index (layout 2; layout 1's primary key starts with the same columns), so every
 * log row is read at most once per request — merged per feature as the algebra merges
 * a batch (see historical-fold.ts for how the segments are then combined):
 *   counter, window_*  sum (windows: of the contributions in the window holding tk)
 *   min, max           the extreme
 *   latest             [the newest value] (a one-element array: a JSON null value is a value)
 *   last_n             the n newest values, newest first
 * "Newest" is by event time, then source position (cluster, topic, partition, offset, seq):
 * the order in which one partition's records reach the online store.
 *
 * A segment's rows come newest first from a sub-query ordered by event time and source position,
 * backwards — PostgreSQL walks the index backwards (ties in event time, rare, sorted by position)
 * — and latest/last_n aggregate them in that order (no ORDER BY inside the aggregates: on
 * PostgreSQL 15 each ordered aggregate sorts
 * its group again, which tripled the cost of a read; BENCHMARKS.md, "Historical retrieval").
 * The tests that hold latest/last_n to the online store (offline-online, historical-export,
 * python-client) would see it if that order were ever not kept.
 */
import pg from "pg";
import { windowed } from "./historical-fold.ts";
import type { FeatureDef } from "./layout.ts";
import { tableName } from "./offline-log.ts";
import type { OfflineTable } from "./offline-log.ts";

const NEWEST_FIRST = `l.event_time DESC, l.cluster DESC, l.topic DESC, l.partition DESC, l."offset" DESC, l.seq DESC`;
const c = "l.c";
const MIN_TIME = "(-9223372036854775808)::int8";
const MAX_TIME = "9223372036854775807::int8";

/**
 * The SQL expression merging one feature over a segment's rows; `afterBase`: only the rows after
 * the segment's snapshot count (a segment from a snapshot also holds the earlier rows of the
 * window holding t, which only the window features take).
 */
function merge(def: FeatureDef, column: string, afterBase = false): string {
  const k = pg.escapeLiteral(def.name);
  const after = afterBase ? " AND (s.base IS NULL OR l.event_time > s.base)" : "";
  const num = `(${c}->>${k})::float8`;
  switch (def.kind) {
    case "counter":
      return `sum(${num})${afterBase ? ` FILTER (WHERE true${after})` : ""} AS ${column}`;
    case "min":
    case "max":
      return `${def.kind}(${num})${afterBase ? ` FILTER (WHERE true${after})` : ""} AS ${column}`;
    case "latest":
      return `(array_agg(jsonb_build_array(${c}->${k})) FILTER (WHERE ${c} ? ${k}${after}))[1] AS ${column}`;
    case "last_n":
      return `to_jsonb((array_agg(${c}->${k}) FILTER (WHERE ${c} ? ${k}${after}))[1:${def.n!}]) AS ${column}`;
    case "window_count":
    case "window_sum": {
      const w = def.window_ms!;
      return `sum(${num}) FILTER (WHERE l.event_time >= s.t - ((s.t % ${w}) + ${w}) % ${w}) AS ${column}`;
    }
  }
}

/** Where a read starts from a snapshot (lib/features/snapshots.ts): its tables, and the fingerprint the view's snapshots must carry. */
export interface SnapshotRead {
  snapshots: string;
  stale: string;
  horizon: string;
}

/**
 * The query for `defs` of one view: $1 view name, $2 entity ids, $3 asked times (epoch ms,
 * integers; pairs may repeat); with `snap`, $4 the view's snapshot fingerprint. Answers one row
 * per distinct (entity, t): entity, t, base, state, f0, f1, …
 *
 * Without snapshots, an entity's first asked time reads its whole history up to t, each next
 * one the rows since the previous (base and state null). With snapshots, an asked time whose
 * newest usable snapshot (through ≤ t, the fingerprint matching, older than any late row the
 * writers marked for the entity) is later than the entity's previous asked time starts from it:
 * base = its `through`, state its folded features, and the segment holds the rows after it (and,
 * for windows, the rows of the window holding t, which may start before it).
 */
export function segmentsSql(table: OfflineTable, defs: readonly FeatureDef[], snap?: SnapshotRead): string {
  const windows = defs.filter(windowed);
  const merges = defs.map((d, f) => merge(d, `f${f}`, snap !== undefined && windows.length > 0 && !windowed(d)));
  const log = `SELECT l.event_time, l.contributions AS c FROM ${tableName(table)} l
        WHERE l.view = $1 AND l.entity = s.entity AND l.event_time <= s.t AND l.event_time > s.lo
        ORDER BY ${NEWEST_FIRST}`;
  if (!snap) {
    return `WITH asks AS (
      SELECT DISTINCT entity, t FROM unnest($2::text[], $3::int8[]) AS u(entity, t)
    ), s AS (
      SELECT entity, t, coalesce(lag(t) OVER (PARTITION BY entity ORDER BY t), ${MIN_TIME}) AS lo FROM asks
    )
    SELECT s.entity, s.t::float8 AS t, NULL::float8 AS base, NULL::jsonb AS state, m.*
    FROM s CROSS JOIN LATERAL (
      SELECT ${merges.join(",\n        ")}
      FROM (${log}) l
    ) m`;
  }
  // the earliest window start of t among the windows asked: a segment from a snapshot reads from there if that is earlier
  const windowFrom = windows.length === 0 ? "" : `, least(${windows.map((d) => `t - ((t % ${d.window_ms!}) + ${d.window_ms!}) % ${d.window_ms!} - 1`).join(", ")})`;
  return `WITH asks AS (
      SELECT DISTINCT entity, t FROM unnest($2::text[], $3::int8[]) AS u(entity, t)
    ), stale AS (
      SELECT entity, min(event_time) AS t FROM ${snap.stale} WHERE view = $1 AND entity = ANY($2::text[]) GROUP BY entity
    ), fp AS (
      SELECT 1 FROM ${snap.horizon} WHERE view = $1 AND fp = $4
    ), seg AS (
      SELECT a.entity, a.t, lag(a.t) OVER (PARTITION BY a.entity ORDER BY a.t) AS prev, x.through, x.state
      FROM asks a LEFT JOIN stale st ON st.entity = a.entity
      LEFT JOIN LATERAL (
        SELECT sn.through, sn.state FROM ${snap.snapshots} sn
        WHERE sn.view = $1 AND sn.entity = a.entity AND sn.through <= a.t AND sn.through < coalesce(st.t, ${MAX_TIME}) AND EXISTS (SELECT 1 FROM fp)
        ORDER BY sn.through DESC LIMIT 1
      ) x ON true
    ), s AS (
      SELECT entity, t, base, CASE WHEN base IS NOT NULL THEN state END AS state,
        CASE WHEN base IS NULL THEN coalesce(prev, ${MIN_TIME}) ELSE least(base${windowFrom}) END AS lo
      FROM (SELECT seg.*, CASE WHEN through IS NOT NULL AND (prev IS NULL OR through > prev) THEN through END AS base FROM seg) b
    )
    SELECT s.entity, s.t::float8 AS t, s.base::float8 AS base, s.state, m.*
    FROM s CROSS JOIN LATERAL (
      SELECT ${merges.join(",\n        ")}
      FROM (${log}) l
    ) m`;
}
