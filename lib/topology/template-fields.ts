import { z } from "zod";
import type { ValueShape } from "./shape.ts";
import { pathProblem } from "./shape.ts";
import { exprError, parseTemplate, wholePlaceholder } from "./template.ts";

/**
 * Template fields, marked in the config schemas themselves: a connector declares a field
 * with `template(...)`, `valueTemplate(...)` or `fieldPath(...)` and gets, from this one
 * mechanism, the syntax check when the topology is parsed and the check that each field it
 * names exists in the value schema (when a local .avsc makes it known).
 */
export type TemplateKind =
  /** A string template: `user:{id}`, rendered as a string. */
  | "template"
  /** A value: `"{amount}"` keeps the field's type, other strings are templates, anything else a literal. */
  | "value"
  /** A dotted field path without braces: `user.id`, `$key`, `$header.trace`. */
  | "field";

const marks = z.registry<{ kind: TemplateKind }>();

function marked<T extends z.ZodType>(schema: T, kind: TemplateKind): T {
  const checked = schema.superRefine((v, ctx) => {
    const error = syntaxError(kind, v);
    if (error) ctx.addIssue({ code: "custom", message: error });
  });
  marks.add(checked, { kind });
  return checked;
}

/** Marks a string schema as a string template (`user:{id}`). */
export const template = <T extends z.ZodType>(schema: T): T => marked(schema, "template");
/** Marks a schema as a value template (`"{amount}"` keeps the type; non-strings are literals). */
export const valueTemplate = <T extends z.ZodType>(schema: T): T => marked(schema, "value");
/** Marks a string schema as a dotted field path of the record value (or a `$` envelope name). */
export const fieldPath = <T extends z.ZodType>(schema: T): T => marked(schema, "field");

/** How a schema node is marked, if it is a template field. */
export function templateKindOf(schema: z.ZodType): TemplateKind | undefined {
  return marks.get(schema)?.kind;
}

/** The field paths a marked value reads, or what was expected when it does not parse. */
export function templateExprs(kind: TemplateKind, value: unknown): { exprs: string[] } | { error: string } {
  if (typeof value !== "string") return { exprs: [] };
  if (kind === "field") {
    const error = exprError(value.trim());
    return error ? { error } : { exprs: [value.trim()] };
  }
  if (kind === "value") {
    const whole = wholePlaceholder(value);
    if (whole !== undefined) {
      const error = exprError(whole);
      return error ? { error } : { exprs: [whole] };
    }
    if (!value.includes("{") && !value.includes("}")) return { exprs: [] };
  }
  const parsed = parseTemplate(value);
  return "error" in parsed ? parsed : { exprs: parsed.exprs };
}

function syntaxError(kind: TemplateKind, value: unknown): string | undefined {
  const r = templateExprs(kind, value);
  return "error" in r ? r.error : undefined;
}

/** A marked string found in a parsed config, with its path inside the config. */
export interface MarkedString {
  path: (string | number)[];
  kind: TemplateKind;
  value: string;
}

type Def = { type: string } & Record<string, unknown>;

/** Every marked string of a parsed config, found by walking its schema beside it. */
export function markedStrings(schema: z.ZodType, value: unknown, path: (string | number)[] = []): MarkedString[] {
  const mark = marks.get(schema);
  if (mark) return typeof value === "string" ? [{ path, kind: mark.kind, value }] : [];
  if (value === undefined || value === null) return [];
  const def = schema._zod.def as Def;
  const inner = (s: unknown) => markedStrings(s as z.ZodType, value, path);
  switch (def.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "nonoptional":
    case "catch":
      return inner(def.innerType);
    case "lazy":
      return inner((def.getter as () => z.ZodType)());
    case "pipe":
      return inner((def.in as z.ZodType)._zod.def.type === "transform" ? def.out : def.in);
    case "intersection":
      return [...inner(def.left), ...inner(def.right)];
    case "union": {
      const option = (def.options as z.ZodType[]).find((o) => o.safeParse(value).success);
      return option ? inner(option) : [];
    }
    case "object": {
      if (typeof value !== "object") return [];
      const shape = def.shape as Record<string, z.ZodType>;
      return Object.entries(shape).flatMap(([k, s]) => markedStrings(s, (value as Record<string, unknown>)[k], [...path, k]));
    }
    case "array":
      return Array.isArray(value) ? value.flatMap((v, i) => markedStrings(def.element as z.ZodType, v, [...path, i])) : [];
    case "record":
      return typeof value === "object" ? Object.entries(value).flatMap(([k, v]) => markedStrings(def.valueType as z.ZodType, v, [...path, k])) : [];
    default:
      return [];
  }
}

/**
 * Problems of a parsed config's templates against what is known of the record value:
 * each field path that the value's shape does not have (syntax was checked by the schema).
 */
export function templateProblems(schema: z.ZodType, config: unknown, shape: ValueShape | undefined): { path: (string | number)[]; message: string }[] {
  if (!shape) return [];
  const out: { path: (string | number)[]; message: string }[] = [];
  for (const m of markedStrings(schema, config)) {
    const r = templateExprs(m.kind, m.value);
    if ("error" in r) continue;
    for (const expr of r.exprs) {
      if (expr.startsWith("$")) continue;
      const problem = pathProblem(shape, expr.split("."));
      if (problem) {
        out.push({ path: m.path, message: m.kind === "field" || m.value.trim() === `{${expr}}` ? `${problem}, got "${expr}"` : `${problem}, got "${expr}" in "${m.value}"` });
        break;
      }
    }
  }
  return out;
}
