import { describe, expect, it } from "vitest";
import { avroType } from "../../lib/codecs/avro.ts";
import { unreadableError, unreadableReason, unreadableVersions } from "../../lib/codecs/reader-check.ts";

const record = (fields: unknown[], name = "Order", extra: Record<string, unknown> = {}) => avroType({ type: "record", name, namespace: "shop", fields, ...extra }, "test");
const address = (fields: unknown[]) => ({ type: "record", name: "Address", fields });
const writer = record([
  { name: "id", type: "string" },
  { name: "amount", type: "int" },
  { name: "note", type: ["null", "string"], default: null },
  { name: "address", type: address([{ name: "city", type: "string" }]) },
  { name: "tags", type: { type: "array", items: "string" } },
]);

describe("can a reader schema read a writer schema", () => {
  it("reads the same schema, fewer fields, new fields with defaults and promoted types", () => {
    expect(unreadableReason(writer, writer)).toBeUndefined();
    expect(unreadableReason(record([{ name: "id", type: "string" }]), writer)).toBeUndefined();
    expect(unreadableReason(record([{ name: "id", type: "string" }, { name: "currency", type: "string", default: "EUR" }]), writer)).toBeUndefined();
    expect(unreadableReason(record([{ name: "amount", type: "long" }, { name: "note", type: ["null", "string", "int"], default: null }]), writer)).toBeUndefined();
    expect(unreadableReason(record([{ name: "id", type: "string" }], "Order2", { aliases: ["shop.Order"] }), writer)).toBeUndefined();
  });

  it("names a reader field that has no default and no writer field", () => {
    expect(unreadableReason(record([{ name: "id", type: "string" }, { name: "currency", type: "string" }]), writer)).toBe(
      "field currency (string) has no default in the reader schema and the writer schema has no such field",
    );
  });

  it("names a field whose type the reader cannot read, also nested and in arrays", () => {
    expect(unreadableReason(record([{ name: "id", type: "long" }]), writer)).toMatch(/^field id: the reader's long cannot read the writer's string/);
    expect(unreadableReason(record([{ name: "address", type: address([{ name: "zip", type: "string" }]) }]), writer)).toMatch(/^field address\.zip \(string\) has no default/);
    expect(unreadableReason(record([{ name: "tags", type: { type: "array", items: "int" } }]), writer)).toMatch(/^field tags\[\]: the reader's int cannot read the writer's string/);
    expect(unreadableReason(record([{ name: "note", type: "string" }]), writer)).toMatch(/^field note: the reader's string cannot read the writer's null/);
  });

  it("names a record whose name differs", () => {
    expect(unreadableReason(record([{ name: "id", type: "string" }], "Purchase"), writer)).toMatch(/the reader's record shop\.Purchase cannot read the writer's record shop\.Order \(the names differ/);
  });

  it("lists every version a reader cannot read, in an error naming the subject", () => {
    const v1 = { subject: "orders-value", version: 1, id: 11, schema: JSON.stringify({ type: "record", name: "Order", namespace: "shop", fields: [{ name: "id", type: "string" }] }) };
    const v2 = { ...v1, version: 2, id: 12, schema: JSON.stringify(writer.schema()) };
    const reader = record([{ name: "id", type: "string" }, { name: "amount", type: "int" }]);
    const bad = unreadableVersions(reader, [v1, v2]);
    expect(bad).toEqual([{ version: 1, id: 11, reason: "field amount (int) has no default in the reader schema and the writer schema has no such field" }]);
    const err = unreadableError("orders-value", "./order.avsc", bad);
    expect(err.code).toBe("SF_ERR_SCHEMA_INCOMPATIBLE");
    expect(err.message).toMatch(/^the reader schema \.\/order\.avsc cannot read subject orders-value: version 1 \(schema id 11\): field amount/);
  });
});
