/**
 * The offline feature log in PostgreSQL: what the `redis.features` sink records for views
 * with `offline`, and the tables both writers and readers agree on (docs/feature-store.md,
 * "Offline feature log"). One row per (view, entity, source record): the record's event
 * time, its source position and its contribution to each feature, as the sink's feature
 * algebra took it.
 *
 * Layout 2 (tables created since): the log table has no unique key. Replays add nothing
 * because of a high-water mark per (view, source cluster, topic, partition) in
 * `<table>__marks`: a write takes the marks of its partitions `FOR UPDATE`, leaves out the
 * rows at or below them, `COPY`s the rest and moves the marks, all in one transaction. A
 * partition's records reach the sink in offset order and a batch is written again until it
 * succeeds before the next one of that partition (the assumption the Redis watermarks make as
 * well), so the log holds every offset up to the mark and none above it. The log table's only
 * index is (entity, event_time), what point-in-time reads walk.
 *
 * Layout 1 (tables created before): primary key (view, entity, event_time, cluster, topic,
 * partition, offset, seq), rows go in by COPY and, when that meets a row already there, by
 * INSERT ... ON CONFLICT DO NOTHING. A table found in layout 1 keeps being written that way.
 *
 * The table is partitioned by view (LIST): a view's rows are one partition, so a read touches
 * one entity's history in event-time order and never another view's rows.
 */
import crypto from "node:crypto";
import pg from "pg";
import { SfError, errorMessage } from "../errors.ts";
import type { Connections } from "../runtime/connections.ts";
import { pgTarget } from "../connectors/postgres/connection.ts";
import { entityColumns } from "./offline-recorder.ts";
import type { ViewDef } from "./layout.ts";

/** Where a view's log is kept: what the view registry carries for readers. */
export interface OfflineTable {
  schema: string;
  table: string;
}

/** A view as the registry holds it, with the offline log it names (if any). */
export type LoggedViewDef = ViewDef & { offline?: OfflineTable };

/** The log table of a view; SF_ERR_FEATURES_BAD_REQUEST when the view keeps none. */
export function offlineTableOf(view: LoggedViewDef): OfflineTable {
  if (!view.offline) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `feature view "${view.name}" has no offline log (give it \`offline:\` in its redis.features sink)`, { where: "offline" });
  return view.offline;
}

/** The oid of the partition of `store` (as text); SF_ERR_FEATURES_BAD_REQUEST when nothing was logged for it yet. */
export async function partitionOid(client: pg.ClientBase, t: OfflineTable, store: string): Promise<string> {
  const partition = partitionName(t, store);
  const { rows } = await client.query<{ oid: string | null }>("SELECT to_regclass($1)::oid::text AS oid", [partition]);
  if (rows[0]!.oid === null) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `the offline log ${t.schema}.${t.table} has no partition for "${store}" (${partition}): nothing was logged for it yet`, { where: "view" });
  return rows[0]!.oid;
}

/** The layout of a log table (see ensureLogTable), undefined when it does not exist. */
export async function layoutOf(client: pg.ClientBase, t: OfflineTable): Promise<1 | 2 | undefined> {
  const { rows } = await client.query<{ oid: string | null; comment: string | null }>("SELECT to_regclass($1)::oid::text AS oid, obj_description(to_regclass($1), 'pg_class') AS comment", [tableName(t)]);
  return rows[0]!.oid === null ? undefined : rows[0]!.comment === COMMENT ? 2 : 1;
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

/** The layout version of the tables this code creates (docs/feature-store.md, "Offline feature log"). */
export const LAYOUT = 2;
const COMMENT = `streamfleet offline feature log, layout ${LAYOUT}`;

/** The high-water marks of a log table: `<table>__marks` (no view's partition can be named so: view names start with a letter). */
export function marksName(t: OfflineTable): string {
  return `${ident(t.schema)}.${ident(`${t.table}__marks`)}`;
}

/**
 * The tables of a log's snapshots (lib/features/snapshots.ts; docs/feature-store.md, "Snapshots"):
 * `<table>__snapshots` the folded features per (view, entity, through), `<table>__horizon` per
 * view the time up to which snapshots may be built and the fingerprint they were built with,
 * `<table>__stale` the late rows writers recorded at or before the horizon (per entity, the
 * event time from which its snapshots no longer hold).
 */
export function snapshotTables(t: OfflineTable): { snapshots: string; horizon: string; stale: string } {
  return { snapshots: ident2(t, "snapshots"), horizon: ident2(t, "horizon"), stale: ident2(t, "stale") };
}
const ident2 = (t: OfflineTable, what: string) => `${ident(t.schema)}.${ident(`${t.table}__${what}`)}`;

/** The DDL of a log's snapshot tables (idempotent: run each time a writer prepares a layout 2 table). */
export function snapshotDdl(t: OfflineTable): string[] {
  const { snapshots, horizon, stale } = snapshotTables(t);
  return [
    `CREATE TABLE IF NOT EXISTS ${snapshots} (
      view text NOT NULL,
      entity text COLLATE "C" NOT NULL,
      through bigint NOT NULL,
      state jsonb NOT NULL,
      PRIMARY KEY (view, entity, through)
    )`,
    `CREATE TABLE IF NOT EXISTS ${horizon} (
      view text PRIMARY KEY,
      through bigint NOT NULL,
      every bigint NOT NULL,
      fp text NOT NULL
    )`,
    `CREATE TABLE IF NOT EXISTS ${stale} (
      view text NOT NULL,
      entity text COLLATE "C" NOT NULL,
      event_time bigint NOT NULL
    )`,
    `CREATE INDEX IF NOT EXISTS ${ident(`${t.table}__stale_entity`)} ON ${stale} (view, entity)`,
  ];
}

/** The DDL of the log table, its index and its marks (idempotent; for a table that does not exist yet). Columns: docs/feature-store.md. */
export function tableDdl(t: OfflineTable): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${ident(t.schema)}`,
    `CREATE TABLE IF NOT EXISTS ${tableName(t)} (
      view text NOT NULL,
      entity text COLLATE "C" NOT NULL,
      event_time bigint NOT NULL,
      cluster text NOT NULL,
      topic text NOT NULL,
      partition integer NOT NULL,
      "offset" bigint NOT NULL,
      seq integer NOT NULL,
      contributions jsonb NOT NULL
    ) PARTITION BY LIST (view)`,
    // one index per partition (PostgreSQL creates it on each), what point-in-time reads walk; no unique key: the marks make writes
    // idempotent. entity compares bytewise ("C"): the index's inserts, the COPY's biggest cost, took 13 % less server time than
    // with the database's C.UTF-8 (BENCHMARKS.md, offline log on vs off); readers' `entity = <a text parameter>` takes the
    // column's collation, so the same SQL uses the index of tables made before, whose entity has the database's
    `CREATE INDEX IF NOT EXISTS ${ident(`${t.table}__entity_time`)} ON ${tableName(t)} (entity, event_time)`,
    `CREATE TABLE IF NOT EXISTS ${marksName(t)} (
      view text NOT NULL,
      cluster text NOT NULL,
      topic text NOT NULL,
      partition integer NOT NULL,
      "offset" bigint NOT NULL,
      PRIMARY KEY (view, cluster, topic, partition)
    )`,
    `COMMENT ON TABLE ${tableName(t)} IS ${pg.escapeLiteral(COMMENT)}`,
  ];
}

/** How the writer reads a row's entity and event time, whatever form the row has. */
export interface RowKey<R> {
  entity(r: R): string;
  time(r: R): number;
}

const LOG_ROW_KEY: RowKey<LogRow> = { entity: (r) => r.entity, time: (r) => r.eventTime };

/**
 * The statement recording a write's late rows — event time at or before the view's snapshot
 * horizon — per entity its earliest such time (empty when there are none): the entity's
 * snapshots from then on no longer hold, and readers leave them alone until the next build.
 */
function lateRows<R>(t: OfflineTable, view: string, rows: readonly R[], key: RowKey<R>, horizon: number | null): string {
  if (horizon === null) return "";
  const late = new Map<string, number>();
  for (const r of rows) {
    const at = key.time(r);
    if (at > horizon) continue;
    const e = key.entity(r);
    const was = late.get(e);
    if (was === undefined || at < was) late.set(e, at);
  }
  if (late.size === 0) return "";
  const v = pg.escapeLiteral(view);
  return `INSERT INTO ${snapshotTables(t).stale} (view, entity, event_time) VALUES ${[...late].map(([e, at]) => `(${v}, ${pg.escapeLiteral(e)}, ${Math.floor(at)})`).join(", ")}; `;
}

/** Rows from which a write is split over two connections. */
const SPLIT_FROM = 2_000;

/** One value of a COPY text-format row: backslash, tab, newline and carriage return escaped. */
function copyText(v: string): string {
  return /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r")) : v;
}

/** What CopyIn uses of node-pg's connection. */
interface CopyConnection {
  query(text: string): void;
  sendCopyFromChunk(b: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(msg: string): void;
}

/**
 * `COPY ... FROM STDIN` through a pg client (node-pg's submittable protocol): the COPY
 * statement, then, once PostgreSQL is ready for the data, `produce` writes it as CopyData
 * messages (each chunk as it fills, so the server parses the first rows while the last are
 * being written) and CopyDone. The statement is atomic: an error leaves nothing of it. An
 * error thrown by `produce` is sent as CopyFail (the server ends the COPY) and reported.
 */
class CopyIn {
  callback?: (err: Error | null) => void;
  private failed = false;
  private produceError: Error | undefined;
  private readonly text: string;
  private readonly produce: (send: (chunk: Buffer) => void) => void;
  private readonly eager: boolean;
  /**
   * `eager`: the data follows the statement at once, without waiting for PostgreSQL's
   * CopyInResponse (so no event-loop turn, which a busy sink delays by tens of ms): the server
   * reads it once it reaches the COPY, and if the statement fails before, it ignores CopyData,
   * CopyDone and CopyFail that arrive outside a COPY (the protocol says so).
   */
  constructor(text: string, produce: (send: (chunk: Buffer) => void) => void, eager = false) {
    this.text = text;
    this.produce = produce;
    this.eager = eager;
  }
  submit(connection: CopyConnection): void {
    connection.query(this.text);
    if (this.eager) this.send(connection);
  }
  handleCopyInResponse(connection: CopyConnection): void {
    if (!this.eager) this.send(connection);
  }
  private send(connection: CopyConnection): void {
    try {
      this.produce((chunk) => connection.sendCopyFromChunk(chunk));
    } catch (err) {
      this.produceError = err instanceof Error ? err : new Error(errorMessage(err));
      connection.sendCopyFail(`the writer could not encode a row: ${this.produceError.message}`);
      return;
    }
    connection.endCopyFrom();
  }
  handleError(err: Error): void {
    // pg drops the active query on an error: the answer ends here, not at ReadyForQuery
    this.failed = true;
    this.callback?.(this.produceError ?? err);
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
 * Creates the log table (layout 2) and the partitions of `views` when missing, and answers the
 * table's layout: 2, or 1 for a table an earlier version created (a primary key, no marks), which
 * is left as it is. Workers that start together serialise on an advisory lock, so none sees
 * another's half-made partition.
 */
export async function ensureLogTable(client: pg.ClientBase, t: OfflineTable, views: readonly string[]): Promise<1 | 2> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`streamfleet feature log ${t.schema}.${t.table}`]);
    const found = await layoutOf(client, t);
    const layout = found ?? 2;
    if (found === undefined) for (const sql of tableDdl(t)) await client.query(sql);
    if (layout === 2) for (const sql of snapshotDdl(t)) await client.query(sql);
    for (const v of views) {
      await client.query(`CREATE TABLE IF NOT EXISTS ${partitionName(t, v)} PARTITION OF ${tableName(t)} FOR VALUES IN (${pg.escapeLiteral(v)})`);
    }
    await client.query("COMMIT");
    return layout;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

/** A Kafka offset as PostgreSQL's bigint text: a decimal integer, no leading zeros. */
function offsetText(o: string): string {
  if (/^(0|-?[1-9][0-9]{0,18})$/.test(o)) return o;
  if (/^-?[0-9]+$/.test(o)) return BigInt(o).toString();
  throw new SfError("SF_ERR_FEATURES_OFFLINE_LOG", `source offset ${JSON.stringify(o)} is not an integer; the offline log keys rows by offset`);
}

/** Compares two offsets as offsetText gives them. */
function compareOffsets(a: string, b: string): number {
  const na = a.charCodeAt(0) === 45;
  if (na !== (b.charCodeAt(0) === 45)) return na ? -1 : 1;
  const c = a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
  return na ? -c : c;
}

/** Where a row comes from: what the writer groups rows by and leaves replays out by. */
export interface SourcePosition {
  cluster: string;
  topic: string;
  partition: number;
  offset: string;
}

/** A write's rows of one source partition, with the offsets they span. */
interface SourceGroup<R> {
  cluster: string;
  topic: string;
  partition: number;
  rows: R[];
  offsets: string[];
  min: string;
  max: string;
}

/** Rows grouped by source partition (in the order they come), each row's offset as offsetText gives it. */
function sourceGroups<R extends SourcePosition>(rows: readonly R[]): SourceGroup<R>[] {
  const groups = new Map<string, SourceGroup<R>>();
  let last: SourceGroup<R> | undefined;
  for (const r of rows) {
    const offset = offsetText(r.offset);
    let g = last !== undefined && last.partition === r.partition && last.topic === r.topic && last.cluster === r.cluster ? last : undefined;
    if (g === undefined) {
      const key = `${r.cluster}\u0000${r.topic}\u0000${r.partition}`;
      g = groups.get(key);
      if (g === undefined) groups.set(key, (g = { cluster: r.cluster, topic: r.topic, partition: r.partition, rows: [], offsets: [], min: offset, max: offset }));
      last = g;
    }
    g.rows.push(r);
    g.offsets.push(offset);
    if (compareOffsets(offset, g.min) < 0) g.min = offset;
    if (compareOffsets(offset, g.max) > 0) g.max = offset;
  }
  return [...groups.values()];
}

/** Bytes handed to the socket at a time while a COPY payload is written. */
const CHUNK = 1 << 16;

/**
 * A COPY text-format payload written byte by byte into one scratch buffer, handed on in
 * chunks of about 64 KB: no string per row or per value, numbers written as digits, strings
 * copied character by character while they need no escape (otherwise escaped as
 * `copyText` and JSON.stringify do). The recorder with it: 16-18 ms of Node CPU per 10,000
 * rows of 6 features (COPY and commit included), against 32-40 ms with a LogRow, a JSON text
 * and a line string per row (BENCHMARKS.md, "offline log on vs off", 2026-12-05).
 */
export class CopyData {
  private buf = Buffer.allocUnsafe(CHUNK + 4096);
  private pos = 0;
  private out: ((chunk: Buffer) => void) | undefined;

  /** Starts a payload whose chunks go to `out`. */
  start(out: (chunk: Buffer) => void): void {
    this.pos = 0;
    this.out = out;
  }

  /** Ends a row: hands the chunk on once it is full. */
  endRow(): void {
    if (this.pos >= CHUNK) this.flush();
  }

  /** Hands on what is left. */
  flush(): void {
    if (this.pos > 0) this.out!(this.buf.subarray(0, this.pos));
    this.pos = 0; // the receiver copied it (node-pg's CopyData message)
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** One byte (an ASCII character code). */
  byte(c: number): void {
    this.ensure(1);
    this.buf[this.pos++] = c;
  }

  /** Bytes as they are (prepared, already escaped text). */
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < b.length; i++) buf[p++] = b[i]!;
    this.pos = p;
  }

  /** A string known to be ASCII with nothing to escape (digits, JSON numbers). */
  ascii(s: string): void {
    this.ensure(s.length);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** A number as PostgreSQL reads it: an integer's digits, else JavaScript's (and JSON's) text of it. */
  int(n: number): void {
    if (!Number.isSafeInteger(n)) return this.ascii(String(n));
    this.ensure(17);
    const buf = this.buf;
    let p = this.pos;
    if (n < 0) {
      buf[p++] = 45;
      n = -n;
    }
    if (n < 100_000_000) {
      this.pos = small(buf, p, n);
      return;
    }
    // an event time in ms and the like: the digits above the lowest 8, then those 8 (int32 arithmetic for both)
    const hi = Math.floor(n / 100_000_000);
    let lo = n - hi * 100_000_000;
    p = small(buf, p, hi);
    for (let k = p + 7; k >= p; k--) {
      const q = (lo / 10) | 0;
      buf[k] = 48 + lo - q * 10;
      lo = q;
    }
    this.pos = p + 8;
  }

  /** A text value, escaped for COPY (backslash, tab, newline, carriage return). */
  text(s: string): void {
    const n = s.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80 || c === 92 || c < 32) return this.utf8(copyText(s));
      buf[p++] = c;
    }
    this.pos = p;
  }

  /** A JSON value as JSON.stringify writes it (undefined and functions: null), escaped for COPY. */
  json(v: unknown): void {
    if (typeof v === "number") return Number.isFinite(v) ? this.int(v) : this.ascii("null");
    if (typeof v === "string") return this.jsonString(v);
    if (v === null) return this.ascii("null");
    if (typeof v === "boolean") return this.ascii(v ? "true" : "false");
    this.utf8(copyText(JSON.stringify(v) ?? "null"));
  }

  /** A JSON string literal, escaped for COPY. */
  private jsonString(s: string): void {
    const n = s.length;
    this.ensure(n + 2);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = 34;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80 || c === 92 || c === 34 || c < 32) return this.utf8(copyText(JSON.stringify(s)));
      buf[p++] = c;
    }
    buf[p++] = 34;
    this.pos = p;
  }

  private utf8(s: string): void {
    this.ensure(s.length * 3);
    this.pos += this.buf.write(s, this.pos);
  }
}

/** Writes the digits of 0 <= n < 100,000,000 at p; answers the position after them. */
function small(buf: Buffer, p: number, n: number): number {
  const len = n < 10 ? 1 : n < 100 ? 2 : n < 1_000 ? 3 : n < 10_000 ? 4 : n < 100_000 ? 5 : n < 1_000_000 ? 6 : n < 10_000_000 ? 7 : 8;
  for (let k = p + len - 1; k > p; k--) {
    const q = (n / 10) | 0;
    buf[k] = 48 + n - q * 10;
    n = q;
  }
  buf[p] = 48 + n;
  return p + len;
}

/** The one payload being written at a time: a payload is written from start to end without a pause. */
const scratch = new CopyData();

/** Writes one row's COPY columns after the offset: entity, event time, seq, contributions, and the line's end. */
export type RowEncoder<R> = (data: CopyData, row: R) => void;

/** The columns of the COPY, the source position first: a group of rows shares all of it but the offset. */
const COLUMNS = `(view, cluster, topic, partition, "offset", entity, event_time, seq, contributions)`;

/** The COPY text of a group's first columns: view, cluster, topic, partition, each followed by a tab. */
function groupPrefix(view: string, g: { cluster: string; topic: string; partition: number }): Uint8Array {
  return Buffer.from(`${copyText(view)}\t${copyText(g.cluster)}\t${copyText(g.topic)}\t${g.partition}\t`);
}

/** A LogRow's columns after the offset. */
const encodeLogRow: RowEncoder<LogRow> = (d, r) => {
  entityColumns(d, r.entity, r.eventTime, r.seq);
  d.text(r.contributions);
  d.byte(10);
};

/** What a COPY writes: per group, its prefix and the rows (with their offsets' text) from `from` on, or those above `above`. */
interface CopyGroup<R> {
  prefix: Uint8Array;
  rows: readonly R[];
  offsets: readonly string[];
  /** undefined: every row. */
  above?: string;
}

/** Runs one COPY ... FROM STDIN of the groups' rows on a client, written while it runs. */
function copyIn<R>(client: pg.PoolClient, statement: string, groups: readonly CopyGroup<R>[], encode: RowEncoder<R>, eager = false): Promise<void> {
  const produce = (send: (chunk: Buffer) => void) => {
    const d = scratch;
    d.start(send);
    for (const g of groups) {
      const { prefix, rows, offsets, above } = g;
      for (let i = 0; i < rows.length; i++) {
        if (above !== undefined && compareOffsets(offsets[i]!, above) <= 0) continue;
        d.raw(prefix);
        d.ascii(offsets[i]!);
        encode(d, rows[i]!);
        d.endRow();
      }
    }
    d.flush();
  };
  return new Promise<void>((resolve, reject) => void client.query(new CopyIn(statement, produce, eager) as never, ((err: Error | null) => (err ? reject(err) : resolve())) as never));
}

/**
 * Writes log rows of views to one PostgreSQL database.
 *
 * Layout 2: per call, one transaction on one connection — insert the marks of the rows' source
 * partitions when missing and take them `FOR UPDATE` (in key order, so two writers never wait
 * for each other in a cycle), leave out the rows at or below them, `COPY` the rest into the
 * view's partition, move the marks to the newest offset written, commit. A writer that lost a
 * partition and still writes it (a zombie), or two writers of one partition after a
 * rebalance, queue on the mark's row lock, and the second leaves out what the first wrote: a
 * replay adds nothing, whoever writes it, and a mark never moves back.
 *
 * Layout 1: a `COPY` into the view's partition, and only when that meets a row already there
 * (a replay: unique violation, nothing of the COPY kept) the same rows again as a multi-row
 * INSERT with ON CONFLICT DO NOTHING; from 2,000 rows on in two halves on the pool's two
 * connections.
 */
export class OfflineLogWriter {
  private readonly pool: pg.Pool;
  private readonly display: string;
  private readonly where: string;
  private readonly ready = new Set<string>();
  /** Layout per `schema.table`, as prepare found it. */
  private readonly layouts = new Map<string, 1 | 2>();

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
        this.layouts.set(key, await ensureLogTable(client, t, missing));
      } finally {
        client.release();
      }
    });
    for (const v of missing) this.ready.add(`${key}\u0000${v}`);
  }

  /** The layout of a prepared table. */
  layout(t: OfflineTable): 1 | 2 | undefined {
    return this.layouts.get(`${t.schema}.${t.table}`);
  }

  /** Records rows of one view; a row already there (a replay) is not written again. */
  async write(t: OfflineTable, view: string, rows: readonly LogRow[]): Promise<void> {
    return this.writeRows(t, view, rows, encodeLogRow, (r) => r, LOG_ROW_KEY);
  }

  /**
   * Records rows of one view in any form: `encode` writes a row's columns after its offset
   * straight into the COPY payload (no LogRow, no contributions text per row); `asLogRow` is
   * only called for a table in layout 1, whose replays go by INSERT.
   */
  async writeRows<R extends SourcePosition>(t: OfflineTable, view: string, rows: readonly R[], encode: RowEncoder<R>, asLogRow: (r: R) => LogRow, key: RowKey<R>): Promise<void> {
    if (rows.length === 0) return;
    if (this.layout(t) === 2) return this.guard(() => this.writeMarked(t, view, rows, encode, key));
    const logRows = rows.map(asLogRow);
    if (logRows.length >= SPLIT_FROM) {
      const half = logRows.length >> 1;
      await Promise.all([this.insert(t, view, logRows.slice(0, half)), this.insert(t, view, logRows.slice(half))]);
    } else await this.insert(t, view, logRows);
  }

  /**
   * Layout 2, in one transaction. First optimistically, as a batch after the last one written
   * is: BEGIN and a COPY of every row in one query string, the rows sent with it at once — so
   * PostgreSQL parses them while the sink goes on with Redis, instead of after two round trips
   * the busy event loop would delay — then the marks of the rows' source partitions, inserted
   * when missing and taken `FOR UPDATE` (in key order: two writers never wait for each other in
   * a cycle). All rows above their marks: move the marks, commit. Otherwise (a replay, or another
   * writer of the partition committed first) roll back and write again the careful way: marks
   * first, the rows at or below them left out, COPY, marks moved, commit.
   *
   * Either way the view's snapshot horizon is read once the partition is locked for writing (by
   * the COPY, or the careful path's LOCK), and rows at or before it are recorded as late in the
   * same transaction (lib/features/snapshots.ts: a snapshot build waits for the writes in flight
   * before it moves the horizon, so a write it cannot see always sees the new horizon).
   */
  private async writeMarked<R extends SourcePosition>(t: OfflineTable, view: string, rows: readonly R[], encode: RowEncoder<R>, key: RowKey<R>): Promise<void> {
    // key order, as the marks are locked (ORDER BY in lockMarks)
    const sources = sourceGroups(rows).sort((a, b) => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
    const copy = `COPY ${partitionName(t, view)} ${COLUMNS} FROM STDIN`;
    const client = this.unpark() ?? (await this.pool.connect());
    let broken: Error | undefined;
    try {
      const all = sources.map((g) => ({ prefix: groupPrefix(view, g), rows: g.rows, offsets: g.offsets }));
      await copyIn(client, `BEGIN; ${copy}`, all, encode, true);
      let { held, horizon } = await this.lockMarks(client, t, view, sources);
      if (sources.some((g) => compareOffsets(g.min, held(g)) <= 0)) {
        await client.query("ROLLBACK");
        this.counts.careful++;
        await client.query(`BEGIN; LOCK TABLE ${partitionName(t, view)} IN ROW EXCLUSIVE MODE`);
        ({ held, horizon } = await this.lockMarks(client, t, view, sources));
        const left: CopyGroup<R>[] = [];
        sources.forEach((g, i) => {
          const mark = held(g);
          if (compareOffsets(g.max, mark) > 0) left.push(compareOffsets(g.min, mark) > 0 ? all[i]! : { ...all[i]!, above: mark });
        });
        if (left.length > 0) await copyIn(client, copy, left, encode);
      } else this.counts.optimistic++;
      const moved = sources.filter((g) => compareOffsets(g.max, held(g)) > 0).map((g) => `(${pg.escapeLiteral(g.cluster)}, ${pg.escapeLiteral(g.topic)}, ${g.partition}, ${g.max}::int8)`);
      await client.query(
        lateRows(t, view, rows, key, horizon) +
        (moved.length === 0
          ? "COMMIT"
          : `UPDATE ${marksName(t)} m SET "offset" = greatest(m."offset", u.o) FROM (VALUES ${moved.join(", ")}) AS u(c, tp, p, o)
             WHERE m.view = ${pg.escapeLiteral(view)} AND m.cluster = u.c AND m.topic = u.tp AND m.partition = u.p; COMMIT`),
      );
    } catch (err) {
      // a connection that cannot even roll back is not given back to the pool
      if (!(await client.query("ROLLBACK").then(() => true, () => false))) broken = err instanceof Error ? err : new Error(errorMessage(err));
      throw err;
    } finally {
      if (broken) client.release(broken);
      else this.park(client);
    }
  }

  /** Inserts the marks of the sources when missing and locks them in key order; answers a source's mark, and the view's snapshot horizon (null: none). */
  private async lockMarks(client: pg.PoolClient, t: OfflineTable, view: string, sources: readonly SourceGroup<unknown>[]): Promise<{ held: (g: SourceGroup<unknown>) => string; horizon: number | null }> {
    const v = pg.escapeLiteral(view);
    const keys = sources.map((g) => `(${v}, ${pg.escapeLiteral(g.cluster)}, ${pg.escapeLiteral(g.topic)}, ${g.partition}`);
    const marks = marksName(t);
    const results = (await client.query(
      `INSERT INTO ${marks} (view, cluster, topic, partition, "offset") VALUES ${keys.map((k) => `${k}, -1)`).join(", ")} ON CONFLICT DO NOTHING;
       SELECT cluster, topic, partition, "offset"::text AS o FROM ${marks} WHERE (view, cluster, topic, partition) IN (${keys.map((k) => `${k})`).join(", ")})
       ORDER BY cluster, topic, partition FOR UPDATE;
       SELECT through::float8 AS through FROM ${snapshotTables(t).horizon} WHERE view = ${v}`,
    )) as unknown as pg.QueryResult<{ cluster: string; topic: string; partition: number; o: string; through: number }>[];
    const held = new Map(results[1]!.rows.map((m) => [`${m.cluster}\u0000${m.topic}\u0000${m.partition}`, m.o]));
    return { held: (g) => held.get(`${g.cluster}\u0000${g.topic}\u0000${g.partition}`) ?? "-1", horizon: results[2]!.rows[0]?.through ?? null };
  }

  /** Writes of layout 2 so far: all rows new (one round), or some at or below a mark (rolled back, written again leaving them out). */
  readonly counts = { optimistic: 0, careful: 0 };

  /**
   * Connections kept out of the pool between writes, so that the next write has one at hand
   * synchronously and its COPY leaves with the call. One that breaks while parked is dropped.
   */
  private readonly parked: { client: pg.PoolClient; onError: (err: Error) => void }[] = [];

  private park(client: pg.PoolClient): void {
    const onError = (err: Error) => {
      const i = this.parked.findIndex((p) => p.client === client);
      if (i >= 0) this.parked.splice(i, 1);
      client.removeListener("error", onError);
      client.release(err);
    };
    client.on("error", onError);
    this.parked.push({ client, onError });
  }

  private unpark(): pg.PoolClient | undefined {
    const p = this.parked.pop();
    p?.client.removeListener("error", p.onError);
    return p?.client;
  }

  private async insert(t: OfflineTable, view: string, rows: readonly LogRow[]): Promise<void> {
    if (rows.length === 0) return;
    // COPY: no plan, no arrays, no conflict check per row — about half the server time of the INSERT below
    const groups = sourceGroups(rows).map((g) => ({ prefix: groupPrefix(view, g), rows: g.rows, offsets: g.offsets }));
    const copy = `COPY ${partitionName(t, view)} ${COLUMNS} FROM STDIN`;
    const copied = await this.guard(async () => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await copyIn(client, copy, groups, encodeLogRow);
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
    for (let c = this.unpark(); c; c = this.unpark()) c.release();
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
