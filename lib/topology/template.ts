import { SfError } from "../errors.ts";
import type { StreamRecord } from "../runtime/contracts.ts";

/**
 * Templates such as `complaint:{id}` or `{user.id}:{$partition}`, compiled once when a
 * topology is built. Placeholders read the record's value by dotted path; `$key`, `$topic`,
 * `$partition`, `$offset`, `$timestamp`, `$id` and `$header.<name>` read its envelope. `{` and
 * `}` always delimit a placeholder: a template that does not parse is rejected when the
 * topology is loaded, never rendered literally.
 */
export type Template = ((record: StreamRecord) => string) & { readonly source: string; readonly fields: readonly string[] };
export type ValueTemplate = (record: StreamRecord) => unknown;

/** The record's envelope, by `$` name; `$header.<name>` and `$key.<path>` also read it. */
export const ENVELOPE = ["$key", "$topic", "$partition", "$offset", "$timestamp", "$id"] as const;
const EXPECTED_NAMES = `${ENVELOPE.join(", ")}, $header.<name> or $key.<path>`;

/** A parsed template: literals around trimmed placeholder expressions (one literal more than expressions). */
export interface ParsedTemplate {
  literals: string[];
  exprs: string[];
}

/** Parses `a:{b}:{$key}`; returns what was expected, with the column, when it does not parse. */
export function parseTemplate(source: string): ParsedTemplate | { error: string } {
  const literals: string[] = [];
  const exprs: string[] = [];
  let last = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "}") return { error: `expected a template such as "user:{id}": the "}" at column ${i + 1} closes no "{"` };
    if (c !== "{") continue;
    const close = source.indexOf("}", i + 1);
    const reopen = source.indexOf("{", i + 1);
    if (close < 0) return { error: `expected a template such as "user:{id}": the "{" at column ${i + 1} is never closed` };
    if (reopen >= 0 && reopen < close) return { error: `expected a template such as "user:{id}": the "{" at column ${reopen + 1} opens inside the placeholder of column ${i + 1}` };
    const expr = source.slice(i + 1, close).trim();
    const bad = exprError(expr);
    if (bad) return { error: `${bad} (placeholder at column ${i + 1})` };
    literals.push(source.slice(last, i));
    exprs.push(expr);
    last = close + 1;
    i = close;
  }
  literals.push(source.slice(last));
  return { literals, exprs };
}

/** What is wrong with a placeholder expression or field path, or undefined. */
export function exprError(expr: string): string | undefined {
  if (expr === "") return `expected a field path or one of ${EXPECTED_NAMES} inside "{}"`;
  if (expr.startsWith("$")) {
    if ((ENVELOPE as readonly string[]).includes(expr)) return undefined;
    const dot = expr.indexOf(".");
    const [head, rest] = dot < 0 ? [expr, ""] : [expr.slice(0, dot), expr.slice(dot + 1)];
    if (head === "$header" && rest !== "") return undefined;
    if (head === "$key" && rest !== "" && !rest.split(".").includes("")) return undefined;
    return `expected one of ${EXPECTED_NAMES}, got "${expr}"`;
  }
  if (expr.split(".").includes("")) return `expected a dotted field path such as "user.id", got "${expr}"`;
  return undefined;
}

/** Reads a dotted path from a plain object; undefined when any hop is missing. */
export function getPath(value: unknown, path: readonly string[]): unknown {
  let cur: unknown = value;
  for (const part of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** A getter for one placeholder expression, resolved at compile time. */
export function compileGetter(expr: string): (r: StreamRecord) => unknown {
  const e = expr.trim();
  switch (e) {
    case "$key":
      return (r) => r.key;
    case "$topic":
      return (r) => r.origin.topic;
    case "$partition":
      return (r) => r.origin.partition;
    case "$offset":
      return (r) => r.origin.offset;
    case "$timestamp":
      return (r) => r.origin.timestamp;
    case "$id":
      return (r) => r.id;
  }
  if (e.startsWith("$header.")) {
    const h = e.slice("$header.".length);
    return (r) => r.headers[h];
  }
  if (e.startsWith("$key.")) {
    const path = e.slice(5).split(".");
    return (r) => getPath(r.key, path);
  }
  return valueGetter(e.split("."));
}

/**
 * A getter of the value's field at `path`, as its own function: a closure shared by every
 * path would make each property read a megamorphic keyed load (V8 keeps one inline cache
 * for all closures of one function literal); code with the path's names as constants reads
 * them like `v.userId`. The names are quoted with JSON.stringify, never pasted as code.
 */
function valueGetter(path: readonly string[]): (r: StreamRecord) => unknown {
  let body = "let v = r.value;\n";
  for (const part of path) body += `if (v === null || typeof v !== "object") return undefined;\nv = v[${JSON.stringify(part)}];\n`;
  body += "return v;";
  return new Function("r", body) as (r: StreamRecord) => unknown;
}

function stringify(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** Compiles a string template; every placeholder becomes a getter, joined without regex work per record. */
export function compileTemplate(source: string): Template {
  const parsed = parseTemplate(source);
  if ("error" in parsed) throw new SfError("SF_ERR_TOPOLOGY_INVALID", `template "${source}": ${parsed.error}`);
  const { literals, exprs } = parsed;
  const getters = exprs.map(compileGetter);
  const tail = literals[literals.length - 1]!;
  let fn: (r: StreamRecord) => string;
  if (getters.length === 0) fn = () => source;
  else if (getters.length === 1) {
    const [pre, g] = [literals[0]!, getters[0]!];
    fn = (r) => pre + stringify(g(r)) + tail;
  } else {
    fn = (r) => {
      let out = "";
      for (let i = 0; i < getters.length; i++) out += literals[i]! + stringify(getters[i]!(r));
      return out + tail;
    };
  }
  return Object.assign(fn, { source, fields: exprs });
}

/**
 * A value template: a string that is exactly one placeholder keeps the value's type
 * (`"{amount}"` gives a number), other strings are string templates, anything else is a
 * literal.
 */
export function compileValue(spec: unknown): ValueTemplate {
  if (typeof spec !== "string") return () => spec;
  const whole = wholePlaceholder(spec);
  if (whole !== undefined) return compileGetter(whole);
  if (!spec.includes("{") && !spec.includes("}")) return () => spec;
  return compileTemplate(spec);
}

/** The expression of a string that is exactly one placeholder (`"{amount}"`), else undefined. */
export function wholePlaceholder(spec: string): string | undefined {
  return /^\{([^{}]+)\}$/.exec(spec)?.[1]?.trim();
}
