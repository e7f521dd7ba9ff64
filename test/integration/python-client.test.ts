/**
 * The Python client (clients/python) reads what the TS client reads: the real redis.features
 * sink writes every feature kind (with an offline log in PostgreSQL), the TS FeatureClient
 * reads it at chosen moments — online from Redis, and point-in-time from the log — and pytest
 * (Debian's /usr/bin/python3 with python3-redis, python3-psycopg2 and python3-pandas) must
 * return exactly the same answers, row for row.
 */
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import pg from "pg";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import type { EntityFeatures, HistoricalRow } from "../../lib/features/client.ts";
import type { HistoricalAsk } from "../../lib/features/historical.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { decodeFeatures, fieldsToRead } from "../../lib/features/layout.ts";
import type { FeatureDef, ViewDef } from "../../lib/features/layout.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { underCi } from "../support/tools.ts";
import { useRedis } from "../support/redis-modes.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, where apt installs python3-redis (not whatever python3 PATH finds first)
const INSTALL = "apt-get install python3-redis python3-psycopg2 python3-pytest python3-pandas";
const NAME = "Python feature client";

/** Skip (outside CI) or fail (under CI) when Debian's Python cannot import redis, psycopg2, pandas and pytest. */
function pythonGate(): { skip: boolean; title: string; check(): void } {
  const probe = fs.existsSync(PYTHON) ? spawnSync(PYTHON, ["-c", "import redis, psycopg2, pandas, pytest"], { encoding: "utf8" }) : undefined;
  const line = probe?.status === 0 ? undefined : `${PYTHON} with the redis, psycopg2, pandas and pytest modules is missing: install them (\`${INSTALL}\`)`;
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
  offline: { schema: scope.pgSchema },
};
/** A view without offline log: historical retrieval must refuse it by name. */
const onlineView = { name: `online_${scope.id}`, entity: "resident", key: "{residentId}", features: [{ name: "n", kind: "counter" }] };

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

/** A historical request both clients answer: the rows (entity, t, labels) and the features asked; `expected` is the TS client's answer. */
interface HistoricalCase {
  name: string;
  view: string;
  rows: (HistoricalAsk & Record<string, unknown>)[];
  names?: string[];
  expected?: HistoricalRow<HistoricalAsk>[];
}

/** Every entity at moments before, at, between and after its events, shuffled, with duplicates and labels. */
function historicalRows(): (HistoricalAsk & Record<string, unknown>)[] {
  const times = [T0 - 1, T0 + 10, T0 + 20, T0 + 30, T0 + 1000, T0 + 1499, T0 + 1500, T0 + 2000, T0 + HOUR - 1, T0 + HOUR, T0 + HOUR + 5, T0 + HOUR + 10, T0 + 3 * HOUR];
  const rows = ["r1", "r2", "42", "ghost"].flatMap((entity) => times.map((t) => ({ entity, t })));
  rows.push(rows[5]!, rows[20]!, rows[5]!); // repeated rows are answered each time
  let seed = 7;
  const shuffled = rows.map((r) => ({ r, k: (seed = (seed * 48271) % 2147483647) })).sort((a, b) => a.k - b.k);
  return shuffled.map(({ r }, i) => ({ ...r, label: i % 3 === 0 ? 1 : 0, note: `row ${i}, "quoted"` }));
}

const historicalCases: HistoricalCase[] = [
  { name: "every_kind", view: view.name, rows: historicalRows() },
  { name: "some_names", view: view.name, rows: historicalRows().slice(0, 17), names: ["recent_types", "last_payload", "severity_1h"] },
  { name: "one_row", view: view.name, rows: [{ entity: "42", t: T0 + 25 }] },
];

let redis: Redis;
let pool: pg.Pool;
let sink: Sink;
let dir: string;

beforeAll(() => {
  redis = new Redis(stack().REDIS_URL);
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 2 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-pyclient-"));
});
afterAll(async () => {
  await sink?.close();
  await pool?.end();
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

/** Reads the cases with the Python client on a Redis Cluster (FeatureClient.from_cluster), decoded and as bytes. */
const PY_CLUSTER = `
import json, sys
sys.path.insert(0, "clients/python")
from streamfleet_features import FeatureClient
job = json.load(sys.stdin)
out = []
for decode in (True, False):
    c = FeatureClient.from_cluster(job["nodes"], key_prefix=job["prefix"])
    if decode:
        c._redis.close()
        from redis.cluster import RedisCluster, ClusterNode
        seeds = [ClusterNode(n.split(":")[0], int(n.split(":")[1])) for n in job["nodes"].split(",")]
        c = FeatureClient(RedisCluster(startup_nodes=seeds, decode_responses=True), key_prefix=job["prefix"])
    out.append([{"many": c.get_many(k["view"], k["ids"], k.get("names"), k.get("as_of")), "one": [c.get(k["view"], i, k.get("names"), k.get("as_of")) for i in k["ids"]]} for k in job["cases"]])
json.dump(out, sys.stdout)
`;

const gate = pythonGate();
const suite = (): void => {
  beforeAll(() => gate.check());
  const cluster = useRedis("cluster");

  it("reads a Redis Cluster as the TS client does (hash-tagged keys, a batch pipelined per node)", async () => {
    const clusterView = { ...view, name: `${view.name}_cluster` } as Record<string, unknown>;
    delete clusterView.offline;
    const s = featuresSink.create(featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [clusterView] }), makeContext({ component: "sinks[0]:redis.features", connections: cluster.connections() })) as Sink;
    try {
      await s.write([ev("42", "note", T0 + 10, 1, "before"), ev("r1", "created", T0 + 1000, 2, { room: 4, tags: ["a", "b"] }), ev("r1", "commented", T0 + 2000, 1.5), ev("r1", "escalated", T0 + HOUR + 10, 7, "plain text"), ev("42", "created", T0 + 30, 3, null)]);
      await s.write([ev("r1", "created", T0 + 1500, 0.25, 12.5), ev("r2", "commented", T0 + HOUR + 5, 4), ev("r1", "created", T0 + HOUR, 1)]);
    } finally {
      await s.close();
    }
    const many = Array.from({ length: 120 }, (_, i) => `m${i}`);
    const mine = [...cases.map((c) => ({ ...c, view: clusterView.name as string })), { name: "many", view: clusterView.name as string, ids: [...many, "r1"], as_of: T0 + HOUR + 100 }];
    const ts = new FeatureClient({ redis: cluster.redis, keyPrefix: scope.keyPrefix });
    const expected = await Promise.all(mine.map((c) => ts.getFeatures(c.view, c.ids, c.names, { asOf: c.as_of! })));
    expect(expected[0]![0]!.features.open_complaints!.value).toBe(3); // what was written is read (a counter is not windowed)
    const run = spawnSync(PYTHON, ["-c", PY_CLUSTER], { input: JSON.stringify({ nodes: cluster.env.REDIS_CLUSTER_NODES, prefix: scope.keyPrefix, cases: mine }), encoding: "utf8", cwd: process.cwd(), env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" }, timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    const python = JSON.parse(run.stdout) as { many: unknown; one: unknown[] }[][];
    for (const answers of python) {
      answers.forEach((a, i) => {
        expect(a.many, mine[i]!.name).toEqual(viaJson(expected[i]));
        expect(a.one, mine[i]!.name).toEqual(viaJson(expected[i]));
      });
    }
  });

  it("returns exactly what the TS client returns, for every feature kind", async () => {
    const config = featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [view, onlineView] });
    const connections = new Connections({ REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL });
    sink = featuresSink.create(config, makeContext({ component: "sinks[0]:redis.features", connections })) as Sink;
    await sink.open!();
    await sink.write([
      ev("42", "note", T0 + 10, 1, "before"), // then a JSON null, newer: latest reads null from T0+30 on
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

    const ts = new FeatureClient({ redis, keyPrefix: scope.keyPrefix, offline: pool });
    for (const c of cases) c.expected = await ts.getFeatures(c.view, c.ids, c.names, { asOf: c.as_of! });
    for (const c of historicalCases) c.expected = await ts.historical(c.view, c.rows, c.names);
    // the TS historical answer is the online store's at the newest event time, earlier moments asked in the same request
    const tEnd = T0 + HOUR + 10;
    const ids = ["r1", "r2", "42", "ghost"];
    const online = await ts.getFeatures(view.name, ids, undefined, { asOf: tEnd });
    const atEnd = await ts.historical(view.name, [...ids.map((entity) => ({ entity, t: T0 + 20 })), ...ids.map((entity) => ({ entity, t: tEnd }))]);
    expect(atEnd.slice(4).map((r) => r.features)).toEqual(online.map((e) => Object.fromEntries(Object.entries(e.features).map(([n, f]) => [n, f.value]))));
    expect(atEnd[2]!.features.last_payload).toBe("before");
    // and by hand: labels kept, nothing after a row's time, null (windows 0) before any data
    const byHand = (entity: string, t: number) => historicalCases[0]!.expected!.find((r) => r.entity === entity && r.t === t)!;
    expect(byHand("r1", T0 + 1499)).toMatchObject({ label: expect.any(Number), note: expect.stringMatching(/^row \d+/), features: { open_complaints: 1, created_total: 1, last_type: "created", recent_types: ["created"], created_1h: 1, severity_1h: 2, last_payload: { room: 4, tags: ["a", "b"] } } });
    expect(byHand("r1", T0 + 1500).features).toMatchObject({ open_complaints: 2, min_severity: 0.25, last_payload: 12.5, recent_types: ["created", "created"] });
    expect(byHand("r1", T0 + HOUR).features).toMatchObject({ open_complaints: 3, created_1h: 1, severity_1h: 1, last_type: "created" });
    expect(byHand("42", T0 + 20).features).toMatchObject({ last_payload: "before", open_complaints: null }); // a counter `by` 0 is no contribution, online too
    expect(byHand("42", T0 + 30).features).toMatchObject({ last_payload: null, open_complaints: 1 });
    expect(byHand("ghost", T0 + 3 * HOUR).features).toEqual({ open_complaints: null, created_total: null, last_type: null, last_payload: null, max_severity: null, min_severity: null, recent_types: null, created_1h: 0, severity_1h: 0 });
    expect(historicalCases[0]!.expected!.map((r) => [r.entity, r.t])).toEqual(historicalCases[0]!.rows.map((r) => [r.entity, r.t]));
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
    const historicalFile = path.join(dir, "historical.json");
    const actual = path.join(dir, "actual");
    fs.mkdirSync(actual);
    fs.writeFileSync(casesFile, JSON.stringify(cases));
    fs.writeFileSync(historicalFile, JSON.stringify(historicalCases));
    const run = await pytest({
      SF_TEST_REDIS_URL: stack().REDIS_URL,
      SF_TEST_KEY_PREFIX: scope.keyPrefix,
      SF_TEST_CASES: casesFile,
      SF_TEST_ACTUAL: actual,
      SF_TEST_DATABASE_URL: stack().DATABASE_URL,
      SF_TEST_HISTORICAL: historicalFile,
      SF_TEST_ONLINE_VIEW: onlineView.name,
    });
    expect(run.code, run.output).toBe(0);
    expect(run.output).not.toMatch(/SKIPPED.*test_against_ts|SKIPPED.*test_historical_against_ts/);
    for (const c of cases) {
      const got: unknown = JSON.parse(fs.readFileSync(path.join(actual, `${c.name}.json`), "utf8"));
      expect(got, c.name).toEqual(c.expected);
    }
    for (const c of historicalCases) {
      const got: unknown = JSON.parse(fs.readFileSync(path.join(actual, `hist_${c.name}.json`), "utf8"));
      expect(got, `historical ${c.name}`).toEqual(c.expected!.map((r) => r.features));
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
