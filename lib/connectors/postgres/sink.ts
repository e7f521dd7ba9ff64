import pg from "pg";
import { readAvsc } from "../../codecs/avro.ts";
import { SfError, errorMessage } from "../../errors.ts";
import type { ComponentContext, RecordFailure, Sink, StreamRecord } from "../../runtime/contracts.ts";
import { compileValue } from "../../topology/template.ts";
import type { PostgresSinkConfig } from "./config.ts";
import { pgSecurityError, pgTarget } from "./connection.ts";
import type { PgTarget } from "./connection.ts";
import { convert } from "./convert.ts";
import { columnsFromAvro } from "./schema-from-avro.ts";
import type { Column } from "./schema-from-avro.ts";
import { InsertStatements, ensureTable, tableRef } from "./table.ts";
import type { TableRef } from "./table.ts";

const RECORD_ID = "record_id";
/** Errors of the server or the socket that mean "the database is not there right now". */
const NETWORK = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|Connection terminated|timeout exceeded when trying to connect|connection is not open/i;

function isOutage(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && /^(08|57P|53)/.test(code)) return true;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return true;
  return NETWORK.test(errorMessage(err));
}

/** Data exceptions (22) and integrity violations (23): the row, not the database, is wrong. */
function isRowError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^(22|23)/.test(code);
}

/** The table's columns: the Avro schema's, then explicit ones, then `record_id` when it is the key. */
export function resolveColumns(config: PostgresSinkConfig, baseDir: string): Column[] {
  const columns: Column[] = config.schema ? columnsFromAvro(JSON.parse(readAvsc(config.schema, baseDir).text)) : [];
  for (const c of config.columns ?? []) {
    const at = columns.findIndex((x) => x.name === c.name);
    const col = { name: c.name, type: c.type, nullable: c.nullable, path: c.value ?? `{${c.name}}` };
    if (at >= 0) columns[at] = col;
    else columns.push(col);
  }
  if (!config.key && !columns.some((c) => c.name === RECORD_ID)) columns.unshift({ name: RECORD_ID, type: "text", nullable: false, path: "{$id}" });
  return columns;
}

/**
 * The `postgres` sink: multi-row parameterised INSERT ... ON CONFLICT DO NOTHING on a
 * unique record key, chunked under the parameter limit. Values are checked against the
 * column types first; a row the database still refuses is isolated by per-row inserts.
 */
export class PostgresSink implements Sink {
  readonly name: string;
  private readonly config: PostgresSinkConfig;
  private readonly ctx: ComponentContext;
  private readonly target: PgTarget;
  private readonly ref: TableRef;
  private readonly columns: Column[];
  private readonly getters: ((r: StreamRecord) => unknown)[];
  private readonly key: string[];
  private readonly inserts: InsertStatements;
  private pool: pg.Pool | undefined;

  constructor(config: PostgresSinkConfig, ctx: ComponentContext) {
    this.name = ctx.component;
    this.config = config;
    this.ctx = ctx;
    this.target = pgTarget(ctx.connections, config.connection);
    const [qualifier, bare] = config.table.includes(".") ? config.table.split(".") : [undefined, config.table];
    this.ref = tableRef(config.pg_schema ?? qualifier ?? "public", bare!);
    this.columns = resolveColumns(config, ctx.baseDir);
    this.getters = this.columns.map((c) => compileValue(c.path));
    this.key = config.key ?? [RECORD_ID];
    for (const k of this.key) {
      if (!this.columns.some((c) => c.name === k)) throw new SfError("SF_ERR_TOPOLOGY_INVALID", `postgres sink ${this.name}: key column "${k}" is not a column of ${config.table}`);
    }
    this.inserts = new InsertStatements(this.ref, this.columns);
  }

  async open(): Promise<void> {
    this.pool ??= new pg.Pool({ ...this.target.config, max: this.config.pool_size, connectionTimeoutMillis: 5_000 });
    // Idle clients that die (server restart) emit here; the next query reports the outage.
    this.pool.on("error", () => {});
    let client: pg.PoolClient | undefined;
    if (!this.config.create) {
      // One login at start: refused credentials or an untrusted certificate stop the worker
      // here; a database that is down is left to the writes, which retry.
      try {
        client = await this.pool.connect();
      } catch (err) {
        const security = this.securityAtStart(err);
        if (security) throw security;
      } finally {
        client?.release();
      }
      return;
    }
    try {
      client = await this.pool.connect();
      const added = await ensureTable(client, this.ref, this.columns, this.key);
      if (added.length) this.ctx.logger.info({ sink: this.name, table: `${this.ref.schema}.${this.ref.table}`, added }, "postgres table columns added");
    } catch (err) {
      throw this.securityAtStart(err) ?? this.mapError(err, "preparing the table");
    } finally {
      client?.release();
    }
  }

  async write(records: StreamRecord[]): Promise<{ failed?: RecordFailure[] } | void> {
    if (!this.pool) await this.open();
    const failed: RecordFailure[] = [];
    const good: StreamRecord[] = [];
    const params: unknown[] = [];
    for (const r of records) {
      const row = this.row(r);
      if (typeof row === "string") failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `record ${r.id} does not fit table ${this.config.table}: ${row}`, { where: this.name }) });
      else {
        good.push(r);
        for (const v of row) params.push(v);
      }
    }
    const width = this.columns.length;
    const step = this.inserts.maxRows;
    for (let start = 0; start < good.length; start += step) {
      const rows = Math.min(step, good.length - start);
      const chunk = good.length <= step ? params : params.slice(start * width, (start + rows) * width);
      try {
        await this.pool!.query(this.inserts.sql(rows), chunk);
      } catch (err) {
        if (!isRowError(err)) throw this.mapError(err, "inserting a batch");
        failed.push(...(await this.rowByRow(good.slice(start, start + rows), chunk)));
      }
    }
    return failed.length ? { failed } : undefined;
  }

  /** The row's parameters, or why it does not fit. */
  private row(r: StreamRecord): unknown[] | string {
    const out: unknown[] = new Array(this.columns.length);
    for (let i = 0; i < this.columns.length; i++) {
      const c = this.columns[i]!;
      const v = this.getters[i]!(r);
      if (v === undefined || v === null) {
        if (!c.nullable) return `column ${c.name} is NOT NULL, the record has no value`;
        out[i] = null;
        continue;
      }
      const conv = convert(c.type, v);
      if (!conv.ok) return `column ${c.name} (${c.type}): ${conv.reason}`;
      out[i] = conv.value;
    }
    return out;
  }

  /** The database refused a chunk our checks let through: find the rows it refuses. */
  private async rowByRow(records: StreamRecord[], params: unknown[]): Promise<RecordFailure[]> {
    const width = this.columns.length;
    const failed: RecordFailure[] = [];
    for (let i = 0; i < records.length; i++) {
      try {
        await this.pool!.query(this.inserts.sql(1), params.slice(i * width, (i + 1) * width));
      } catch (err) {
        if (!isRowError(err)) throw this.mapError(err, "inserting a row");
        failed.push({ record: records[i]!, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `record ${records[i]!.id} was refused by table ${this.config.table}: ${errorMessage(err)}`, { cause: err, where: this.name }) });
      }
    }
    return failed;
  }

  /** At start a refused login, grant or certificate stops the worker: not retried. */
  private securityAtStart(err: unknown): SfError | undefined {
    const security = pgSecurityError(err, this.target);
    return security && new SfError(security.code, security.message, { cause: err, where: this.name });
  }

  private mapError(err: unknown, doing: string): SfError {
    // Past a successful start (a password or grant changed on the server), the partition
    // pauses and retries with this message rather than dead-letter every record.
    const security = pgSecurityError(err, this.target);
    if (security) return new SfError(security.code, `${security.message}; the batch is retried`, { cause: err, where: this.name, retriable: true });
    if (isOutage(err)) return new SfError("SF_ERR_SINK_NOT_CONNECTED", `PostgreSQL at ${this.target.display} (connection "${this.config.connection}") is unreachable while ${doing}: ${errorMessage(err)}; the batch is retried`, { cause: err, where: this.name });
    return new SfError("SF_ERR_SINK_REJECTED", `PostgreSQL refused ${doing} for table ${this.config.table}: ${errorMessage(err)}; the batch is retried`, { cause: err, where: this.name });
  }

  async health(): Promise<void> {
    await this.pool?.query("SELECT 1");
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end().catch(() => {});
  }
}

/** Creates a `postgres` sink (its spec, in index.ts, loads this file the first time a topology needs one). */
export function createPostgresSink(config: PostgresSinkConfig, ctx: ComponentContext): Sink {
  return new PostgresSink(config, ctx);
}
