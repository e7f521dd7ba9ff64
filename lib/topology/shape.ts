import type avro from "avsc";
import type { AvroType } from "../codecs/avro.ts";

/**
 * What `validate` knows of a record value at one point of a topology: the fields a template
 * or field path may name. `undefined` means nothing is known (no local schema, or after a
 * transform): every path is accepted there.
 */
export interface ValueShape {
  /** For messages, e.g. "record shop.Order" or "the output of steps[1].map". */
  readonly describe: string;
  /** The value's fields; absent for a value that has none (a string, a number). */
  readonly fields?: ReadonlyMap<string, ValueShape | undefined>;
}

interface AvroLike extends avro.Type {
  fields?: { name: string; type: AvroType }[];
  types?: AvroType[];
  underlyingType?: AvroType;
}

/** The shape of values of an Avro type (records by field; maps and arrays accept any path). */
export function shapeOfAvro(type: AvroType, seen = new Map<AvroType, ValueShape | undefined>()): ValueShape | undefined {
  if (seen.has(type)) return seen.get(type);
  const t = type as AvroLike;
  if (t.typeName === "record" || t.typeName === "error") {
    const fields = new Map<string, ValueShape | undefined>();
    const shape: ValueShape = { describe: `record ${t.name}`, fields };
    seen.set(type, shape); // before the fields: a recursive record names itself
    for (const f of t.fields!) fields.set(f.name, shapeOfAvro(f.type, seen));
    return shape;
  }
  if (t.typeName.startsWith("union")) {
    const branches = t.types!.filter((b) => b.typeName !== "null");
    if (branches.length === 1) return shapeOfAvro(branches[0]!, seen);
    return branches.some((b) => b.typeName === "record" || b.typeName === "map" || b.typeName === "array") ? undefined : { describe: `union of ${branches.map((b) => b.typeName).join(", ")}` };
  }
  if (t.typeName.startsWith("logical")) return { describe: t.typeName.slice("logical:".length) };
  if (t.typeName === "map" || t.typeName === "array") return undefined;
  return { describe: t.name ? `${t.typeName} ${t.name}` : t.typeName };
}

/** The shape at a dotted path (undefined when unknown or absent). */
export function shapeAt(shape: ValueShape | undefined, path: readonly string[]): ValueShape | undefined {
  let cur = shape;
  for (const part of path) cur = cur?.fields?.get(part);
  return cur;
}

/** What was expected where a dotted path leaves the shape's fields ("expected a field of ..."); undefined when it may be there. */
export function pathProblem(shape: ValueShape | undefined, path: readonly string[]): string | undefined {
  let cur = shape;
  for (let i = 0; i < path.length && cur; i++) {
    const at = i === 0 ? "the value" : path.slice(0, i).join(".");
    if (!cur.fields) return `expected a path that stops at ${at} (${cur.describe}: it has no fields)`;
    if (!cur.fields.has(path[i]!)) return `expected a field of ${at} (${cur.describe}: ${[...cur.fields.keys()].join(", ") || "no fields"})`;
    cur = cur.fields.get(path[i]!);
  }
  return undefined;
}

/** A shape with more fields (a step that adds `into`, a map that merges). */
export function withFields(shape: ValueShape | undefined, describe: string, added: Iterable<[string, ValueShape | undefined]>): ValueShape | undefined {
  if (!shape?.fields) return undefined;
  return { describe, fields: new Map([...shape.fields, ...added]) };
}
