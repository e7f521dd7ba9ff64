/**
 * Online = offline, on real Redis and PostgreSQL: a stream written through the
 * `redis.features` sink with an offline log — event times out of order, messages that fan
 * out, batches replayed whole and in part after simulated crashes — leaves the log such that
 * point-in-time retrieval gives what the online store returns, for every entity and feature
 * kind, at the moments where the two mean the same thing:
 *  (a) at any moment, as of the newest applied event time T: the online store holds every
 *      applied record, all with event time ≤ T, and so does the log;
 *  (b) after the whole stream, as of T_e for each moment e at which every record with event
 *      time ≤ T_e had been applied and none later (an epoch's end): the log answers what the
 *      online store answered then, although later records — late ones too — arrived since.
 */
import fc from "fast-check";
import pg from "pg";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { errorCode } from "../../lib/errors.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";

const scope = new TestScope("offon");
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const ENTITIES = ["r1", "r2", "r3"];
let redis: Redis;
let pool: pg.Pool;
let schema: string;

const features = [
  { name: "open", kind: "counter", by: "{delta}" },
  { name: "created", kind: "counter", when: { field: "type", eq: "created" } },
  { name: "last_type", kind: "latest", field: "type" },
  { name: "max_sev", kind: "max", field: "sev" },
  { name: "min_sev", kind: "min", field: "sev" },
  { name: "recent", kind: "last_n", field: "type", n: 3 },
  { name: "created_1h", kind: "window_count", window: "1h", when: { field: "type", eq: "created" } },
  { name: "sev_1h", kind: "window_sum", field: "sev", window: "1h", buckets: 2 },
];
const NAMES = features.map((f) => f.name);

interface Ev {
  rid: string;
  type: string;
  at: number;
  sev: number;
  delta: number;
}
/** Events of epoch `e`: event times anywhere in [T0 + e·40 min, T0 + (e+1)·40 min), so 1h windows are crossed. */
const event = (e: number): fc.Arbitrary<Ev> =>
  fc.record({
    rid: fc.constantFrom(...ENTITIES),
    type: fc.constantFrom("created", "closed", "note"),
    at: fc.integer({ min: 0, max: 39 }).map((m) => T0 + e * 40 * 60_000 + m * 60_000),
    sev: fc.integer({ min: -3, max: 9 }),
    delta: fc.integer({ min: -2, max: 3 }),
  });
/** An epoch: input messages of one to three records (a fan-out), in random event-time order. */
const epoch = (e: number) => fc.array(fc.array(event(e), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 12 });

function sink(prefix: string, view: string): Sink {
  const config = featuresSink.schema.parse({ key_prefix: prefix, views: [{ name: view, entity: "resident", key: "{rid}", event_time: "at", features, offline: { schema } }] });
  return featuresSink.create(config, makeContext({ component: "sinks[0]:redis.features", connections: new Connections({ REDIS_URL: stack().REDIS_URL, DATABASE_URL: stack().DATABASE_URL }) })) as Sink;
}

/** What the runner does with a fetched batch, exact mode again when a replay overlaps in part. */
async function flushBatch(a: Sink, records: StreamRecord[]): Promise<void> {
  for (const exact of [false, true]) {
    const b = a.batch!({ exact });
    expect(b.add(records)).toEqual([]);
    try {
      expect((await b.flush())?.failed ?? []).toEqual([]);
      return;
    } catch (err) {
      if (exact || errorCode(err) !== "SF_ERR_SINK_REPLAY_OVERLAP") throw err;
    }
  }
}

function recordsOf(messages: Ev[][], from: number, to: number): StreamRecord[] {
  const out: StreamRecord[] = [];
  for (let o = from; o < to; o++) {
    const first = makeRecord(messages[o]![0], { offset: String(o), topic: "offon.topic" });
    messages[o]!.forEach((v, i) => out.push(i === 0 ? first : { ...first, value: v, id: `${first.id}#${i}` }));
  }
  return out;
}

type Values = Record<string, unknown[]>;

async function online(client: FeatureClient, view: string, asOf: number): Promise<Values> {
  const got = await client.getFeatures(view, ENTITIES, NAMES, { asOf });
  return Object.fromEntries(got.map((e) => [e.id, NAMES.map((n) => e.features[n]!.value)]));
}

async function offline(client: FeatureClient, view: string, asOf: number): Promise<Values> {
  const got = await client.historical(view, ENTITIES.map((entity) => ({ entity, t: asOf })), NAMES);
  return Object.fromEntries(got.map((r) => [r.entity, NAMES.map((n) => r.features[n])]));
}

/** Writes the messages from `from` to `to` in batches by `plan` (a crash writes without committing: the next batch replays). */
async function writeRange(a: Sink, messages: Ev[][], from: number, to: number, plan: { size: number; crash: boolean }[], onMoment: (applied: number) => Promise<unknown>): Promise<void> {
  let committed = from;
  let applied = from;
  for (let i = 0; committed < to; i++) {
    const step = plan[i % plan.length]!;
    const end = Math.min(to, committed + step.size);
    await flushBatch(a, recordsOf(messages, committed, end));
    applied = Math.max(applied, end);
    await onMoment(applied);
    if (!step.crash || i >= plan.length) committed = end;
  }
}

beforeAll(async () => {
  redis = new Redis(stack().REDIS_URL);
  pool = new pg.Pool({ connectionString: stack().DATABASE_URL, max: 2 });
  schema = scope.pgSchema;
});
afterAll(async () => {
  redis.disconnect();
  await pool.end();
  await scope.cleanup();
});

describeStack("offline feature log: point-in-time retrieval == the online store", () => {
  it("at every moment, as of the newest applied event time; after the stream, as of each epoch's end", async () => {
    let run = 0;
    const plan = fc.array(fc.record({ size: fc.integer({ min: 1, max: 8 }), crash: fc.boolean() }), { minLength: 1, maxLength: 10 });
    await fc.assert(
      fc.asyncProperty(fc.tuple(epoch(0), epoch(1), epoch(2), epoch(3)), plan, fc.array(event(0), { maxLength: 4 }), async (epochs, steps, late) => {
        const view = `offon_${run++}`;
        const prefix = `${scope.keyPrefix}${view}:`;
        const client = new FeatureClient({ redis, keyPrefix: prefix, viewsRefreshMs: 0, offline: pool });
        const a = sink(prefix, view);
        const messages: Ev[][] = [];
        const atEpochEnd: Array<{ t: number; values: Values }> = [];
        /** (a): online as of the newest applied event time == the log as of it, now. */
        const same = async (applied: number) => {
          const newest = Math.max(...messages.slice(0, applied).flat().map((ev) => ev.at));
          const now = await online(client, view, newest);
          expect(await offline(client, view, newest)).toEqual(now);
          return { t: newest, values: now };
        };
        try {
          await a.open!();
          for (const e of epochs) {
            const from = messages.length;
            messages.push(...e);
            await writeRange(a, messages, from, messages.length, steps, same);
            atEpochEnd.push(await same(messages.length));
          }
          // (b) after the stream, the log answers as of each epoch's end what the online store
          // answered then: the later epochs' records (all later in event time) leak into nothing
          // (one request, every entity at every epoch's end, in shuffled order: several segments per entity)
          const asked = atEpochEnd.flatMap(({ t }) => ENTITIES.map((entity) => ({ entity, t }))).reverse();
          const got = await client.historical(view, asked, NAMES);
          expect(got.map((r) => NAMES.map((n) => r.features[n]))).toEqual(asked.map(({ entity, t }) => atEpochEnd.find((e) => e.t === t)!.values[entity]));
          // late records of the first epoch, after everything else: (a) still holds
          messages.push(late);
          if (late.length) await writeRange(a, messages, messages.length - 1, messages.length, steps, same);
        } finally {
          await a.close();
        }
      }),
      { numRuns: 25 },
    );
  }, 180_000);
});
