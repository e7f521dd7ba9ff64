import type { ColumnType } from "./config.ts";

/** A table column derived from an Avro field or declared in the config. */
export interface Column {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** Where the value comes from: a value template, `{<field>}` for a field of the value. */
  path: string;
}

type AvroSchema = string | { type: unknown; logicalType?: string; [k: string]: unknown } | unknown[];

/** The column type of one (non-null) Avro schema. */
function columnType(s: AvroSchema): ColumnType {
  if (typeof s === "string") {
    switch (s) {
      case "int":
        return "integer";
      case "long":
        return "bigint";
      case "float":
        return "real";
      case "double":
        return "double precision";
      case "boolean":
        return "boolean";
      case "string":
        return "text";
      case "bytes":
        return "bytea";
      default:
        return "jsonb";
    }
  }
  if (Array.isArray(s)) return "jsonb";
  switch (s.logicalType) {
    case "timestamp-millis":
    case "timestamp-micros":
      return "timestamptz";
    case "date":
      return "date";
    case "uuid":
      return "uuid";
    case "decimal":
      return "numeric";
  }
  if (s.type === "enum") return "text";
  if (typeof s.type === "string" && s.type !== "record" && s.type !== "array" && s.type !== "map" && s.type !== "fixed") return columnType(s.type);
  return "jsonb";
}

/**
 * Columns of an Avro record schema, one per field: `["null", T]` unions are nullable T,
 * other fields NOT NULL; records, arrays, maps and wider unions become jsonb.
 */
export function columnsFromAvro(parsed: unknown): Column[] {
  // The parsed JSON, not avsc's Type: avsc drops logical types it has no implementation for.
  const schema = parsed as { type: string; fields?: Array<{ name: string; type: AvroSchema }> };
  if (schema.type !== "record" || !schema.fields) throw new Error(`expected an Avro record schema, got ${schema.type}`);
  return schema.fields.map((f) => {
    let t = f.type;
    let nullable = false;
    if (Array.isArray(t) && t.includes("null")) {
      const rest = t.filter((b) => b !== "null");
      nullable = true;
      t = rest.length === 1 ? (rest[0] as AvroSchema) : rest;
    }
    return { name: f.name, type: columnType(t), nullable, path: `{${f.name}}` };
  });
}
