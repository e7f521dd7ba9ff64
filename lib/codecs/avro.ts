import fs from "node:fs";
import path from "node:path";
import avro from "avsc";
import { SfError } from "../errors.ts";

export type AvroType = avro.Type;

/** Parses an Avro schema (object or JSON text) into a type, once. */
export function avroType(schema: unknown, where: string): AvroType {
  try {
    const parsed = typeof schema === "string" ? (JSON.parse(schema) as avro.Schema) : (schema as avro.Schema);
    return avro.Type.forSchema(parsed, { wrapUnions: "auto" });
  } catch (err) {
    throw new SfError("SF_ERR_SCHEMA_NOT_FOUND", `${where} is not a valid Avro schema: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads a local .avsc file (path relative to baseDir). */
export function readAvsc(file: string, baseDir: string): { text: string; type: AvroType; path: string } {
  const full = path.resolve(baseDir, file);
  let text: string;
  try {
    text = fs.readFileSync(full, "utf8");
  } catch (err) {
    throw new SfError("SF_ERR_SCHEMA_NOT_FOUND", `schema file ${full} cannot be read`, { cause: err });
  }
  return { text, type: avroType(text, full), path: full };
}

/** Paths and reasons why a value does not match an Avro type (empty when it does). */
export function avroErrors(type: AvroType, value: unknown): string[] {
  const problems: string[] = [];
  type.isValid(value, {
    errorHook(pathParts, v, t) {
      problems.push(`${pathParts.join(".") || "(root)"}: expected ${describe(t)}, got ${JSON.stringify(v) ?? "undefined"}`);
    },
  });
  return problems;
}

function describe(t: avro.Type): string {
  const name = t.typeName;
  return t.name ? `${name} ${t.name}` : name;
}

/** Confluent wire format: magic 0, 4-byte schema id, Avro body. */
export function readSchemaId(buf: Buffer): number {
  if (buf.length < 5 || buf[0] !== 0) {
    throw new SfError("SF_ERR_DECODE_NO_MAGIC", `value does not start with the Avro wire-format magic byte 0 (first byte ${buf.length ? buf[0] : "none"}, ${buf.length} bytes)`);
  }
  return buf.readInt32BE(1);
}

export function frame(id: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0;
  out.writeInt32BE(id, 1);
  body.copy(out, 5);
  return out;
}
