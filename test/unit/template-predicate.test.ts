import { describe, expect, it } from "vitest";
import { compilePredicate, predicateSchema } from "../../lib/topology/predicate.ts";
import { compileTemplate, compileValue } from "../../lib/topology/template.ts";
import { makeRecord } from "../support/records.ts";

const r = makeRecord({ id: "c1", status: "open", priority: 3, user: { id: "u9" }, tags: ["a"] }, { topic: "t", partition: 2, offset: "41", key: "k1", headers: { trace: "x1" } });

describe("templates", () => {
  it("fills placeholders from value paths and the record envelope", () => {
    expect(compileTemplate("complaint:{id}")(r)).toBe("complaint:c1");
    expect(compileTemplate("{user.id}/{$topic}/{$partition}/{$offset}/{$key}/{$header.trace}")(r)).toBe("u9/t/2/41/k1/x1");
    expect(compileTemplate("no placeholders")(r)).toBe("no placeholders");
    expect(compileTemplate("{missing}:{id}")(r)).toBe(":c1");
    expect(compileTemplate("a:{id}").fields).toEqual(["id"]);
  });

  it("keeps the type of a value that is exactly one placeholder", () => {
    expect(compileValue("{priority}")(r)).toBe(3);
    expect(compileValue("{tags}")(r)).toEqual(["a"]);
    expect(compileValue("p{priority}")(r)).toBe("p3");
    expect(compileValue(7)(r)).toBe(7);
  });
});

describe("predicates", () => {
  const check = (p: unknown) => compilePredicate(predicateSchema.parse(p))(r);
  it("compares fields", () => {
    expect(check({ field: "status", eq: "open" })).toBe(true);
    expect(check({ field: "status", ne: "open" })).toBe(false);
    expect(check({ field: "priority", gte: 3, lt: 4 })).toBe(true);
    expect(check({ field: "priority", gt: 3 })).toBe(false);
    expect(check({ field: "status", in: ["open", "new"] })).toBe(true);
    expect(check({ field: "status", not_in: ["open"] })).toBe(false);
    expect(check({ field: "user.id", matches: "^u\\d+$" })).toBe(true);
    expect(check({ field: "nope", exists: false })).toBe(true);
    expect(check({ field: "$key", eq: "k1" })).toBe(true);
  });
  it("combines with all, any and not", () => {
    expect(check({ all: [{ field: "status", eq: "open" }, { field: "priority", eq: 3 }] })).toBe(true);
    expect(check({ any: [{ field: "status", eq: "closed" }, { field: "priority", eq: 3 }] })).toBe(true);
    expect(check({ not: { field: "status", eq: "open" } })).toBe(false);
  });
  it("rejects a predicate without a comparison", () => {
    expect(predicateSchema.safeParse({ field: "status" }).success).toBe(false);
  });
});
