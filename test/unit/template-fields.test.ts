import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { avroType } from "../../lib/codecs/avro.ts";
import { SfError } from "../../lib/errors.ts";
import { defaultCatalogue } from "../../lib/runtime/fleet.ts";
import { shapeOfAvro } from "../../lib/topology/shape.ts";
import { compileTemplate, compileValue, parseTemplate } from "../../lib/topology/template.ts";
import { templateKindOf, templateProblems } from "../../lib/topology/template-fields.ts";
import { checkTopology } from "../../lib/topology/verify.ts";
import { makeRecord } from "../support/records.ts";

const cat = defaultCatalogue();

describe("template syntax", () => {
  it("parses placeholders and envelope names", () => {
    expect(parseTemplate("a:{b.c}:{ $key }:{$header.trace}")).toEqual({ literals: ["a:", ":", ":", ""], exprs: ["b.c", "$key", "$header.trace"] });
    expect(parseTemplate("plain")).toEqual({ literals: ["plain"], exprs: [] });
  });

  it.each([
    ["{entity", /the "\{" at column 1 is never closed/],
    ["user:{id", /the "\{" at column 6 is never closed/],
    ["user:id}", /the "\}" at column 8 closes no "\{"/],
    ["{a{b}}", /the "\{" at column 3 opens inside the placeholder of column 1/],
    ["x:{}", /expected a field path or one of \$key.* inside "\{\}" \(placeholder at column 3\)/],
    ["{$partiton}", /expected one of \$key, \$topic, \$partition.*, got "\$partiton"/],
    ["{$header.}", /got "\$header\."/],
    ["{user..id}", /expected a dotted field path such as "user\.id", got "user\.\.id"/],
  ])("rejects %j, saying what was expected", (source, message) => {
    const parsed = parseTemplate(source);
    expect("error" in parsed && parsed.error).toMatch(message);
    expect(() => compileTemplate(source)).toThrow(SfError);
  });

  it("never renders a broken template literally: compileTemplate and compileValue throw", () => {
    expect(() => compileTemplate("{entity")).toThrow(/template "\{entity": .*never closed/);
    expect(() => compileValue("a}")).toThrow(/closes no/);
    expect(compileValue("{id}")(makeRecord({ id: 7 }))).toBe(7);
    expect(compileValue("no braces")(makeRecord({}))).toBe("no braces");
  });
});

const ORDER = avroType(
  { type: "record", name: "Order", fields: [{ name: "id", type: "string" }, { name: "amount", type: "double" }, { name: "customer", type: ["null", { type: "record", name: "Customer", fields: [{ name: "email", type: "string" }] }] }, { name: "attrs", type: { type: "map", values: "string" } }] },
  "test",
);

describe("template fields against the value schema", () => {
  const shape = shapeOfAvro(ORDER);
  const cache = cat.sinks.get("redis.cache")!.schema;
  const problems = (key: string) => templateProblems(cache, cache.parse({ key }), shape).map((p) => p.message);

  it("accepts fields of the schema, nested records, maps, and the envelope", () => {
    expect(problems("order:{id}:{customer.email}:{attrs.anything}:{$key}:{$header.x}")).toEqual([]);
  });

  it("names the field that is not there and what the schema has", () => {
    expect(problems("order:{order_id}")).toEqual(['expected a field of the value (record Order: id, amount, customer, attrs), got "order_id" in "order:{order_id}"']);
    expect(problems("{customer.name}")).toEqual(['expected a field of customer (record Customer: email), got "customer.name"']);
    expect(problems("{amount.cents}")).toEqual(['expected a path that stops at amount (double: it has no fields), got "amount.cents"']);
  });

  it("follows the value through steps: map renames, enrich adds, a transform makes it unknown", async () => {
    const topology = (steps: unknown[], key: string) => ({ name: "t", source: { topics: ["a"] }, codec: { value: { type: "json" } }, steps: [{ validate: { schema: "../fixtures/schemas/order.avsc" } }, ...steps], sinks: [{ type: "redis.cache", key }] });
    const check = async (steps: unknown[], key: string) => (await checkTopology(topology(steps, key), cat, import.meta.dirname)).issues.map((i) => `${String(i.path.join("."))}: ${i.message}`);
    expect(await check([], "{id}")).toEqual([]);
    expect(await check([], "{nope}")).toEqual([expect.stringMatching(/^sinks\.0\.key: expected a field of the value \(record streamfleet\.test\.Order: id, amount, status, note\), got "nope"$/)]);
    expect(await check([{ map: { fields: { order: "{id}", cents: "{amount}" } } }], "{order}:{cents}")).toEqual([]);
    expect(await check([{ map: { fields: { order: "{id}" } } }], "{id}")).toEqual([expect.stringMatching(/expected a field of the value \(the output of a map step: order\), got "id"/)]);
    expect(await check([{ map: { fields: { id: "{idd}" } } }], "{id}")).toEqual([expect.stringMatching(/^steps\.1\.map\.fields\.id: expected a field of the value \(record streamfleet\.test\.Order/)]);
    expect(await check([{ enrich: { cache: "c:{id}", into: "extra" } }], "{extra.anything}:{status}")).toEqual([]);
    expect(await check([{ transform: { module: "../fixtures/transforms.ts", export: "enrich" } }], "{anything}")).toEqual([]);
  });
});

describe("template fields are marked in the config schemas", () => {
  /** Schema nodes whose description calls them a template, and whether they (or what they wrap) are marked. */
  function described(schema: z.ZodType, at: string, out: [string, boolean][], depth = 0): void {
    if (depth > 12) return;
    const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
    const description = (schema as { description?: string }).description ?? "";
    if (/template/i.test(description)) out.push([at, marked(schema)]);
    const children: [string, unknown][] = [];
    if (def.type === "object") children.push(...Object.entries(def.shape as Record<string, unknown>).map(([k, s]): [string, unknown] => [`${at}.${k}`, s]));
    for (const k of ["innerType", "element", "valueType", "in", "out"]) if (def[k]) children.push([at, def[k]]);
    if (def.type === "union") children.push(...(def.options as unknown[]).map((o): [string, unknown] => [at, o]));
    if (def.type === "lazy") children.push([at, (def.getter as () => unknown)()]);
    for (const [p, s] of children) described(s as z.ZodType, p, out, depth + 1);
  }
  function marked(schema: z.ZodType): boolean {
    if (templateKindOf(schema)) return true;
    const def = schema._zod.def as unknown as Record<string, unknown>;
    return ["innerType", "element", "valueType"].some((k) => def[k] !== undefined && marked(def[k] as z.ZodType));
  }

  it("every field described as a template, in every sink and step, is checked by the one mechanism", () => {
    const found: [string, boolean][] = [];
    for (const [type, spec] of cat.sinks) described(spec.schema, type, found);
    for (const [kind, spec] of cat.steps) described(spec.schema, kind, found);
    expect(found.length).toBeGreaterThan(15);
    expect(found.filter(([, ok]) => !ok).map(([p]) => p)).toEqual([]);
  });
});
