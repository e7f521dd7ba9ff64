import type avro from "avsc";
import { SfError } from "../errors.ts";
import type { AvroType } from "./avro.ts";
import { avroType } from "./avro.ts";
import type { SchemaCodecs, SubjectVersion } from "./registry.ts";

/**
 * Can a consumer's reader schema read what a subject holds? Answered locally with avsc's
 * resolver against every registered version: the registry's own compatibility endpoint
 * answers by the subject's compatibility level (always "compatible" under NONE, and the
 * reverse question under FORWARD), so it cannot say whether a reader can read.
 */

/** Why `reader` cannot read data written with `writer`, naming the field; undefined when it can. */
export function unreadableReason(reader: AvroType, writer: AvroType): string | undefined {
  const failure = resolveError(reader, writer);
  return failure === undefined ? undefined : locate(reader, writer, "", failure);
}

function resolveError(reader: AvroType, writer: AvroType): string | undefined {
  try {
    reader.createResolver(writer);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Walks records, arrays, maps and unions down to the first field the resolver cannot read. */
function locate(reader: AvroType, writer: AvroType, path: string, failure: string): string {
  const r = reader as AnyType;
  const w = writer as AnyType;
  if (r.typeName === "record" && w.typeName === "record" && resolveError(renamedOnly(r), renamedOnly(w)) === undefined) {
    for (const field of r.fields!) {
      const names = [field.name, ...(field.aliases ?? [])];
      const wf = w.fields!.find((f) => names.includes(f.name));
      const at = join(path, field.name);
      if (!wf) {
        if (field.defaultValue() === undefined) return `field ${at} (${describe(field.type)}) has no default in the reader schema and the writer schema has no such field`;
        continue;
      }
      const inner = resolveError(field.type, wf.type);
      if (inner !== undefined) return locate(field.type, wf.type, at, inner);
    }
  }
  if (r.typeName === "array" && w.typeName === "array") {
    const inner = resolveError(r.itemsType!, w.itemsType!);
    if (inner !== undefined) return locate(r.itemsType!, w.itemsType!, `${path || "(root)"}[]`, inner);
  }
  if (r.typeName === "map" && w.typeName === "map") {
    const inner = resolveError(r.valuesType!, w.valuesType!);
    if (inner !== undefined) return locate(r.valuesType!, w.valuesType!, `${path || "(root)"}{}`, inner);
  }
  if (w.typeName.startsWith("union")) {
    for (const branch of w.types!) {
      const inner = resolveError(reader, branch);
      if (inner !== undefined) return locate(reader, branch, path, inner);
    }
  } else if (r.typeName.startsWith("union")) {
    const match = r.types!.find((t) => t.typeName === w.typeName && t.name === w.name);
    const inner = match && resolveError(match, writer);
    if (match && inner !== undefined) return locate(match, writer, path, inner);
  }
  if (r.typeName === "record" && w.typeName === "record" && r.name !== w.name) {
    return `${where(path)}: the reader's record ${r.name} cannot read the writer's record ${w.name} (the names differ; list ${w.name} in the reader's aliases)`;
  }
  return `${where(path)}: the reader's ${describe(reader)} cannot read the writer's ${describe(writer)} (${failure})`;
}

/** A record's name and aliases only: tells a name mismatch from a field mismatch. */
function renamedOnly(t: AnyType): AvroType {
  return avroType({ type: "record", name: t.name, aliases: t.aliases ?? [], fields: [] }, "record name");
}

interface AnyType extends avro.Type {
  fields?: { name: string; aliases?: string[]; type: AvroType; defaultValue(): unknown }[];
  itemsType?: AvroType;
  valuesType?: AvroType;
  types?: AnyType[];
  aliases: string[] | undefined;
}

const join = (path: string, name: string) => (path ? `${path}.${name}` : name);
const where = (path: string) => (path ? `field ${path}` : "the top-level type");

function describe(t: AvroType): string {
  const a = t as AnyType;
  if (a.typeName.startsWith("union")) return `union [${a.types!.map(describe).join(", ")}]`;
  if (a.typeName === "array") return `array of ${describe(a.itemsType!)}`;
  if (a.typeName === "map") return `map of ${describe(a.valuesType!)}`;
  return a.name ? `${a.typeName} ${a.name}` : a.typeName;
}

/** One registered version the reader cannot read, and why. */
export interface UnreadableVersion {
  version: number;
  id: number;
  reason: string;
}

/** The versions of a subject that `reader` cannot read (empty: it reads them all). */
export function unreadableVersions(reader: AvroType, versions: readonly SubjectVersion[]): UnreadableVersion[] {
  const out: UnreadableVersion[] = [];
  for (const v of versions) {
    const reason = unreadableReason(reader, avroType(v.schema, `version ${v.version} of subject ${v.subject}`));
    if (reason) out.push({ version: v.version, id: v.id, reason });
  }
  return out;
}

/** The error a worker stops with when its reader cannot read a subject's versions. */
export function unreadableError(subject: string, readerFile: string, bad: readonly UnreadableVersion[]): SfError {
  const lines = bad.map((b) => `version ${b.version} (schema id ${b.id}): ${b.reason}`);
  return new SfError(
    "SF_ERR_SCHEMA_INCOMPATIBLE",
    `the reader schema ${readerFile} cannot read subject ${subject}: ${lines.join("; ")}. ` +
      "Records written with it would fail to decode: fix the reader schema (e.g. give the field a default), or delete that version from the subject if no record of it is left in the topic.",
  );
}

/**
 * What a worker does with a local reader schema at start. The subject exists: register
 * nothing, check that the reader reads every version, throw naming the subject and field
 * when it does not. The subject does not exist yet: register the reader schema as its first
 * version (so producers registering later are checked against it by the subject's
 * compatibility level); a concurrent registration of the same schema by another worker gets
 * the same id, and a different one registered first is checked like an existing subject.
 */
export async function prepareReader(
  codecs: SchemaCodecs,
  subject: string,
  reader: { text: string; type: AvroType; path: string },
): Promise<{ registered: boolean; versions: number[] }> {
  let versions = await codecs.versions(subject);
  let registered = false;
  if (versions.length === 0) {
    try {
      await codecs.register(subject, reader.text);
      registered = true;
    } catch (err) {
      // Another schema won the race and the subject's level refused ours: check against it.
      if (!(err instanceof SfError && err.code === "SF_ERR_SCHEMA_INCOMPATIBLE")) throw err;
    }
    versions = await codecs.versions(subject);
  }
  const bad = unreadableVersions(reader.type, versions);
  if (bad.length) throw unreadableError(subject, reader.path, bad);
  return { registered, versions: versions.map((v) => v.version) };
}
