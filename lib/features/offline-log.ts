/**
 * The offline feature log in PostgreSQL: what the `redis.features` sink records for views
 * with `offline`, and the table both writers and readers agree on (docs/feature-store.md,
 * "Offline feature log"). One row per (view, entity, source record): the record's event
 * time, its source position and its contribution to each feature, as the sink's feature
 * algebra took it. Replays add nothing: the primary key holds the source position, and rows
 * go in with ON CONFLICT DO NOTHING.
 *
 * The table is partitioned by view (LIST): a view's rows are one partition whose primary key
 * (entity, event_time, position) is also the index point-in-time reads walk, so a read
 * touches one entity's history in event-time order and never another view's rows.
 */
import crypto from "node:crypto";
import pg from "pg";
import { SfError, errorMessage } from "../errors.ts";
import type { Connections } from "../runtime/connections.ts";
import { pgTarget } from "../connectors/postgres/connection.ts";

/** Where a view's log is kept: what the view registry carries for readers. */
export interface OfflineTable {
  schema: string;
  table: string;
}

/** One row of the log as the writer hands it: contributions keyed by feature name. */
export interface LogRow {
  entity: string;
  eventTime: number;
  cluster: string;
  topic: string;
  partition: number;
  offset: string;
  seq: number;
  /** JSON object text: feature name → the record's contribution (features it leaves alone are absent). */
  contributions: string;
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The qualified name of the log table. */
export function tableName(t: OfflineTable): string {
  return `${ident(t.schema)}.${ident(t.table)}`;
}

/** The partition holding one view's rows: `<table>_<view>` (a hash suffix when the view name is not a plain identifier or too long). */
export function partitionName(t: OfflineTable, view: string): string {
  const plain = /^[a-z0-9_]+$/.test(view) && t.table.length + view.length < 62;
  const suffix = plain ? view : `${view.replace(/[^a-z0-9_]/g, "_").slice(0, 40)}_${crypto.createHash("sha1").update(view).digest("hex").slice(0, 8)}`;
  return `${ident(t.schema)}.${ident(`${t.table}_${suffix}`.slice(0, 63))}`;
}

/** The DDL of the log table (idempotent). Columns and key: docs/feature-store.md. */
export function tableDdl(t: OfflineTable): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${ident(t.schema)}`,
    `CREATE TABLE IF NOT EXISTS ${tableName(t)} (
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
    ) PARTITION BY LIST (view)`,
  ];
}

/** Rows from which a write is split over two connections. */
const SPLIT_FROM = 2_000;

/** One value of a COPY text-format row: backslash, tab, newline and carriage return escaped. */
function copyText(v: string): string {
  return /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r")) : v;
}

/**
 * `COPY ... FROM STDIN` of one prepared text payload through a pg client (node-pg's
 * submittable protocol: the COPY statement, then the data as one CopyData message and
 * CopyDone). The statement is atomic: a unique violation leaves nothing of it.
 */
class CopyIn {
  callback?: (err: Error | null) => void;
  private failed = false;
  private readonly text: string;
  private readonly data: Buffer;
  constructor(text: string, data: Buffer) {
    this.text = text;
    this.data = data;
  }
  submit(connection: { query(text: string): void }): void {
    connection.query(this.text);
  }
  handleCopyInResponse(connection: { sendCopyFromChunk(b: Buffer): void; endCopyFrom(): void }): void {
    connection.sendCopyFromChunk(this.data);
    connection.endCopyFrom();
  }
  handleError(err: Error): void {
    // pg drops the active query on an error: the answer ends here, not at ReadyForQuery
    this.failed = true;
    this.callback?.(err);
  }
  handleReadyForQuery(): void {
    if (!this.failed) this.callback?.(null);
  }
  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
}

/** Errors that mean "PostgreSQL is not there right now" rather than "this row is wrong". */
function isOutage(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (/^(08|57P|53)/.test(code) || /^E[A-Z]+$/.test(code))) return true;
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|timeout exceeded when trying to connect|connection is not open/i.test(errorMessage(err));
}

/**
 * Creates the log table and the partitions of `views` when missing. Workers that start
 * together serialise on an advisory lock, so none sees another's half-made partition.
 */
export async function ensureLogTable(client: pg.ClientBase, t: OfflineTable, views: readonly string[]): Promise<void> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`streamfleet feature log ${t.schema}.${t.table}`]);
    for (const sql of tableDdl(t)) await client.query(sql);
    for (const v of views) {
      await client.query(`CREATE TABLE IF NOT EXISTS ${partitionName(t, v)} PARTITION OF ${tableName(t)} FOR VALUES IN (${pg.escapeLiteral(v)})`);
    }
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/**
 * Writes log rows of views to one PostgreSQL database: a `COPY` into the view's partition, and
 * only when that meets a row already there (a replay: unique violation, nothing of the COPY
 * kept) the same rows again as a multi-row INSERT (arrays unnested server-side, so no parameter
 * limit) with ON CONFLICT DO NOTHING. From 2,000 rows on, a call's
 * rows go in two halves at once on the pool's two connections: the INSERT is PostgreSQL-bound,
 * and two backends took 10,000 rows in 112 ms against 182 ms for one (BENCHMARKS.md). Each row
 * is idempotent on its own, so the halves need no common transaction.
 */
export class OfflineLogWriter {
  private readonly pool: pg.Pool;
  private readonly display: string;
  private readonly where: string;
  private readonly ready = new Set<string>();

  constructor(connections: Connections, connection: string, where: string) {
    const target = pgTarget(connections, connection);
    this.pool = new pg.Pool({ ...target.config, max: 2, connectionTimeoutMillis: 5_000 });
    this.pool.on("error", () => undefined); // an idle client that dies: the next query reports it
    this.display = target.display;
    this.where = where;
  }

  /** Makes sure the table and the partitions of `views` exist. */
  async prepare(t: OfflineTable, views: readonly string[]): Promise<void> {
    const key = `${t.schema}.${t.table}`;
    const missing = views.filter((v) => !this.ready.has(`${key}\u0000${v}`));
    if (missing.length === 0) return;
    await this.guard(async () => {
      const client = await this.pool.connect();
      try {
        await ensureLogTable(client, t, missing);
      } finally {
        client.release();
      }
    });
    for (const v of missing) this.ready.add(`${key}\u0000${v}`);
  }

  /** Records rows of one view; a row already there (a replay) is left as it is. */
  async write(t: OfflineTable, view: string, rows: readonly LogRow[]): Promise<void> {
    if (rows.length >= SPLIT_FROM) {
      const half = rows.length >> 1;
      await Promise.all([this.insert(t, view, rows.slice(0, half)), this.insert(t, view, rows.slice(half))]);
    } else await this.insert(t, view, rows);
  }

  private async insert(t: OfflineTable, view: string, rows: readonly LogRow[]): Promise<void> {
    if (rows.length === 0) return;
    // COPY: no plan, no arrays, no conflict check per row — about half the server time of the INSERT below
    let text = "";
    const v = copyText(view);
    for (const r of rows) text += `${v}\t${copyText(r.entity)}\t${r.eventTime}\t${copyText(r.cluster)}\t${copyText(r.topic)}\t${r.partition}\t${r.offset}\t${r.seq}\t${copyText(r.contributions)}\n`;
    const copy = `COPY ${partitionName(t, view)} (view, entity, event_time, cluster, topic, partition, "offset", seq, contributions) FROM STDIN`;
    const copied = await this.guard(async () => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await new Promise<void>((resolve, reject) => void client.query(new CopyIn(copy, Buffer.from(text)) as never, ((err: Error | null) => (err ? reject(err) : resolve())) as never));
        return true;
      } catch (err) {
        if ((err as { code?: unknown }).code === "23505") return false; // some row is there already: a replay
        broken = err as Error;
        throw err;
      } finally {
        client.release(broken && isOutage(broken) ? broken : undefined);
      }
    });
    if (copied) return;
    const cols: unknown[][] = [[], [], [], [], [], [], [], []];
    for (const r of rows) {
      cols[0]!.push(r.entity);
      cols[1]!.push(r.eventTime);
      cols[2]!.push(r.cluster);
      cols[3]!.push(r.topic);
      cols[4]!.push(r.partition);
      cols[5]!.push(r.offset);
      cols[6]!.push(r.seq);
      cols[7]!.push(r.contributions);
    }
    const sql = `INSERT INTO ${tableName(t)} (view, entity, event_time, cluster, topic, partition, "offset", seq, contributions)
      SELECT $1, e, t, c, tp, p, o, s, j::jsonb FROM unnest($2::text[], $3::int8[], $4::text[], $5::text[], $6::int4[], $7::int8[], $8::int4[], $9::text[]) AS u(e, t, c, tp, p, o, s, j)
      ON CONFLICT DO NOTHING`;
    await this.guard(() => this.pool.query(sql, [view, ...cols]));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isOutage(err)) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `the offline feature log's PostgreSQL (${this.display}) is unreachable: ${errorMessage(err)}; the batch is retried`, { where: this.where, cause: err });
      throw new SfError("SF_ERR_FEATURES_OFFLINE_LOG", `the offline feature log at ${this.display} refused a write: ${errorMessage(err)}`, { where: this.where, cause: err });
    }
  }
}
