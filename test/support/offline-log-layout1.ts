/**
 * A log table as streamfleet created it before layout 2 (docs/feature-store.md, "Offline feature
 * log", layout 1): the same columns, a primary key that made writes idempotent, no marks table and
 * no layout comment. Tests and the offline-log bench create one to hold the writer to its layout-1
 * path (a table found so keeps being written that way).
 */
import type pg from "pg";
import { tableName } from "../../lib/features/offline-log.ts";
import type { OfflineTable } from "../../lib/features/offline-log.ts";

export async function createLayout1Table(db: pg.Pool | pg.ClientBase, t: OfflineTable): Promise<void> {
  await db.query(`CREATE SCHEMA IF NOT EXISTS "${t.schema}"`);
  await db.query(`CREATE TABLE ${tableName(t)} (
      view text NOT NULL,
      entity text NOT NULL,
      event_time bigint NOT NULL,
      cluster text NOT NULL,
      topic text NOT NULL,
      partition integer NOT NULL,
      "offset" bigint NOT NULL,
      seq integer NOT NULL,
      contributions jsonb NOT NULL,
      PRIMARY KEY (view, entity, event_time, cluster, topic, partition, "offset", seq)
    ) PARTITION BY LIST (view)`);
}
