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
import type { FeatureDef } from "./layout.ts";
import { tableName } from "./offline-log.ts";
import type { OfflineTable } from "./offline-log.ts";

const NEWEST_FIRST = `l.event_time DESC, l.cluster DESC, l.topic DESC, l.partition DESC, l."offset" DESC, l.seq DESC`;
const c = "l.c";

/** The SQL expression merging one feature over a segment's rows. */
function merge(def: FeatureDef, column: string): string {
  const k = pg.escapeLiteral(def.name);
  const num = `(${c}->>${k})::float8`;
  switch (def.kind) {
    case "counter":
      return `sum(${num}) AS ${column}`;
    case "min":
    case "max":
      return `${def.kind}(${num}) AS ${column}`;
    case "latest":
      return `(array_agg(jsonb_build_array(${c}->${k})) FILTER (WHERE ${c} ? ${k}))[1] AS ${column}`;
    case "last_n":
      return `to_jsonb((array_agg(${c}->${k}) FILTER (WHERE ${c} ? ${k}))[1:${def.n!}]) AS ${column}`;
    case "window_count":
    case "window_sum": {
      const w = def.window_ms!;
      return `sum(${num}) FILTER (WHERE l.event_time >= s.t - ((s.t % ${w}) + ${w}) % ${w}) AS ${column}`;
    }
  }
}

/**
 * The query for `defs` of one view: $1 view name, $2 entity ids, $3 asked times (epoch ms,
 * integers; pairs may repeat). Answers one row per distinct (entity, t): entity, t, f0, f1, …
 */
export function segmentsSql(table: OfflineTable, defs: readonly FeatureDef[]): string {
  return `WITH asks AS (
      SELECT DISTINCT entity, t FROM unnest($2::text[], $3::int8[]) AS u(entity, t)
    ), seg AS (
      SELECT entity, t, lag(t) OVER (PARTITION BY entity ORDER BY t) AS prev FROM asks
    )
    SELECT s.entity, s.t::float8 AS t, m.*
    FROM seg s CROSS JOIN LATERAL (
      SELECT ${defs.map((d, f) => merge(d, `f${f}`)).join(",\n        ")}
      FROM (
        SELECT l.event_time, l.contributions AS c FROM ${tableName(table)} l
        WHERE l.view = $1 AND l.entity = s.entity AND l.event_time <= s.t AND (s.prev IS NULL OR l.event_time > s.prev)
        ORDER BY ${NEWEST_FIRST}
      ) l
    ) m`;
}
