import type { StreamRecord } from "../runtime/contracts.ts";

/**
 * Templates such as `complaint:{id}` or `{user.id}:{$partition}`, compiled once when a
 * topology is built. Placeholders read the record's value by dotted path; `$key`, `$topic`,
 * `$partition`, `$offset`, `$timestamp`, `$id` and `$header.<name>` read its envelope.
 */
export type Template = ((record: StreamRecord) => string) & { readonly source: string; readonly fields: readonly string[] };
export type ValueTemplate = (record: StreamRecord) => unknown;

const PLACEHOLDER = /\{([^{}]+)\}/g;

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
  const path = e.split(".");
  if (path.length === 1) {
    const f = path[0]!;
    return (r) => (r.value !== null && typeof r.value === "object" ? (r.value as Record<string, unknown>)[f] : undefined);
  }
  return (r) => getPath(r.value, path);
}

function stringify(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** Compiles a string template; every placeholder becomes a getter, joined without regex work per record. */
export function compileTemplate(source: string): Template {
  const literals: string[] = [];
  const getters: ((r: StreamRecord) => unknown)[] = [];
  const fields: string[] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    literals.push(source.slice(last, m.index));
    getters.push(compileGetter(m[1]!));
    fields.push(m[1]!.trim());
    last = m.index + m[0].length;
  }
  const tail = source.slice(last);
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
  return Object.assign(fn, { source, fields });
}

/**
 * A value template: a string that is exactly one placeholder keeps the value's type
 * (`"{amount}"` gives a number), other strings are string templates, anything else is a
 * literal.
 */
export function compileValue(spec: unknown): ValueTemplate {
  if (typeof spec !== "string") return () => spec;
  const whole = /^\{([^{}]+)\}$/.exec(spec);
  if (whole) return compileGetter(whole[1]!);
  if (!spec.includes("{")) return () => spec;
  return compileTemplate(spec);
}
