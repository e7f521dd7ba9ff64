/**
 * The Python client (clients/python) reads what the TS client reads: the real redis.features
 * sink writes every feature kind, the TS FeatureClient reads it at chosen moments, and pytest
 * (Debian's /usr/bin/python3 with python3-redis) must return exactly the same answers.
 */
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import type { EntityFeatures } from "../../lib/features/client.ts";
import { decodeFeatures, fieldsToRead } from "../../lib/features/layout.ts";
import type { FeatureDef, ViewDef } from "../../lib/features/layout.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { underCi } from "../support/tools.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, where apt installs python3-redis (not whatever python3 PATH finds first)
const INSTALL = "apt-get install python3-redis python3-pytest python3-pandas";
const NAME = "Python feature client";

/** Skip (outside CI) or fail (under CI) when Debian's Python cannot import redis and pytest. */
function pythonGate(): { skip: boolean; title: string; check(): void } {
  const probe = fs.existsSync(PYTHON) ? spawnSync(PYTHON, ["-c", "import redis, pytest"], { encoding: "utf8" }) : undefined;
  const line = probe?.status === 0 ? undefined : `${PYTHON} with the redis and pytest modules is missing: install them (\`${INSTALL}\`)`;
  const skip = line !== undefined && !underCi();
  return {
    skip,
    title: skip ? `${NAME} (skipped: ${line})` : NAME,
    check: () => {
      if (line) throw new Error(line);
    },
  };
}

const scope = new TestScope("pyclient");
const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0); // 10:00 UTC, the start of an hourly window
const view = {
  name: `activity_${scope.id}`,
  entity: "resident",
  key: "{residentId}",
  event_time: "at",
  features: [
    { name: "open_complaints", kind: "counter", by: "{delta}" },
    { name: "created_total", kind: "counter", when: { field: "type", eq: "created" } },
    { name: "last_type", kind: "latest", field: "type" },
    { name: "last_payload", kind: "latest", field: "payload" },
    { name: "max_severity", kind: "max", field: "severity" },
    { name: "min_severity", kind: "min", field: "severity" },
    { name: "recent_types", kind: "last_n", field: "type", n: 3 },
    { name: "created_1h", kind: "window_count", window: "1h", when: { field: "type", eq: "created" } },
    { name: "severity_1h", kind: "window_sum", field: "severity", window: "1h" },
  ],
};

function ev(residentId: string, type: string, at: number, severity: number, payload?: unknown): StreamRecord {
  return makeRecord({ residentId, type, at, severity, delta: type === "created" ? 1 : type === "closed" ? -1 : 0, ...(payload === undefined ? {} : { payload }) });
}

interface Case {
  name: string;
  view: string;
  ids: string[];
  names?: string[];
  as_of?: number;
  expected?: EntityFeatures[];
}

/** The reads both clients answer: every kind, a never-written entity, windows as of several moments. */
const cases: Case[] = [
  { name: "first_window", view: view.name, ids: ["r1", "r2", "ghost", "42"], as_of: T0 + HOUR - 1 },
  { name: "second_window", view: view.name, ids: ["r1", "r2", "ghost", "42"], as_of: T0 + HOUR + 100 },
  { name: "empty_window", view: view.name, ids: ["r1", "r2"], as_of: T0 + 3 * HOUR },
  { name: "boundary", view: view.name, ids: ["r1"], names: ["created_1h", "severity_1h"], as_of: T0 + HOUR },
  { name: "some_names", view: view.name, ids: ["r2", "r1"], names: ["last_payload", "recent_types", "created_total"], as_of: T0 + 2 * HOUR },
  { name: "one_ghost", view: view.name, ids: ["ghost"], as_of: T0 },
];

let redis: Redis;
let sink: Sink;
let dir: string;

beforeAll(() => {
  redis = new Redis(stack().REDIS_URL);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-pyclient-"));
});
afterAll(async () => {
  await sink?.close();
  redis.disconnect();
  fs.rmSync(dir, { recursive: true, force: true });
  await scope.cleanup();
});

function pytest(env: Record<string, string>): Promise<{ code: number; output: string }> {
  const base = { ...process.env };
  delete base.PYTHONPATH; // the package comes from this checkout (pyproject's pythonpath), nothing else
  delete base.PYTHONHOME;
  return new Promise((resolve) => {
    execFile(PYTHON, ["-m", "pytest", "clients/python/tests", "-q", "-rs", "-p", "no:cacheprovider"], { cwd: process.cwd(), env: { ...base, ...env, PYTHONDONTWRITEBYTECODE: "1" }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** A generated read: a view, the names asked, as_of, and an HMGET reply of what Redis could hold. */
interface Decode {
  view: ViewDef;
  names: string[];
  asOf: number;
  reply: (string | null)[];
}

const KINDS = ["latest", "counter", "min", "max", "last_n", "window_count", "window_sum"] as const;
const stored = fc.oneof(
  fc.constant(null),
  fc.jsonValue().map((v) => JSON.stringify(v)), // latest, last_n
  fc.integer().map(String), // counters, counts, event times
  fc.double({ noNaN: true }).map((x) => (Number.isFinite(x) ? x.toPrecision(15) : String(x))), // sums as features-apply.lua writes them (%.15g)
  fc.double({ noNaN: true }).map(String),
  fc.string(), // text no writer of the layout stores: both readers must still agree
);
const decodeArb: fc.Arbitrary<Decode> = fc
  .uniqueArray(fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/), kind: fc.constantFrom(...KINDS), window_ms: fc.constantFrom(1000, 60_000, 3_600_000, 86_400_000) }), { minLength: 1, maxLength: 6, selector: (f) => f.name })
  .chain((features) =>
    fc.record({
      view: fc.constant({ name: "v", entity: "e", features: features.map((f): FeatureDef => (f.kind.startsWith("window_") ? { name: f.name, kind: f.kind, window_ms: f.window_ms, buckets: 2 } : { name: f.name, kind: f.kind })) }),
      names: fc.subarray(features.map((f) => f.name), { minLength: 1 }),
      asOf: fc.oneof(fc.integer({ min: -1e12, max: 4e12 }), fc.double({ min: -1e12, max: 4e12, noNaN: true })),
      reply: fc.array(fc.oneof(stored, fc.maxSafeInteger().map(String)), { minLength: 12, maxLength: 12 }),
    }),
  );

/** Decodes every case with the Python layout module in one process; NaN and ±Infinity come back as text. */
const PY_DECODE = `
import json, math, sys
sys.path.insert(0, "clients/python")
from streamfleet_features.layout import decode_features, fields_to_read
def nan(x):
    if isinstance(x, float) and not math.isfinite(x): return str(x).replace("nan", "NaN").replace("inf", "Infinity")
    if isinstance(x, dict): return {k: nan(v) for k, v in x.items()}
    if isinstance(x, list): return [nan(v) for v in x]
    return x
out = [{"fields": fields_to_read(c["view"], c["names"], c["asOf"]), "features": nan(decode_features(c["view"], c["names"], c["reply"], c["asOf"]))} for c in json.load(sys.stdin)]
json.dump(out, sys.stdout)
`;

/** Through JSON, as a reader in another language sees it (-0 is 0), NaN and ±Infinity spelt as text. */
function viaJson(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x, (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)));
}

const gate = pythonGate();
const suite = (): void => {
  beforeAll(() => gate.check());

  it("returns exactly what the TS client returns, for every feature kind", async () => {
    const config = featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [view] });
    sink = featuresSink.create(config, makeContext({ component: "sinks[0]:redis.features" })) as Sink;
    await sink.open!();
    await sink.write([
      ev("r1", "created", T0 + 1000, 2, { room: 4, tags: ["a", "b"] }),
      ev("r1", "commented", T0 + 2000, 1.5),
      ev("r1", "escalated", T0 + HOUR + 10, 7, "plain text"),
      ev("42", "created", T0 + 30, 3, null),
    ]);
    await sink.write([
      ev("r1", "created", T0 + 1500, 0.25, 12.5), // late, out of order: counts in 10:00-11:00, not the newest
      ev("r2", "commented", T0 + HOUR + 5, 4),
      ev("r1", "created", T0 + HOUR, 1), // on the boundary: the 11:00 window
    ]);

    const ts = new FeatureClient({ redis, keyPrefix: scope.keyPrefix });
    for (const c of cases) c.expected = await ts.getFeatures(c.view, c.ids, c.names, { asOf: c.as_of! });
    // what the TS client read is what the sink was given (so the comparison below compares something)
    const [r1, r2, ghost, n42] = cases[0]!.expected!;
    expect(r1!.features).toMatchObject({
      open_complaints: { value: 3 },
      last_type: { value: "escalated", event_time: T0 + HOUR + 10 },
      last_payload: { value: "plain text" },
      min_severity: { value: 0.25 },
      max_severity: { value: 7 },
      recent_types: { value: ["escalated", "created", "commented"] },
      created_1h: { value: 2, window_start: T0 },
      severity_1h: { value: 3.75 },
    });
    expect(r2!.features.created_total).toEqual({ value: null, event_time: null, staleness_ms: null }); // `when` never matched
    expect(ghost).toMatchObject({ found: false, features: { last_type: { value: null, event_time: null }, created_1h: { value: 0 } } });
    expect(n42!.features.last_payload!.value).toBeNull(); // a JSON null written
    expect(cases[2]!.expected![0]!.features.created_1h).toMatchObject({ value: 0, window_start: T0 + 3 * HOUR });

    const casesFile = path.join(dir, "cases.json");
    const actual = path.join(dir, "actual");
    fs.mkdirSync(actual);
    fs.writeFileSync(casesFile, JSON.stringify(cases));
    const run = await pytest({ SF_TEST_REDIS_URL: stack().REDIS_URL, SF_TEST_KEY_PREFIX: scope.keyPrefix, SF_TEST_CASES: casesFile, SF_TEST_ACTUAL: actual });
    expect(run.code, run.output).toBe(0);
    expect(run.output).not.toMatch(/SKIPPED.*test_against_ts/);
    for (const c of cases) {
      const got: unknown = JSON.parse(fs.readFileSync(path.join(actual, `${c.name}.json`), "utf8"));
      expect(got, c.name).toEqual(c.expected);
    }
  });

  it("decodes any reply as lib/features/layout.ts does (generated views, replies and read times)", () => {
    const seed = Date.now();
    const samples = fc.sample(decodeArb, { numRuns: 400, seed });
    const run = spawnSync(PYTHON, ["-c", PY_DECODE], { input: JSON.stringify(samples), encoding: "utf8", maxBuffer: 256 * 1024 * 1024, cwd: process.cwd(), env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
    expect(run.status, run.stderr).toBe(0);
    const python = JSON.parse(run.stdout) as { fields: string[]; features: unknown }[];
    samples.forEach((c, i) => {
      const ts = { fields: fieldsToRead(c.view, c.names, c.asOf), features: decodeFeatures(c.view, c.names, c.reply, c.asOf) };
      expect(python[i], `seed ${seed}, case ${i}: ${JSON.stringify(c)}`).toEqual(viaJson(ts));
    });
  });
};

if (gate.skip) describe.skip(gate.title, suite);
else describeStack(NAME, suite);
