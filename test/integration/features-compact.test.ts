/**
 * `streamfleet features compact --view V` on real Redis and PostgreSQL: the view's offline log
 * partition, written in arrival order (entities interleaved), comes out in (entity, event_time)
 * order — each entity's rows together — with the same rows, and point-in-time answers the same
 * as before; clear errors for an unknown view and a view without a log.
 */
import pg from "pg";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Sink } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { featuresCommand } from "../../lib/cli/features-command.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";

const scope = new TestScope("compact");
const T0 = Date.UTC(2024, 0, 1);
let redis: Redis;
let pool: pg.Pool;
let sink: Sink;
const view = () => `${scope.id}_orders`;
const features = [
  { name: "orders", kind: "counter" },
  { name: "last_item", kind: "latest", field: "item" },
  { name: "recent", kind: "last_n", field: "item", n: 3 },
  { name: "max_amount", kind: "max", field: "amount" },
  { name: "orders_1h", kind: "window_count", window: "1h" },
];

beforeAll(async () => {
  redis = new Redis(stack().REDIS_URL);
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 2 });
  const views = [
    { name: view(), entity: "user", key: "{user}", event_time: "at", features, offline: { schema: scope.pgSchema } },
    { name: `${scope.id}_online`, entity: "user", key: "{user}", event_time: "at", features: [{ name: "n", kind: "counter" }] },
  ];
  const config = featuresSink.schema.parse({ key_prefix: scope.keyPrefix, views });
  sink = featuresSink.create(config, makeContext({ connections: new Connections({ REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL }) })) as Sink;
  await sink.open!();
  // 600 records of 4 entities, interleaved as a live stream writes them, in 6 flushes
  for (let f = 0; f < 6; f++) {
    const b = sink.batch!();
    b.add(Array.from({ length: 100 }, (_, i) => {
      const n = f * 100 + i;
      return makeRecord({ user: `u${n % 4}`, item: `i${n}`, amount: (n * 37) % 101, at: T0 + n * 60_000 }, { topic: "compact", offset: String(n) });
    }));
    expect(await b.flush()).toBeUndefined();
  }
});
afterAll(async () => {
  await sink?.close();
  redis.disconnect();
  await pool.end();
  await scope.cleanup();
});

/** The entities of the view's rows in the table's physical order, runs collapsed: ["u0", "u1", ...]. */
async function physicalRuns(): Promise<string[]> {
  const { rows } = await pool.query<{ entity: string }>(`SELECT entity FROM "${scope.pgSchema}".feature_log WHERE view = $1 ORDER BY ctid`, [view()]);
  return rows.map((r) => r.entity).filter((e, i, all) => i === 0 || all[i - 1] !== e);
}

describeStack("streamfleet features compact", () => {
  it("puts each entity's rows together, keeps every row and every point-in-time answer", async () => {
    const client = new FeatureClient({ redis, keyPrefix: scope.keyPrefix, offline: pool });
    const asks = Array.from({ length: 40 }, (_, i) => ({ entity: `u${i % 5}`, t: T0 + i * 15 * 60_000 + (i % 3) })); // u4: never written
    const before = await client.historical(view(), asks);
    const countBefore = (await pool.query(`SELECT count(*)::int AS n, count(DISTINCT "offset")::int AS d FROM "${scope.pgSchema}".feature_log WHERE view = $1`, [view()])).rows[0];
    expect(countBefore).toEqual({ n: 600, d: 600 });
    expect((await physicalRuns()).length).toBeGreaterThan(500); // arrival order: the entity changes almost every row

    const env = { REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL };
    expect(await featuresCommand(["compact", "--view", view(), "--key-prefix", scope.keyPrefix, "--cluster"], env)).toBe(0);

    expect(await physicalRuns()).toEqual(["u0", "u1", "u2", "u3"]);
    const { rows: order } = await pool.query<{ ok: boolean }>(
      `SELECT bool_and(event_time >= prev) AS ok FROM (SELECT entity, event_time, lag(event_time) OVER (ORDER BY ctid) AS prev, lag(entity) OVER (ORDER BY ctid) AS pe
         FROM "${scope.pgSchema}".feature_log WHERE view = $1) x WHERE pe = entity`,
      [view()],
    );
    expect(order[0]!.ok).toBe(true); // and in event-time order within an entity
    expect((await pool.query(`SELECT count(*)::int AS n, count(DISTINCT "offset")::int AS d FROM "${scope.pgSchema}".feature_log WHERE view = $1`, [view()])).rows[0]).toEqual(countBefore);
    expect(await client.historical(view(), asks)).toEqual(before);
    // the log is written on after it, as before
    const b = sink.batch!();
    b.add([makeRecord({ user: "u1", item: "late", amount: 500, at: T0 + 3 * 60_000 }, { topic: "compact", offset: "600" })]);
    expect(await b.flush()).toBeUndefined();
    const [row] = await client.historical(view(), [{ entity: "u1", t: T0 + 3 * 60_000 }], ["orders", "max_amount"]);
    expect(row!.features).toEqual({ orders: 2, max_amount: 500 }); // u1's record at minute 1 and the late one at minute 3
  });

  it("an unknown view, a view without an offline log: clear errors, nothing done", async () => {
    const env = { REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL };
    await expect(featuresCommand(["compact", "--view", `${scope.id}_nope`, "--key-prefix", scope.keyPrefix], env)).rejects.toThrow(/unknown feature view/);
    await expect(featuresCommand(["compact", "--view", `${scope.id}_online`, "--key-prefix", scope.keyPrefix], env)).rejects.toThrow(/has no offline log/);
    await expect(featuresCommand(["compact", "--key-prefix", scope.keyPrefix], env)).rejects.toThrow(/features compact needs --view/);
  });
});
