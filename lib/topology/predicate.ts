import { z } from "zod";
import type { StreamRecord } from "../runtime/contracts.ts";
import { compileGetter } from "./template.ts";
import { fieldPath } from "./template-fields.ts";

/**
 * Declarative predicates for filter, route and rate-limit: comparisons on a field, combined
 * with all/any/not. Never an eval of a string.
 */
export interface FieldPredicate {
  field: string;
  eq?: unknown;
  ne?: unknown;
  in?: unknown[];
  not_in?: unknown[];
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
  exists?: boolean;
  matches?: string;
}
export type Predicate = FieldPredicate | { all: Predicate[] } | { any: Predicate[] } | { not: Predicate };

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
export const fieldPredicateSchema = z
  .object({
    field: fieldPath(z.string().min(1)).describe("Dotted path into the record value, or $key, $topic, $header.<name>"),
    eq: scalar.optional(),
    ne: scalar.optional(),
    in: z.array(scalar).optional(),
    not_in: z.array(scalar).optional(),
    gt: z.number().optional(),
    gte: z.number().optional(),
    lt: z.number().optional(),
    lte: z.number().optional(),
    exists: z.boolean().optional(),
    matches: z.string().optional().describe("A regular expression the field's string value must match"),
  })
  .strict()
  .refine((p) => ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "matches"].some((k) => k in p), {
    message: "expected one comparison: eq, ne, in, not_in, gt, gte, lt, lte, exists or matches",
  });

export const predicateSchema: z.ZodType<Predicate> = z.lazy(() =>
  z.union([
    z.object({ all: z.array(predicateSchema).min(1) }).strict(),
    z.object({ any: z.array(predicateSchema).min(1) }).strict(),
    z.object({ not: predicateSchema }).strict(),
    fieldPredicateSchema,
  ]),
) as z.ZodType<Predicate>;

export type CompiledPredicate = (r: StreamRecord) => boolean;

/** Compiles a predicate once into a closure (the regex too). */
export function compilePredicate(p: Predicate): CompiledPredicate {
  if ("all" in p) {
    const parts = p.all.map(compilePredicate);
    return (r) => parts.every((f) => f(r));
  }
  if ("any" in p) {
    const parts = p.any.map(compilePredicate);
    return (r) => parts.some((f) => f(r));
  }
  if ("not" in p) {
    const inner = compilePredicate(p.not);
    return (r) => !inner(r);
  }
  const get = compileGetter(p.field);
  const checks: ((v: unknown) => boolean)[] = [];
  if ("eq" in p) checks.push((v) => v === p.eq);
  if ("ne" in p) checks.push((v) => v !== p.ne);
  if (p.in) {
    const set = new Set(p.in);
    checks.push((v) => set.has(v));
  }
  if (p.not_in) {
    const set = new Set(p.not_in);
    checks.push((v) => !set.has(v));
  }
  if (p.gt !== undefined) checks.push((v) => typeof v === "number" && v > p.gt!);
  if (p.gte !== undefined) checks.push((v) => typeof v === "number" && v >= p.gte!);
  if (p.lt !== undefined) checks.push((v) => typeof v === "number" && v < p.lt!);
  if (p.lte !== undefined) checks.push((v) => typeof v === "number" && v <= p.lte!);
  if (p.exists !== undefined) checks.push((v) => (v !== undefined && v !== null) === p.exists);
  if (p.matches !== undefined) {
    const re = new RegExp(p.matches);
    checks.push((v) => typeof v === "string" && re.test(v));
  }
  return (r) => {
    const v = get(r);
    for (const c of checks) if (!c(v)) return false;
    return true;
  };
}
