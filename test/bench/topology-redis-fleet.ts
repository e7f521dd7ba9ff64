/**
 * The topology-redis benchmark's streamfleet contenders, each run in its own process by
 * topology-redis.bench.ts: the same source (codec avro through the registry) into
 * - `features`: a `redis.features` sink, one view keyed by {user_id} with event_time and four
 *   features: count, sum of amount, max of score, latest category;
 * - `cache`: a `redis.cache` sink, key user:{user_id} (one SET per record today).
 * Run through `Fleet` like runtime.bench.ts; start-up steps are timed from the topology's logs.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { stringify } from "yaml";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import type { StreamPlatform } from "../../lib/runtime/contracts.ts";
import type { ChildConfig, Marks } from "./topology-redis-child.ts";
import { childConfig, fail, report } from "./topology-redis-child.ts";
import { setWorkerV8Flags } from "../../lib/cli/worker-heap.ts";

const marks: Marks = { imported: performance.now() };
const cfg = childConfig();
// as `streamfleet run` does once its heap is bounded (BENCH_TOPOLOGY_FLAGS=--allocation-site-pretenuring keeps V8's default)
const v8Flags = setWorkerV8Flags();

/** The sink under test: the features view of the issue, or the cache. */
function sink(config: ChildConfig): Record<string, unknown> {
  if (config.contender === "cache") return { type: "redis.cache", key_prefix: config.keyPrefix, key: "user:{user_id}" };
  return {
    type: "redis.features",
    key_prefix: config.keyPrefix,
    views: [
      {
        name: config.view,
        entity: "user",
        key: "{user_id}",
        event_time: "event_time",
        features: [
          { name: "count", kind: "counter" },
          { name: "sum_amount", kind: "counter", by: "{amount}" },
          { name: "max_score", kind: "max", field: "score" },
          { name: "last_category", kind: "latest", field: "category" },
        ],
      },
    ],
  };
}

/**
 * Marks the start-up steps the runner goes through (timing only: the calls are unchanged): the
 * codec's schema registration, then sinks opened (ensureTopics comes next), topics ready.
 */
function markSteps(fleet: Fleet): void {
  const codecs = fleet.codecs;
  const register = codecs.register.bind(codecs);
  codecs.register = async (...args) => {
    const id = await register(...args);
    marks.registered ??= performance.now();
    return id;
  };
  const platform = (fleet as unknown as { platform?: StreamPlatform }).platform;
  if (!platform) return;
  const ensure = platform.ensureTopics.bind(platform);
  platform.ensureTopics = async (...args) => {
    marks.sinksOpened ??= performance.now();
    await ensure(...args);
    marks.topicsReady ??= performance.now();
  };
}

/** BENCH_SOURCE=max_bytes_per_partition=65536,concurrency=3: source settings other than the model's defaults. */
function sourceSettings(): Record<string, number> {
  const pairs = (process.env.BENCH_SOURCE ?? "").split(",").filter(Boolean);
  return Object.fromEntries(pairs.map((p) => [p.split("=")[0]!, Number(p.split("=")[1])]));
}

/** Info logs of start-up ("joined consumer group", "topology started") become marks. */
function markingLogger() {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line) continue;
        const { msg, level } = JSON.parse(line) as { msg: string; level: number };
        if (msg === "joined consumer group") marks.joined ??= performance.now();
        else if (msg === "topology started") marks.started ??= performance.now();
        else if (level >= 40) process.stderr.write(`${line}\n`);
      }
      cb();
    },
  });
  return createLogger({ level: "info", destination: stream });
}

async function run(config: ChildConfig) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-bench-"));
  const name = config.group;
  fs.writeFileSync(
    path.join(dir, `${name}.yaml`),
    stringify({
      name,
      source: { topics: [config.topic], group: config.group, ...sourceSettings() },
      codec: { value: { type: "avro", schema: config.schemaPath } },
      sinks: [sink(config)],
    }),
  );
  const env = { ...process.env, KAFKA_BROKERS: config.brokers.join(","), SCHEMA_REGISTRY_URL: config.registryUrl, REDIS_URL: config.redisUrl };
  const fleet = await Fleet.load([dir], { env, logger: markingLogger() });
  marks.ready = performance.now();
  markSteps(fleet);
  await fleet.start();
  marks.fleetStarted = performance.now();
  // "ok" is counted once the batch is committed (runner.ts): first commit and the N-th record.
  // A record dead-lettered or filtered would never count as ok: stop and fail instead of waiting.
  let committed = 0;
  let lost = 0;
  while (committed + lost < config.records) {
    await new Promise((r) => setTimeout(r, marks.firstCommit === undefined ? 2 : 10));
    if (marks.firstBatch === undefined && (await fleet.metrics.consumed.get()).values.some((v) => v.value > 0)) marks.firstBatch = performance.now();
    [committed, lost] = [0, 0];
    for (const { labels, value } of (await fleet.metrics.processed.get()).values) {
      if (labels.outcome === "ok") committed += value;
      else if (labels.outcome === "dlq" || labels.outcome === "filtered") lost += value;
    }
    if (committed > 0) marks.firstCommit ??= performance.now();
  }
  marks.done = performance.now();
  if (lost) throw new Error(`${lost} records went to the DLQ or were filtered: expected every record in the sink`);
  await fleet.stop(10_000);
  fs.rmSync(dir, { recursive: true, force: true });
  return { ms: marks.done - marks.firstBatch!, committed };
}

try {
  await report({ contender: cfg.contender, ...(await run(cfg)), marks, v8Flags });
} catch (err) {
  fail(err);
}
