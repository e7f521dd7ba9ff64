import { describe, expect, it } from "vitest";
import { bucketStart, decodeFeatures, fieldsToRead, keys, parseDuration } from "../../lib/features/layout.ts";
import type { ViewDef } from "../../lib/features/layout.ts";
import { compileEventTime, compileKey } from "../../lib/connectors/redis/keys.ts";
import { featuresSinkSchema } from "../../lib/connectors/redis/config.ts";
import { scriptHeader } from "../../lib/connectors/redis/scripts.ts";
import { makeRecord } from "../support/records.ts";

const HOUR = 3_600_000;

describe("tumbling window math", () => {
  it("aligns windows to the epoch: the boundary belongs to the next window", () => {
    const t = Date.UTC(2024, 0, 1, 11, 0, 0);
    expect(bucketStart(t - 1, HOUR)).toBe(t - HOUR);
    expect(bucketStart(t, HOUR)).toBe(t);
    expect(bucketStart(t + HOUR - 1, HOUR)).toBe(t);
    expect(bucketStart(Date.UTC(2024, 0, 1, 13, 0, 0), 24 * HOUR)).toBe(Date.UTC(2024, 0, 1));
  });

  it("parses durations", () => {
    expect(parseDuration("1h")).toBe(HOUR);
    expect(parseDuration("24h")).toBe(24 * HOUR);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration(90)).toBe(90_000);
    expect(parseDuration("1 hour")).toBeNaN();
  });
});

describe("reading the layout", () => {
  const view: ViewDef = { name: "v", entity: "user", features: [{ name: "last", kind: "latest" }, { name: "c1h", kind: "window_count", window_ms: HOUR, buckets: 2 }] };
  const asOf = Date.UTC(2024, 0, 1, 10, 30);

  it("asks for the value and event time of each feature, the current window's bucket for windows", () => {
    expect(fieldsToRead(view, ["last", "c1h"], asOf)).toEqual(["last", "last@t", `c1h|${Date.UTC(2024, 0, 1, 10)}`, "c1h@t"]);
    expect(keys.entity("p:", "v", "42")).toBe("p:sf:v1:fv:v:42");
  });

  it("decodes JSON values, windows as numbers (0 when empty), and staleness", () => {
    const out = decodeFeatures(view, ["last", "c1h"], ['{"a":1}', String(asOf - 500), null, null], asOf);
    expect(out.last).toEqual({ value: { a: 1 }, event_time: asOf - 500, staleness_ms: 500 });
    expect(out.c1h).toEqual({ value: 0, event_time: null, staleness_ms: null, window_start: Date.UTC(2024, 0, 1, 10) });
  });
});

describe("key templates and event times", () => {
  it("reports a missing placeholder instead of writing an empty key part", () => {
    const k = compileKey("complaint:{id}");
    expect(k(makeRecord({ id: 7 }))).toBe("complaint:7");
    expect(k(makeRecord({ other: 1 }))).toBeUndefined();
    expect(k(makeRecord({ id: "" }))).toBeUndefined();
  });

  it("reads event times from ms, ISO strings, dates, or the Kafka timestamp", () => {
    const at = compileEventTime("at");
    expect(at(makeRecord({ at: 1700000000000 }))).toBe(1700000000000);
    expect(at(makeRecord({ at: "2024-01-01T00:00:00Z" }))).toBe(Date.UTC(2024, 0, 1));
    expect(at(makeRecord({ at: new Date(5) }))).toBe(5);
    expect(at(makeRecord({}))).toBeNaN();
    expect(compileEventTime(undefined)(makeRecord({}, { timestamp: 123 }))).toBe(123);
  });
});

describe("redis.features config", () => {
  it("says which field a feature kind needs", () => {
    const r = featuresSinkSchema.safeParse({ views: [{ name: "v", entity: "e", key: "{id}", features: [{ name: "x", kind: "window_sum", field: "a" }, { name: "y", kind: "last_n", field: "a" }] }] });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["views.0.features.0.window", "expected `window` for a window_sum feature"],
      ["views.0.features.1.n", "expected `n` for a last_n feature"],
    ]);
  });

  it("every Lua script states its KEYS, ARGV and return values", () => {
    for (const name of ["featuresApply", "dedupe", "rateLimit"] as const) {
      const header = scriptHeader(name);
      expect(header).toContain("KEYS[1]");
      expect(header).toContain("ARGV[1]");
      expect(header).toMatch(/Returns/);
    }
  });
});
