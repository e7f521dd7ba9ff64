/**
 * The feature sink's law on real Redis: a stream written in aggregated batches — split into
 * slices, with batches replayed whole and in part after simulated crashes — leaves every
 * entity hash identical (byte for byte) to the same stream written one input message at a
 * time, and equal to the pure feature algebra (lib/features/algebra.ts) applied record by
 * record.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorCode } from "../../lib/errors.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { applyMerged, mergeContributions } from "../../lib/features/algebra.ts";
import type { FeatureState, TimedValue } from "../../lib/features/algebra.ts";
import type { FeatureDef } from "../../lib/features/layout.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { REDIS_MODES, useRedis } from "../support/redis-modes.ts";
import type { RedisTarget } from "../support/redis-modes.ts";

const scope = new TestScope("fagg");
const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
/** The Redis of the block running: the shared one, or a Redis Cluster the file starts. */
let target: RedisTarget;

const view = {
  name: "activity",
  entity: "resident",
  key: "{rid}",
  event_time: "at",
  features: [
    { name: "open", kind: "counter", by: "{delta}" },
    { name: "created", kind: "counter", when: { field: "type", eq: "created" } },
    { name: "last_type", kind: "latest", field: "type" },
    { name: "max_sev", kind: "max", field: "sev" },
    { name: "min_sev", kind: "min", field: "sev" },
    { name: "recent", kind: "last_n", field: "type", n: 3 },
    { name: "created_1h", kind: "window_count", window: "1h", when: { field: "type", eq: "created" } },
    { name: "sev_1h", kind: "window_sum", field: "sev", window: "1h", buckets: 2 },
  ],
};
const DEFS: FeatureDef[] = [
  { name: "open", kind: "counter" },
  { name: "created", kind: "counter" },
  { name: "last_type", kind: "latest" },
  { name: "max_sev", kind: "max" },
  { name: "min_sev", kind: "min" },
  { name: "recent", kind: "last_n", n: 3 },
  { name: "created_1h", kind: "window_count", window_ms: HOUR, buckets: 2 },
  { name: "sev_1h", kind: "window_sum", window_ms: HOUR, buckets: 2 },
];

interface Ev {
  rid: string;
  type: string;
  at: number;
  sev: number;
  delta: number;
}
const event: fc.Arbitrary<Ev> = fc.record({
  rid: fc.constantFrom("r1", "r2", "r3"),
  type: fc.constantFrom("created", "closed", "note"),
  at: fc.integer({ min: -18, max: 18 }).map((m) => T0 + m * 10 * 60_000),
  sev: fc.integer({ min: -3, max: 9 }),
  delta: fc.integer({ min: -2, max: 3 }),
});
/** An input message: one to three records (a transform that fans out). */
const message = fc.array(event, { minLength: 1, maxLength: 3 });

/**
 * What the runner does with a fetched batch: slices into a folded batch, one flush; when the
 * sink answers that a replay overlaps an earlier write in part, the batch again, exact.
 */
async function flushBatch(a: Sink, records: StreamRecord[], slice: number): Promise<void> {
  for (const exact of [false, true]) {
    const b = a.batch!({ exact });
    for (let k = 0; k < records.length; k += slice) expect(b.add(records.slice(k, k + slice))).toEqual([]);
    try {
      expect((await b.flush())?.failed ?? []).toEqual([]);
      return;
    } catch (err) {
      if (exact || errorCode(err) !== "SF_ERR_SINK_REPLAY_OVERLAP") throw err;
    }
  }
}

function sink(prefix: string): Sink {
  return featuresSink.create(featuresSink.schema.parse({ key_prefix: prefix, views: [view] }), makeContext({ component: "sinks[0]:redis.features", connections: target.connections() })) as Sink;
}

function recordsOf(messages: Ev[][], from: number, to: number, partition = 0): StreamRecord[] {
  const out: StreamRecord[] = [];
  for (let o = from; o < to; o++) {
    // the records of one message share its origin object, as the runtime's are
    const first = makeRecord(messages[o]![0], { offset: String(o), topic: "agg.topic", partition });
    messages[o]!.forEach((v, i) => out.push(i === 0 ? first : { ...first, value: v, id: `${first.id}#${i}` }));
  }
  return out;
}

async function hashes(prefix: string): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const rid of ["r1", "r2", "r3"]) out[rid] = await target.redis.hgetall(target.entityKey(prefix, "activity", rid));
  return out;
}

/** The pure algebra, one record at a time: what each entity's features must be. */
function expected(messages: Ev[][]): Record<string, FeatureState[]> {
  const states: Record<string, FeatureState[]> = {};
  for (const ev of messages.flat()) {
    const s = (states[ev.rid] ??= DEFS.map(() => ({})));
    const values: unknown[] = [ev.delta || undefined, ev.type === "created" ? 1 : undefined, ev.type, ev.sev, ev.sev, ev.type, ev.type === "created" ? 1 : undefined, ev.sev];
    DEFS.forEach((def, f) => {
      const v = values[f];
      if (v !== undefined) s[f] = applyMerged(def, s[f]!, mergeContributions(def, [ev.at], [v])!);
    });
  }
  return states;
}

/** An entity hash decoded into the algebra's states (the fields docs/feature-store.md lists). */
function decode(h: Record<string, string>): FeatureState[] {
  return DEFS.map((def) => {
    const n = def.name;
    const t = h[`${n}@t`] === undefined ? {} : { t: Number(h[`${n}@t`]) };
    if (def.kind === "window_count" || def.kind === "window_sum") {
      if (h[`${n}@h`] === undefined) return {};
      const buckets = new Map<number, number>();
      for (const [k, v] of Object.entries(h)) if (k.startsWith(`${n}|`)) buckets.set(Number(k.slice(n.length + 1)), Number(v));
      return { head: Number(h[`${n}@h`]), buckets, ...t };
    }
    if (h[n] === undefined) return {};
    if (def.kind === "latest") return { value: JSON.parse(h[n]) as unknown, ...t };
    if (def.kind === "last_n") {
      const vs = JSON.parse(h[n]) as unknown[];
      const ts = JSON.parse(h[`${n}@ts`]!) as number[];
      return { value: vs.map((v, i): TimedValue => ({ v, t: ts[i]! })), ...t };
    }
    return { value: Number(h[n]), ...t };
  });
}

/** The aggregated hashes equal the one-message-at-a-time ones byte for byte, and the algebra's states. */
async function expectSame(aggregated: string, single: string, messages: Ev[][]): Promise<void> {
  const got = await hashes(aggregated);
  expect(got).toEqual(await hashes(single));
  const want = expected(messages);
  for (const rid of Object.keys(want)) expect(decode(got[rid]!)).toEqual(want[rid]);
}

afterAll(async () => {
  await scope.cleanup();
});

describeStack("redis.features: aggregated batches with replays == one message at a time == the algebra record by record", () => {
  describe.each(REDIS_MODES)("on %s Redis", (mode) => {
    const mine = useRedis(mode);
    beforeAll(() => {
      target = mine;
    });

    it("holds for random streams (out-of-order times, fan-out, negative deltas, window boundaries, partial replays)", async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 60 }), fc.array(fc.record({ size: fc.integer({ min: 1, max: 25 }), crash: fc.boolean(), slice: fc.integer({ min: 1, max: 10 }) }), { minLength: 1, maxLength: 40 }), async (messages, plan) => {
          const aggregated = `${scope.keyPrefix}${run}a:`;
          const single = `${scope.keyPrefix}${run++}s:`;
          const a = sink(aggregated);
          const s = sink(single);
          try {
            await a.open!();
            await s.open!();
            // Aggregated: batches from the committed offset; a "crash" flushes but does not commit,
            // so the next batch starts again there and ends elsewhere (a replay, whole or in part).
            let committed = 0;
            for (let i = 0; committed < messages.length; i++) {
              const step = plan[i % plan.length]!;
              const end = Math.min(messages.length, committed + step.size);
              await flushBatch(a, recordsOf(messages, committed, end), step.slice);
              if (!step.crash || i >= plan.length) committed = end;
            }
            // One input message per write: its fanned-out records share an offset, told apart by
            // their sequence in the write, so they cannot be written one per call.
            for (let o = 0; o < messages.length; o++) expect((await s.write(recordsOf(messages, o, o + 1)))?.failed ?? []).toEqual([]);
            await expectSame(aggregated, single, messages);
          } finally {
            await a.close();
            await s.close();
          }
        }),
        { numRuns: 40 },
      );
    }, 120_000);

    it("holds when batches of three partitions flush at once and are merged per entity (group commit)", async () => {
      // Partitions have no order between them: event times and severities differ by partition
      // (≡ p mod 3), so ties that only an interleaving would decide cannot occur.
      const inPartition = (p: number) => message.map((m) => m.map((e) => ({ ...e, at: e.at + p * 60_000, sev: e.sev * 3 + p })));
      const stream = (p: number) => fc.array(inPartition(p), { minLength: 1, maxLength: 40 });
      const steps = fc.array(fc.record({ size: fc.integer({ min: 1, max: 15 }), crash: fc.boolean() }), { minLength: 1, maxLength: 20 });
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.tuple(stream(0), stream(1), stream(2)), fc.tuple(steps, steps, steps), async (streams, plans) => {
          const aggregated = `${scope.keyPrefix}${run}ga:`;
          const single = `${scope.keyPrefix}${run++}gs:`;
          const a = sink(aggregated);
          const s = sink(single);
          try {
            await a.open!();
            await s.open!();
            const committed = [0, 0, 0];
            for (let i = 0; committed.some((c, p) => c < streams[p]!.length); i++) {
              await Promise.all(
                streams.map(async (messages, p) => {
                  if (committed[p]! >= messages.length) return;
                  const step = plans[p]![i % plans[p]!.length]!;
                  const end = Math.min(messages.length, committed[p]! + step.size);
                  await flushBatch(a, recordsOf(messages, committed[p]!, end, p), 500);
                  if (!step.crash || i >= plans[p]!.length) committed[p] = end;
                }),
              );
            }
            for (const [p, messages] of streams.entries()) {
              for (let o = 0; o < messages.length; o++) expect((await s.write(recordsOf(messages, o, o + 1, p)))?.failed ?? []).toEqual([]);
            }
            await expectSame(aggregated, single, streams.flat());
          } finally {
            await a.close();
            await s.close();
          }
        }),
        { numRuns: 40 },
      );
    }, 120_000);
  });
});
