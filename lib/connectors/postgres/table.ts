import type pg from "pg";
import type { Column } from "./schema-from-avro.ts";

/** Quotes an identifier (names are validated by the config schema; quoting keeps case). */
export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export interface TableRef {
  schema: string;
  table: string;
  /** `"schema"."table"`, ready for SQL. */
  qualified: string;
}

export function tableRef(schema: string, table: string): TableRef {
  return { schema, table, qualified: `${ident(schema)}.${ident(table)}` };
}

function columnDdl(c: Column, forceNullable: boolean): string {
  return `${ident(c.name)} ${c.type}${c.nullable || forceNullable ? "" : " NOT NULL"}`;
}

/**
 * Creates the schema and table when missing, adds any column the table lacks (always
 * nullable: existing rows have no value), and the unique index on the key that makes
 * `ON CONFLICT DO NOTHING` drop replays. An advisory lock serialises workers that open
 * the same table at once (concurrent CREATE TABLE IF NOT EXISTS can still collide).
 */
export async function ensureTable(client: pg.PoolClient, ref: TableRef, columns: readonly Column[], key: readonly string[]): Promise<string[]> {
  const added: string[] = [];
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`streamfleet:${ref.schema}.${ref.table}`]);
    if (ref.schema !== "public") await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(ref.schema)}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${ref.qualified} (${columns.map((c) => columnDdl(c, false)).join(", ")})`);
    const { rows } = await client.query<{ column_name: string }>("SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2", [ref.schema, ref.table]);
    const existing = new Set(rows.map((r) => r.column_name));
    for (const c of columns) {
      if (existing.has(c.name)) continue;
      await client.query(`ALTER TABLE ${ref.qualified} ADD COLUMN IF NOT EXISTS ${columnDdl(c, true)}`);
      added.push(c.name);
    }
    const index = `${ref.table}_sf_key`.slice(0, 63);
    await client.query(`CREATE UNIQUE INDEX IF NOT EXISTS ${ident(index)} ON ${ref.qualified} (${key.map(ident).join(", ")})`);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  }
  return added;
}

/** The parameter limit of one PostgreSQL statement (the wire protocol's Int16 count). */
export const MAX_PARAMS = 65_535;

/** `INSERT ... VALUES ($1,..),(..) ON CONFLICT DO NOTHING` for `rows` rows, cached by size. */
export class InsertStatements {
  private readonly head: string;
  private readonly width: number;
  private readonly cache = new Map<number, string>();

  constructor(ref: TableRef, columns: readonly Column[]) {
    this.head = `INSERT INTO ${ref.qualified} (${columns.map((c) => ident(c.name)).join(", ")}) VALUES `;
    this.width = columns.length;
  }

  /** Rows per statement that stay under the parameter limit. */
  get maxRows(): number {
    return Math.floor(MAX_PARAMS / this.width);
  }

  sql(rows: number): string {
    let s = this.cache.get(rows);
    if (s === undefined) {
      const tuples: string[] = new Array(rows);
      for (let r = 0, p = 1; r < rows; r++) {
        const slots: string[] = new Array(this.width);
        for (let c = 0; c < this.width; c++) slots[c] = `$${p++}`;
        tuples[r] = `(${slots.join(",")})`;
      }
      s = `${this.head}${tuples.join(",")} ON CONFLICT DO NOTHING`;
      if (this.cache.size < 64) this.cache.set(rows, s);
    }
    return s;
  }
}
