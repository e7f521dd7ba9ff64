/**
 * Snapshots of the offline log (lib/features/snapshots.ts) on real Redis and PostgreSQL, written
 * by the features sink: point-in-time reads that start from them answer exactly what a read of
 * the whole log answers — for every feature kind, windows longer than the period included — and
 * keep doing so when late rows arrive after a build (recorded by the writers, skipped by readers,
 * repaired by the next build), when the sink writes while a build runs, and when the view's
 * definition or the period changes. The truth each time is the same read with snapshots out of
 * play: the view's definition plus one unused feature, whose fingerprint no snapshot has.
 */
import pg from "pg";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { historicalValues } from "../../lib/features/historical.ts";
import type { HistoricalAsk, LoggedViewDef } from "../../lib/features/historical.ts";
import { snapshotTables } from "../../lib/features/offline-log.ts";
import { buildSnapshots, DAY_MS, snapshotRead } from "../../lib/features/snapshots.ts";
import { featuresCommand } from "../../lib/cli/features-command.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";

const scope = new TestScope("snapshots");
const T0 = Date.UTC(2024, 0, 1);
const H = 3_600_000;
let redis: Redis;
let pool: pg.Pool;
let sink: Sink;
let pgc: pg.Client;
let view: LoggedViewDef;
let offset = 0;
const name = () => `${scope.id}_orders`;
const features = [
  { name: "orders", kind: "counter" },
  { name: "spent", kind: "counter", field: "amount" },
  { name: "last_item", kind: "latest", field: "item" },
  { name: "recent", kind: "last_n", field: "item", n: 3 },
  { name: "max_amount", kind: "max", field: "amount" },
  { name: "min_amount", kind: "min", field: "amount" },
  { name: "orders_1h", kind: "window_count", window: "1h" },
  { name: "amount_2d", kind: "window_sum", window: "2d", field: "amount" },
];
const tables = () => snapshotTables({ schema: scope.pgSchema, table: "feature_log" });

/** A deterministic shuffle: records reach the sink out of event-time order. */
function rng(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

/** Writes `n` records of entities u0..u4 with event times in [from, from + span), shuffled, in flushes of 50. */
async function write(n: number, from: number, span: number, seed: number): Promise<void> {
  const next = rng(seed);
  const records = Array.from({ length: n }, () => {
    const i = offset++;
    return makeRecord({ user: `u${Math.floor(next() * 5)}`, item: `i${i}`, amount: 1 + Math.floor(next() * 90), at: from + Math.floor(next() * span) }, { topic: "snap", offset: String(i) });
  });
  for (let k = 0; k < records.length; k += 50) {
    const b = sink.batch!();
    b.add(records.slice(k, k + 50));
    expect(await b.flush()).toBeUndefined();
  }
}

/** Asks of u0..u5 (u5 never written) at random times, period ends and the log's own event times. */
async function asks(): Promise<HistoricalAsk[]> {
  const next = rng(7);
  const out: HistoricalAsk[] = Array.from({ length: 300 }, () => ({ entity: `u${Math.floor(next() * 6)}`, t: T0 - DAY_MS + Math.floor(next() * 12 * DAY_MS) }));
  for (let d = 0; d <= 10; d++) out.push({ entity: `u${d % 5}`, t: T0 + d * DAY_MS }, { entity: `u${d % 5}`, t: T0 + d * DAY_MS + 1 });
  const { rows } = await pool.query<{ entity: string; t: string }>(`SELECT entity, event_time::text AS t FROM "${scope.pgSchema}".feature_log WHERE view = $1 ORDER BY "offset" LIMIT 60`, [name()]);
  return [...out, ...rows.map((r) => ({ entity: r.entity, t: Number(r.t) }))];
}

/** The same read with no snapshot usable: the definition plus an unused feature, a fingerprint no build made. */
const truth = async (a: HistoricalAsk[]) => historicalValues(pool, { ...view, features: [...view.features, { name: "zz_probe", kind: "counter" }] }, a, { names: view.features.map((f) => f.name) });
const read = (a: HistoricalAsk[]) => historicalValues(pool, view, a);

beforeAll(async () => {
  redis = new Redis(stack().REDIS_URL);
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 3 });
  pgc = new pg.Client({ connectionString: stack().DATABASE_URL });
  await pgc.connect();
  const config = featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views: [{ name: name(), entity: "user", key: "{user}", event_time: "at", features, offline: { schema: scope.pgSchema } }] });
  sink = featuresSink.create(config, makeContext({ connections: new Connections({ REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL }) })) as Sink;
  await sink.open!();
  await write(800, T0, 8 * DAY_MS, 1);
  view = (await new FeatureClient({ redis, keyPrefix: scope.keyPrefix }).known(name())) as LoggedViewDef;
});
afterAll(async () => {
  await sink?.close();
  redis.disconnect();
  await pgc?.end();
  await pool.end();
  await scope.cleanup();
});

describeStack("offline log snapshots", () => {
  describe("in order", () => {
    it("reads from snapshots answer what the whole log answers, and do start from them", async () => {
      const a = await asks();
      const expected = await truth(a);
      expect(await snapshotRead(pool, view)).toBeUndefined();
      const built = await buildSnapshots(pgc, view, { now: T0 + 20 * DAY_MS });
      // one snapshot per entity per day it has rows in
      const { rows: days } = await pool.query<{ n: number }>(`SELECT count(DISTINCT (entity, (event_time - $2) / $3))::int AS n FROM "${scope.pgSchema}".feature_log WHERE view = $1`, [name(), T0, DAY_MS]);
      expect(built).toMatchObject({ horizon: T0 + 19 * DAY_MS, written: days[0]!.n, repaired: 0, rebuilt: false });
      expect(built.written).toBeGreaterThan(30);
      expect(await snapshotRead(pool, view)).toBeDefined();
      expect(await read(a)).toEqual(expected);
      expect(expected.some((v) => v[0] !== null && v[6] !== 0)).toBe(true); // the asks meet data, windows included

      // the reads do start from the snapshots: one made wrong on purpose shows in the answers after it, and only there
      const { rows: snap } = await pool.query<{ through: string; state: Record<string, number> }>(`SELECT through::text, state FROM ${tables().snapshots} WHERE view = $1 AND entity = 'u2' ORDER BY through LIMIT 1 OFFSET 3`, [name()]);
      const through = Number(snap[0]!.through);
      await pool.query(`UPDATE ${tables().snapshots} SET state = jsonb_set(state, '{orders}', to_jsonb(1000000)) WHERE view = $1 AND entity = 'u2' AND through = $2`, [name(), through]);
      const probe = [{ entity: "u2", t: through }, { entity: "u2", t: through - 1 }];
      const [at, before] = await read(probe);
      expect(at![0]).toBe(1_000_000);
      expect(before).toEqual((await truth(probe))[1]);
      await pool.query(`UPDATE ${tables().snapshots} SET state = jsonb_set(state, '{orders}', to_jsonb($3::float8)) WHERE view = $1 AND entity = 'u2' AND through = $2`, [name(), through, snap[0]!.state.orders!]);
      expect(await read(a)).toEqual(expected);
    });

    it("late rows after a build: recorded by the writer, skipped by readers, repaired by the next build", async () => {
      await write(60, T0 + 2 * DAY_MS, 3 * DAY_MS, 2); // all before the horizon: late
      await write(40, T0 + 19 * DAY_MS + 1, DAY_MS, 3); // after it: not late
      const { rows: stale } = await pool.query<{ entity: string; t: string }>(`SELECT entity, min(event_time)::text AS t FROM ${tables().stale} WHERE view = $1 GROUP BY entity ORDER BY entity`, [name()]);
      expect(stale.length).toBeGreaterThan(0);
      expect(stale.every((s) => Number(s.t) >= T0 + 2 * DAY_MS && Number(s.t) < T0 + 5 * DAY_MS)).toBe(true);
      const a = await asks();
      const expected = await truth(a);
      expect(await read(a)).toEqual(expected);
      const built = await buildSnapshots(pgc, view, { now: T0 + 20 * DAY_MS });
      expect(built.repaired).toBe(stale.length);
      expect((await pool.query(`SELECT count(*)::int AS n FROM ${tables().stale}`)).rows[0].n).toBe(0);
      expect(await read(a)).toEqual(expected);
    });

    it("the sink writes, late rows too, while a build runs: nothing is missed", async () => {
      const writes = (async () => {
        for (let k = 0; k < 6; k++) await write(50, T0 + k * DAY_MS, 2 * DAY_MS, 10 + k);
      })();
      const builds = (async () => {
        for (let k = 0; k < 3; k++) await buildSnapshots(pgc, view, { now: T0 + (20 + k) * DAY_MS });
      })();
      await Promise.all([writes, builds]);
      const a = await asks();
      const expected = await truth(a);
      expect(await read(a)).toEqual(expected);
      await buildSnapshots(pgc, view, { now: T0 + 23 * DAY_MS });
      expect(await read(a)).toEqual(expected);
    });

    it("a changed definition or period: snapshots unused until built again, then built from scratch", async () => {
      const a = await asks();
      const expected = await truth(a);
      const changed = { ...view, features: view.features.map((f) => (f.name === "recent" ? { ...f, n: 2 } : f)) };
      expect(await snapshotRead(pool, changed)).toBeUndefined();
      const sixHours = await buildSnapshots(pgc, view, { now: T0 + 23 * DAY_MS, every: 6 * H });
      expect(sixHours.rebuilt).toBe(true);
      const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${tables().snapshots} WHERE view = $1 AND through % $2 <> 0`, [name(), 6 * H]);
      expect(rows[0]!.n).toBe(0);
      expect(sixHours.written).toBeGreaterThan(100);
      expect(await read(a)).toEqual(expected);
    });

    it("a role that may read the log but not the snapshot tables reads the log alone, same answers", async () => {
      const role = `${scope.id}_reader`;
      await pool.query(`CREATE ROLE "${role}" LOGIN`);
      try {
        await pool.query(`GRANT USAGE ON SCHEMA "${scope.pgSchema}" TO "${role}"; GRANT SELECT ON "${scope.pgSchema}".feature_log TO "${role}"`);
        const url = new URL(stack().DATABASE_URL);
        url.username = role;
        const reader = new pg.Pool({ connectionString: url.toString(), max: 1 });
        try {
          expect(await snapshotRead(reader, view)).toBeUndefined();
          const a = await asks();
          expect(await historicalValues(reader, view, a)).toEqual(await truth(a));
        } finally {
          await reader.end();
        }
      } finally {
        await pool.query(`DROP OWNED BY "${role}"; DROP ROLE "${role}"`);
      }
    });

    it("the CLI: features compact builds them; bad flags and views without use for them are refused", async () => {
      const env = { REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL };
      expect(await featuresCommand(["compact", "--view", name(), "--key-prefix", scope.keyPrefix, "--every", "12h", "--grace", "2h"], env)).toBe(0);
      const { rows } = await pool.query<{ every: string }>(`SELECT every::text FROM ${tables().horizon} WHERE view = $1`, [name()]);
      expect(rows[0]!.every).toBe(String(12 * H));
      const a = await asks();
      expect(await read(a)).toEqual(await truth(a));
      await expect(featuresCommand(["compact", "--view", name(), "--key-prefix", scope.keyPrefix, "--every", "daily"], env)).rejects.toThrow(/--every: expected a duration such as 1d/);
      await expect(buildSnapshots(pgc, { ...view, features: view.features.filter((f) => f.kind.startsWith("window_")) })).rejects.toThrow(/has only window features/);
      await expect(buildSnapshots(pgc, view, { every: 10 })).rejects.toThrow(/whole number of ms ≥ 1000/);
    });
  });
});
