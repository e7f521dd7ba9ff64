import type { ColumnType } from "./config.ts";

/** A value ready for a query parameter, or why it does not fit its column. */
export type Converted = { ok: true; value: unknown } | { ok: false; reason: string };

const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NUMERIC = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

const ok = (value: unknown): Converted => ({ ok: true, value });
const bad = (reason: string): Converted => ({ ok: false, reason });
const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : typeof v === "bigint" ? `${v}n` : typeof v === "object" ? (Buffer.isBuffer(v) ? "bytes" : "an object") : String(v));

/**
 * Checks a value against its column type and converts it to what pg sends, so a record
 * that cannot fit is reported on its own instead of failing the whole multi-row insert.
 * Avro's encodings are accepted: timestamp-millis numbers, date as days since the epoch.
 */
export function convert(type: ColumnType, v: unknown): Converted {
  switch (type) {
    case "text":
      if (typeof v !== "string") return bad(`expected a string, got ${show(v)}`);
      // PostgreSQL text cannot hold NUL; report it rather than alter the data.
      return v.includes("\u0000") ? bad("text contains a NUL character, which PostgreSQL cannot store") : ok(v);
    case "integer":
      return typeof v === "number" && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX ? ok(v) : bad(`expected a 32-bit integer, got ${show(v)}`);
    case "bigint":
      if (typeof v === "bigint") return ok(v.toString());
      if (typeof v === "number" && Number.isSafeInteger(v)) return ok(v);
      return typeof v === "string" && /^-?\d{1,19}$/.test(v) ? ok(v) : bad(`expected a 64-bit integer, got ${show(v)}`);
    case "real":
    case "double precision":
      return typeof v === "number" ? ok(v) : bad(`expected a number, got ${show(v)}`);
    case "numeric":
      if (typeof v === "number" && Number.isFinite(v)) return ok(v);
      return typeof v === "string" && NUMERIC.test(v) ? ok(v) : bad(`expected a decimal number, got ${show(v)}`);
    case "boolean":
      return typeof v === "boolean" ? ok(v) : bad(`expected a boolean, got ${show(v)}`);
    case "bytea":
      return Buffer.isBuffer(v) ? ok(v) : typeof v === "string" ? ok(Buffer.from(v, "utf8")) : bad(`expected bytes, got ${show(v)}`);
    case "timestamptz": {
      const d = v instanceof Date ? v : typeof v === "number" ? new Date(v) : typeof v === "string" ? new Date(v) : undefined;
      return d && !Number.isNaN(d.getTime()) ? ok(d.toISOString()) : bad(`expected a timestamp (epoch ms or ISO text), got ${show(v)}`);
    }
    case "date":
      if (typeof v === "number" && Number.isInteger(v)) return ok(new Date(v * 86_400_000).toISOString().slice(0, 10));
      return typeof v === "string" && /^\d{4}-\d{2}-\d{2}$/.test(v) ? ok(v) : bad(`expected a date (days since epoch or YYYY-MM-DD), got ${show(v)}`);
    case "uuid":
      return typeof v === "string" && UUID.test(v) ? ok(v) : bad(`expected a UUID, got ${show(v)}`);
    case "jsonb":
      try {
        return ok(JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)));
      } catch (err) {
        return bad(`cannot be written as JSON: ${(err as Error).message}`);
      }
  }
}
