import { z } from "zod";
import { valueTemplate } from "../../topology/template-fields.ts";

/** Column types the sink knows how to check and convert. */
export const COLUMN_TYPES = ["text", "integer", "bigint", "real", "double precision", "numeric", "boolean", "bytea", "timestamptz", "date", "uuid", "jsonb"] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];

export const columnSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected a column name of letters, digits and '_'"),
    type: z.enum(COLUMN_TYPES).describe("PostgreSQL column type"),
    nullable: z.boolean().default(true).describe("false adds NOT NULL (records without the field go to the DLQ)"),
    value: valueTemplate(z.string()).optional().describe('Value template; default `{<name>}` (the value field of the same name). `{$id}`, `{$timestamp}`... read the envelope'),
  })
  .strict();

export const postgresSinkSchema = z
  .object({
    connection: z
      .string()
      .default("default")
      .describe("Connection name: `default` reads DATABASE_URL, any other DATABASE_URL__<NAME>; PGPASSWORD(_FILE), PGSSLMODE, PGSSLROOTCERT with the same suffix"),
    table: z.string().regex(/^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$/, "expected `table` or `schema.table`").describe("Target table, optionally schema-qualified"),
    pg_schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional().describe("PostgreSQL schema of the table (created if missing); overrides a qualified `table`; default `public`"),
    schema: z.string().min(1).optional().describe("A local .avsc (relative to the topology file) whose record fields become columns; a new optional field adds a column at open"),
    columns: z.array(columnSchema).optional().describe("Explicit columns (instead of, or added to, the Avro schema's)"),
    key: z
      .array(z.string())
      .min(1)
      .optional()
      .describe("Columns forming the unique record key; default `record_id`, a column holding the record id (topic/partition/offset@cluster). A replay of a key inserts nothing (ON CONFLICT DO NOTHING)"),
    create: z.boolean().default(true).describe("CREATE TABLE IF NOT EXISTS and add missing columns at open"),
    pool_size: z.number().int().min(1).max(50).default(4).describe("Connections in the pool"),
  })
  .strict()
  .refine((c) => c.schema !== undefined || (c.columns?.length ?? 0) > 0, { message: "expected `schema` (an .avsc) or `columns`", path: ["schema"] });

export type PostgresSinkConfig = z.infer<typeof postgresSinkSchema>;
export type ColumnConfig = z.infer<typeof columnSchema>;
