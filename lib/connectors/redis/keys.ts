import { compileGetter, compileTemplate, wholePlaceholder } from "../../topology/template.ts";
import type { StreamRecord } from "../../runtime/contracts.ts";

/** A key template that reports a missing placeholder instead of writing an empty key part. */
export type KeyFn = (record: StreamRecord) => string | undefined;

/** Compiles `complaint:{id}` once; returns undefined for a record where a placeholder is missing or empty. */
export function compileKey(source: string): KeyFn {
  const template = compileTemplate(source);
  const getters = template.fields.map(compileGetter);
  const whole = wholePlaceholder(source);
  if (whole !== undefined) {
    // "{userId}": the field itself is the key (read once, no string built for a string field)
    const get = getters[0]!;
    return (r) => {
      const v = get(r);
      if (v === undefined || v === null || v === "") return undefined;
      return typeof v === "string" ? v : template(r);
    };
  }
  return (r) => {
    for (const g of getters) {
      const v = g(r);
      if (v === undefined || v === null || v === "") return undefined;
    }
    return template(r);
  };
}

/**
 * A record's event time in epoch ms: from `field` (epoch ms number, numeric string, ISO
 * string or Date) or, without a field, the Kafka record timestamp. NaN when unreadable.
 */
export function compileEventTime(field: string | undefined): (r: StreamRecord) => number {
  if (!field) return (r) => r.origin.timestamp;
  const get = compileGetter(field);
  return (r) => {
    const v = get(r);
    if (typeof v === "number") return v;
    if (typeof v === "bigint") return Number(v);
    if (v instanceof Date) return v.getTime();
    if (typeof v === "string") return /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    return NaN;
  };
}
