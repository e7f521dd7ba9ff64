/**
 * The feature sink writes the offline log and Redis at once; the flush (and so the commit)
 * waits for both. After a failure between them either may hold a batch the other lacks;
 * these tests make each case happen on the real Redis and PostgreSQL and replay the batch as
 * the runner would: afterwards the log holds every record once and Redis every record once.
 */
import pg from "pg";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { partitionName } from "../../lib/features/offline-log.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";

const scope = new TestScope("logcrash");
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
let redis: Redis;
let pool: pg.Pool;
const sinks: Sink[] = [];
const view = `${scope.id}_v`;

beforeAll(() => {
  redis = new Redis(stack().REDIS_URL);
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 2 });
});
afterAll(async () => {
  for (const s of sinks) await s.close?.();
  redis.disconnect();
  await pool.end();
  await scope.cleanup();
});

/** A sink of the same logged view; `prefix` picks its Redis keys (the log is shared: one table, one view). */
async function sinkWith(prefix: string): Promise<Sink> {
  const features = [
    { name: "orders", kind: "counter" },
    { name: "spent", kind: "counter", by: "{amount}" },
    { name: "last_item", kind: "latest", field: "item" },
  ];
  const config = featuresSink.schema.parse({ key_prefix: `${scope.keyPrefix}${prefix}:`, views: [{ name: view, entity: "user", key: "{user}", event_time: "at", features, offline: { schema: scope.pgSchema } }] });
  const sink = featuresSink.create(config, makeContext({ connections: new Connections({ REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL }) })) as Sink;
  await sink.open!();
  sinks.push(sink);
  return sink;
}

const records = (from: number, to: number, topic: string): StreamRecord[] =>
  Array.from({ length: to - from }, (_, k) => {
    const i = from + k;
    return makeRecord({ user: `u${i % 7}`, item: `i${i}`, amount: i + 0.5, at: T0 + i }, { topic, offset: String(i) });
  });

/** A commit unit as the runner writes it: folded, and again record by record when Redis finds it applied in part. */
async function flush(sink: Sink, rs: StreamRecord[], exact = false): Promise<void> {
  const b = sink.batch!({ exact });
  b.add(rs);
  try {
    const out = await b.flush();
    if (out?.failed?.length) throw new Error(`${out.failed.length} failed`);
  } catch (err) {
    if (!exact && (err as { code?: string }).code === "SF_ERR_SINK_REPLAY_OVERLAP") return flush(sink, rs, true);
    throw err;
  }
}

const logRows = async (topic: string) =>
  (await pool.query<{ n: number; distinct: number }>(`SELECT count(*)::int AS n, count(DISTINCT ("offset", seq))::int AS distinct FROM "${scope.pgSchema}".feature_log WHERE view = $1 AND topic = $2`, [view, topic])).rows[0]!;

async function orders(prefix: string): Promise<number[]> {
  const client = new FeatureClient({ redis, keyPrefix: `${scope.keyPrefix}${prefix}:`, viewsRefreshMs: 0 });
  return (await client.getFeatures(view, Array.from({ length: 7 }, (_, u) => `u${u}`), ["orders"])).map((e) => Number(e.features.orders!.value ?? 0));
}
const expectedOrders = (n: number) => Array.from({ length: 7 }, (_, u) => Array.from({ length: n }, (_, i) => i).filter((i) => i % 7 === u).length);

describeStack("offline log and Redis written at once: a batch one of them lacks is completed by the replay", () => {
  it("Redis applied, the log write failed: the replay logs the records and Redis counts nothing twice", async () => {
    const sink = await sinkWith("a");
    const topic = "crash-a";
    const table = partitionName({ schema: scope.pgSchema, table: "feature_log" }, view);
    // the view's partition out of reach (renamed): the log write fails, Redis's does not
    await pool.query(`ALTER TABLE ${table} RENAME TO "feature_log_away"`);
    try {
      await expect(flush(sink, records(0, 300, topic))).rejects.toMatchObject({ code: "SF_ERR_FEATURES_OFFLINE_LOG" });
    } finally {
      await pool.query(`ALTER TABLE "${scope.pgSchema}"."feature_log_away" RENAME TO ${table.split(".")[1]}`);
    }
    expect(await orders("a")).toEqual(expectedOrders(300)); // Redis has the batch
    expect((await logRows(topic)).n).toBe(0); // the log has none of it
    // the batch was not committed: it comes again (and, as a later batch, with more records)
    await flush(sink, records(0, 300, topic));
    await flush(sink, records(0, 450, topic));
    expect(await logRows(topic)).toEqual({ n: 450, distinct: 450 });
    expect(await orders("a")).toEqual(expectedOrders(450));
  });

  it("the log took the batch, Redis did not: the replay applies it to Redis and logs nothing twice", async () => {
    // sink "b" writes log and Redis; sink "c" (other Redis keys, same log) then sees a log that
    // has the batch (in whole, then in part) and a Redis that lacks it
    const b = await sinkWith("b");
    const c = await sinkWith("c");
    const topic = "crash-b";
    await flush(b, records(0, 3000, topic));
    await flush(c, records(0, 3000, topic)); // every row there: all at or below the partition's mark, nothing copied
    expect(await logRows(topic)).toEqual({ n: 3000, distinct: 3000 });
    await flush(c, records(2500, 4000, topic)); // in part
    expect(await logRows(topic)).toEqual({ n: 4000, distinct: 4000 });
    expect(await orders("c")).toEqual(expectedOrders(4000));
    expect(await orders("b")).toEqual(expectedOrders(3000));
  });

  it("logs text with tabs, newlines, backslashes and quotes as it was (the COPY's escaping)", async () => {
    const sink = await sinkWith("d");
    const user = 'a\tb\nc\\d\r"e';
    const item = 'x"y\\z\t\\N';
    await flush(sink, [makeRecord({ user, item, amount: 1, at: T0 }, { topic: "crash-d", offset: "0" })]);
    const { rows } = await pool.query<{ entity: string; c: { last_item: string } }>(`SELECT entity, contributions AS c FROM "${scope.pgSchema}".feature_log WHERE view = $1 AND topic = 'crash-d'`, [view]);
    expect(rows).toEqual([{ entity: user, c: { orders: 1, spent: 1, last_item: item } }]);
  });
});
