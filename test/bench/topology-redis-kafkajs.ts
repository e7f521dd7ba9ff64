/**
 * The topology-redis benchmark's hand-written contenders, each run in its own process by
 * topology-redis.bench.ts: `bare` (kafkajs eachBatch, no decode: the physical reference) and
 * `hand` (what a skilled engineer writes by hand: the bar the topologies must clear).
 *
 * `hand` = kafkajs `eachBatch` + avsc (writer schema fetched from the registry by the id in
 * the Confluent header, the 5-byte header skipped), per-batch per-user aggregation in a Map,
 * ONE ioredis pipeline per batch — HINCRBY count, HINCRBYFLOAT sum, and one small Lua script
 * per user for the read-compare-write of max(score) and latest(category) by event time — then
 * resolveOffset + commit after `exec`. Its hash per user: `<prefix>hw:<user_id>` with fields
 * count, sum, max_score, category, category_t.
 *
 * What it gives up against a streamfleet topology:
 * - replay guard: a crash between `exec` and the commit re-applies the batch, so counts and
 *   sums count it twice (streamfleet keeps a per-partition watermark per entity);
 * - event-time order holds only for what its Lua compares (max, latest); nothing like
 *   last_n or windows, no TTL, no view registry for readers;
 * - no DLQ: a record that does not decode throws and the consumer retries the batch forever;
 *   a Redis outage crashes eachBatch and kafkajs restarts the consumer;
 * - no metrics, health, lag, graceful drain on SIGTERM, Redis Cluster hash tags.
 */
import { Kafka, logLevel } from "kafkajs";
import type { KafkaMessage } from "kafkajs";
import avro from "avsc";
import { Redis } from "ioredis";
import type { ChildConfig, Marks } from "./topology-redis-child.ts";
import { childConfig, fail, report } from "./topology-redis-child.ts";

const marks: Marks = { imported: performance.now() };
const cfg = childConfig();
const kafka = new Kafka({ clientId: `bench-${cfg.contender}`, brokers: cfg.brokers, logLevel: logLevel.NOTHING });

/**
 * The bare kafkajs eachBatch consumer of runtime.bench.ts (fresh group, 3 partitions at once),
 * timed from its first batch to the N-th record committed; `handle` is the per-batch work.
 */
async function timedConsumer(config: ChildConfig, handle: (messages: KafkaMessage[]) => Promise<void> | void): Promise<{ ms: number; committed: number }> {
  const consumer = kafka.consumer({ groupId: config.group });
  consumer.on(consumer.events.GROUP_JOIN, () => (marks.joined ??= performance.now()));
  await consumer.connect();
  await consumer.subscribe({ topics: [config.topic], fromBeginning: true });
  marks.ready = performance.now();
  let count = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.run({
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, uncommittedOffsets }) => {
      marks.firstBatch ??= performance.now();
      await handle(batch.messages);
      resolveOffset(batch.lastOffset());
      await commitOffsetsIfNecessary(uncommittedOffsets());
      marks.firstCommit ??= performance.now();
      count += batch.messages.length;
      if (count >= config.records) done();
    },
  });
  await finished;
  marks.done = performance.now();
  await consumer.disconnect();
  return { ms: marks.done - marks.firstBatch!, committed: count };
}

/** max(score) and latest(category) by event time need a read-compare-write: one call per user and batch. */
const MAX_LATEST = `
local cur = redis.call('HMGET', KEYS[1], 'max_score', 'category_t')
local out = {}
if not cur[1] or tonumber(ARGV[1]) > tonumber(cur[1]) then
  out[#out + 1] = 'max_score'; out[#out + 1] = ARGV[1]
end
if not cur[2] or tonumber(ARGV[3]) > tonumber(cur[2]) then
  out[#out + 1] = 'category'; out[#out + 1] = ARGV[2]
  out[#out + 1] = 'category_t'; out[#out + 1] = ARGV[3]
end
if #out > 0 then redis.call('HSET', KEYS[1], unpack(out)) end
return #out`;

interface UserEvent {
  user_id: string;
  amount: number;
  score: number;
  category: string;
  event_time: number;
}
interface Agg {
  count: number;
  sum: number;
  max: number;
  category: string;
  t: number;
}
/** The pipeline with the script defined on the client (ioredis adds it; its types cannot know). */
type Pipeline = ReturnType<Redis["pipeline"]> & { maxLatest(key: string, max: number, category: string, t: number): Pipeline };

async function handWritten(config: ChildConfig) {
  const redis = new Redis(config.redisUrl);
  redis.defineCommand("maxLatest", { numberOfKeys: 1, lua: MAX_LATEST });
  const types = new Map<number, avro.Type>();
  const writer = async (id: number) => {
    const res = await fetch(`${config.registryUrl}/schemas/ids/${id}`);
    if (!res.ok) throw new Error(`schema id ${id}: HTTP ${res.status}`);
    const type = avro.Type.forSchema(JSON.parse(((await res.json()) as { schema: string }).schema));
    types.set(id, type);
    return type;
  };
  const result = await timedConsumer(config, async (messages) => {
    const byUser = new Map<string, Agg>();
    for (const m of messages) {
      const buf = m.value!;
      const id = buf.readInt32BE(1);
      const type = types.get(id) ?? (await writer(id));
      const e = type.fromBuffer(buf.subarray(5)) as UserEvent;
      const a = byUser.get(e.user_id);
      if (!a) byUser.set(e.user_id, { count: 1, sum: e.amount, max: e.score, category: e.category, t: e.event_time });
      else {
        a.count++;
        a.sum += e.amount;
        if (e.score > a.max) a.max = e.score;
        if (e.event_time > a.t) {
          a.category = e.category;
          a.t = e.event_time;
        }
      }
    }
    const p = redis.pipeline() as Pipeline;
    for (const [user, a] of byUser) {
      const key = `${config.keyPrefix}hw:${user}`;
      p.hincrby(key, "count", a.count);
      p.hincrbyfloat(key, "sum", a.sum);
      p.maxLatest(key, a.max, a.category, a.t);
    }
    const replies = await p.exec();
    const err = replies?.find(([e]) => e)?.[0];
    if (!replies || err) throw err ?? new Error("pipeline aborted");
  });
  redis.disconnect();
  return result;
}

try {
  const result = cfg.contender === "bare" ? await timedConsumer(cfg, () => {}) : await handWritten(cfg);
  await report({ contender: cfg.contender, ...result, marks });
} catch (err) {
  fail(err);
}
