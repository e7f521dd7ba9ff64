/**
 * `streamfleet features compact --view V --cluster` (besides building the view's snapshots,
 * lib/features/snapshots.ts): rewrites a view's partition of the offline feature log in the order of its `(entity, event_time)` index (PostgreSQL's CLUSTER), so that a
 * point-in-time read of one entity visits a few table pages instead of one page per log row
 * (docs/feature-store.md, "Size and speed": 100,000 asks over 10,000,000 rows, 17.8 s as
 * written against 10.1–11.8 s clustered on the same machine, 6.3 s on another). The rows written later go to the end of the table
 * again, in arrival order. Snapshots gain more (3.8–4.6 s as written) and lock nothing for long;
 * CLUSTER is worth it after a large backfill.
 *
 * CLUSTER holds an ACCESS EXCLUSIVE lock on the partition while it runs (about 50–80 s per
 * 10,000,000 rows on the 2-core test machine): the sink's log writes of that view wait for it
 * (its Redis updates too, since a flush waits for both), reads of the log wait, nothing is lost.
 */
import type pg from "pg";
import { SfError } from "../errors.ts";
import { partitionName, partitionOid } from "./offline-log.ts";
import type { OfflineTable } from "./offline-log.ts";

export interface Compacted {
  /** The partition rewritten, schema-qualified. */
  partition: string;
  /** The index it was ordered by (its name; it is in the partition's schema). */
  index: string;
  /** Rows in the partition afterwards (PostgreSQL's count after ANALYZE). */
  rows: number;
  ms: number;
}

/** CLUSTERs the partition of `store` (a view's name, or a rebuilt version's `<view>@v<n>`) on its (entity, event_time) index, then ANALYZEs it. */
export async function compactLog(client: pg.ClientBase, table: OfflineTable, store: string): Promise<Compacted> {
  const partition = partitionName(table, store);
  const oid = await partitionOid(client, table, store);
  // layout 2: the (entity, event_time) index; layout 1: its primary key, which starts with view, entity, event_time
  const { rows: indexes } = await client.query<{ name: string; def: string }>(
    `SELECT quote_ident(c.relname) AS name, pg_get_indexdef(i.indexrelid) AS def
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1::oid ORDER BY i.indisprimary`,
    [oid],
  );
  const index = indexes.find((i) => /\((view, )?entity, event_time\b/.test(i.def));
  if (!index) throw new SfError("SF_ERR_FEATURES_OFFLINE_LOG", `${partition} has no index on (entity, event_time) to order it by (found: ${indexes.map((i) => i.def).join("; ") || "none"})`, { where: "offline" });
  const start = performance.now();
  await client.query(`CLUSTER ${partition} USING ${index.name}`); // an index is in its table's schema
  await client.query(`ANALYZE ${partition}`);
  const ms = performance.now() - start;
  const { rows } = await client.query<{ n: string }>("SELECT reltuples::bigint::text AS n FROM pg_class WHERE oid = $1::oid", [oid]);
  return { partition, index: index.name, rows: Math.max(0, Number(rows[0]!.n)), ms };
}
