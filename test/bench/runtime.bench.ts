/**
 * Topology throughput vs a bare consumer of the same topic, same run.
 *   npm run bench -- runtime [records=300000]
 *   KAFKA_CLIENT=kafkajs npm run bench -- runtime   (the topologies and the bare
 *   consumer/pipe on kafkajs; by default @platformatic/kafka, the connector's default)
 * Each round also runs the broker's own ConsumerPerformance tool (Java, the stack's Kafka jars
 * plus kafka-tools, fetched once from Maven Central into .stack/kafka/tools; needs java and, the
 * first time, mvn) on the same topic: the physical limit the null sink is compared with.
 * Needs the stack (npm run stack -- up). Prints figures and ratios for BENCHMARKS.md.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Kafka, logLevel } from "kafkajs";
import type { KafkaMessage } from "kafkajs";
import { DEFAULT_KAFKA_CLIENT } from "../../lib/connectors/kafka/platformatic/options.ts";
import { stringify } from "yaml";
import { compatibilityPartitioner, Consumer as PConsumer, Producer as PProducer } from "@platformatic/kafka";
import type { Message as PMessage } from "@platformatic/kafka";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import { stackKafkaTools, stackOptionsFromEnv } from "../../lib/stack/stack.ts";
import { benchEnv, machine, rate } from "./support.ts";

const N = Number(process.argv[2] ?? 300_000);

/** BENCH_SOURCE=max_bytes_per_partition=1048576,commit_interval_ms=0: source settings other than the model's defaults. */
function sourceSettings(): Record<string, number> {
  const pairs = (process.env.BENCH_SOURCE ?? "").split(",").filter(Boolean);
  return Object.fromEntries(pairs.map((p) => [p.split("=")[0]!, Number(p.split("=")[1])]));
}
const env = benchEnv();
const FIX = path.resolve(import.meta.dirname, "../fixtures");
const run = Date.now().toString(36);
let run2 = run;
const input = `bench.${run}.orders`;
const kafka = new Kafka({ clientId: "bench", brokers: env.KAFKA_BROKERS!.split(","), logLevel: logLevel.NOTHING });

async function produce(): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await createTopicsReady(admin, [input, `${input}.out`, `${input}.pipe`], 3);
  await admin.disconnect();
  const codecs = new SchemaCodecs(env.SCHEMA_REGISTRY_URL!);
  const { text, type } = readAvsc("schemas/order.avsc", FIX);
  const encode = codecs.encoder(await codecs.register(`${input}-value`, text), type);
  const producer = kafka.producer();
  await producer.connect();
  // 1,000 messages per send (kafkajs groups a send's messages in O(n²)), 20 sends in flight.
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < N; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({ key: `o${i + j}`, value: encode({ id: `o${i + j}`, amount: (i + j) / 7, status: "open", note: null }) }));
    sends.push(producer.send({ topic: input, messages }));
    if (sends.length >= 20) await Promise.all(sends.splice(0));
  }
  await Promise.all(sends);
  await producer.disconnect();
}

/**
 * A bare kafkajs eachBatch consumer of the input on a fresh group, timed from its first batch
 * to the N-th record committed; `handle` is the per-batch work (nothing, a decode, a re-produce).
 */
async function timedConsumer(group: string, handle: (messages: KafkaMessage[]) => Promise<void> | void): Promise<number> {
  const consumer = kafka.consumer({ groupId: `bench.${run2}.${group}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [input], fromBeginning: true });
  let count = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  let t0 = 0;
  await consumer.run({
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, uncommittedOffsets }) => {
      if (t0 === 0) t0 = performance.now();
      await handle(batch.messages);
      count += batch.messages.length;
      resolveOffset(batch.lastOffset());
      await commitOffsetsIfNecessary(uncommittedOffsets());
      if (count >= N) done();
    },
  });
  await finished;
  const ms = performance.now() - t0;
  await consumer.disconnect();
  return ms;
}

const CLIENT = process.env.KAFKA_CLIENT === "kafkajs" || process.env.KAFKA_CLIENT === "platformatic" ? process.env.KAFKA_CLIENT : DEFAULT_KAFKA_CLIENT;

/**
 * The same bare consumer on @platformatic/kafka: its own message stream (earliest, no
 * autocommit), `handle` per group of messages as they arrive, a commit every 1,000 records.
 */
async function timedPlatformatic(group: string, handle: (messages: PMessage[]) => Promise<void> | void): Promise<number> {
  const consumer = new PConsumer({ clientId: "bench", bootstrapBrokers: env.KAFKA_BROKERS!.split(","), groupId: `bench.${run2}.${group}`, maxWaitTime: 1000 });
  const stream = await consumer.consume({ topics: [input], mode: "committed", fallbackMode: "earliest", autocommit: false });
  let count = 0;
  let t0 = 0;
  let chunk: PMessage[] = [];
  for await (const m of stream as AsyncIterable<PMessage>) {
    if (t0 === 0) t0 = performance.now();
    chunk.push(m);
    count++;
    if (chunk.length >= 1000 || count >= N || stream.readableLength === 0) {
      await handle(chunk);
      void Promise.resolve(chunk[chunk.length - 1]!.commit()).catch(() => {});
      chunk = [];
    }
    if (count >= N) break;
  }
  const ms = performance.now() - t0;
  await consumer.close(true);
  return ms;
}

const bare = (decode?: (b: Buffer) => unknown) =>
  CLIENT === "platformatic"
    ? timedPlatformatic(decode ? "bare-avro" : "bare", (messages) => {
        if (decode) for (const m of messages) decode(m.value);
      })
    : timedConsumer(decode ? "bare-avro" : "bare", (messages) => {
        if (decode) for (const m of messages) decode(m.value!);
      });

/** The bare pipe on @platformatic/kafka: its idempotent producer, acks=all, 1,000 records a send. */
async function pipePlatformatic(): Promise<number> {
  const producer = new PProducer({ clientId: "bench", bootstrapBrokers: env.KAFKA_BROKERS!.split(","), idempotent: true, acks: -1, partitioner: compatibilityPartitioner });
  const ms = await timedPlatformatic("pipe", async (messages) => {
    await producer.send({ messages: messages.map((m) => ({ topic: `${input}.pipe`, key: m.key, value: m.value })) });
  });
  await producer.close();
  return ms;
}

/** Baseline for the Kafka sink: a bare consumer that re-produces every batch (no decode). */
async function pipe(): Promise<number> {
  if (CLIENT === "platformatic") return pipePlatformatic();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const ms = await timedConsumer("pipe", async (messages) => {
    for (let i = 0; i < messages.length; i += 1000) {
      await producer.send({ topic: `${input}.pipe`, acks: -1, messages: messages.slice(i, i + 1000).map((m) => ({ key: m.key, value: m.value })) });
    }
  });
  await producer.disconnect();
  return ms;
}

/**
 * The broker's own consumer performance tool (`org.apache.kafka.tools.ConsumerPerformance`, the
 * stack's Kafka version, Java client defaults) on the same topic and a fresh group: the physical
 * limit of fetching it on this machine. Returns its fetch rate (join excluded, as for the others)
 * and its MB/s.
 */
async function consumerPerformance(): Promise<{ ms: number; mbs: number }> {
  const cp = stackKafkaTools(stackOptionsFromEnv(process.env));
  const args = ["-Xms256m", "-Xmx1g", "-cp", cp, "org.apache.kafka.tools.ConsumerPerformance"];
  args.push("--bootstrap-server", env.KAFKA_BROKERS!, "--topic", input, "--num-records", String(N), "--group", `bench.${run2}.perf`, "--timeout", "30000");
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn("java", args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (d: Buffer) => (text += d.toString()));
    child.stderr.on("data", (d: Buffer) => (text += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(text) : reject(new Error(`ConsumerPerformance exited ${code}: ${text.slice(-500)}`))));
  });
  // A header line, then one line of values: "start.time, end.time, …, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec".
  const lines = out.split("\n").map((l) => l.trim());
  const head = lines.findIndex((l) => l.startsWith("start.time"));
  if (head < 0 || !lines[head + 1]) throw new Error(`ConsumerPerformance printed no figures: ${out.slice(-500)}`);
  const names = lines[head]!.split(",").map((x) => x.trim());
  const values = lines[head + 1]!.split(",").map((x) => x.trim());
  const get = (k: string) => Number(values[names.indexOf(k)]);
  if (get("data.consumed.in.nMsg") < N) throw new Error(`ConsumerPerformance read ${get("data.consumed.in.nMsg")} of ${N} records`);
  return { ms: get("fetch.time.ms"), mbs: get("fetch.MB.sec") };
}

async function topology(name: string, sink: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-bench-"));
  fs.writeFileSync(
    path.join(dir, `${name}.yaml`),
    stringify({
      name: `bench-${run2}-${name}`,
      // BENCH_SLICE=n sets source.max_batch_records (default: the model's).
      source: { topics: [input], ...(process.env.BENCH_SLICE ? { max_batch_records: Number(process.env.BENCH_SLICE) } : {}), ...sourceSettings() },
      codec: { value: { type: "avro", schema: path.join(FIX, "schemas/order.avsc") } },
      steps: [{ transform: { module: path.join(FIX, "transforms.ts"), export: "enrich" } }],
      sinks: [sink],
      ...extra,
    }),
  );
  const fleet = await Fleet.load([dir], { env, logger: createLogger({ level: "warn" }) });
  await fleet.start();
  const sum = async (m: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> }, outcome?: string) =>
    (await m.get()).values.filter((x) => !outcome || x.labels.outcome === outcome).reduce((a, x) => a + x.value, 0);
  // Time from the first record consumed to the last one acknowledged: start-up (schema registration, group join) excluded, as for the bare consumer.
  while ((await sum(fleet.metrics.consumed)) === 0) await new Promise((r) => setTimeout(r, 2));
  const t0 = performance.now();
  let last = { t: t0, n: 0 };
  for (let n = 0; n < N; n = await sum(fleet.metrics.processed, "ok")) {
    await new Promise((r) => setTimeout(r, 10));
    // BENCH_TRACE=1: the rate over each quarter second, to see whether it holds over a long run.
    if (process.env.BENCH_TRACE && performance.now() - last.t >= 250) {
      console.log(`  ${name} ${((performance.now() - t0) / 1000).toFixed(2)} s: ${rate(n - last.n, performance.now() - last.t)}`);
      last = { t: performance.now(), n };
    }
  }
  const ms = performance.now() - t0;
  await fleet.stop(5000);
  return ms;
}

await produce();
const ROUNDS = Number(process.argv[3] ?? 3);
console.log(`machine: ${machine()}; ${N} Avro records, 3 partitions; best of ${ROUNDS} rounds, each on a fresh consumer group; client ${CLIENT}`);
const best = { perf: Infinity, bare: Infinity, avro: Infinity, nul: Infinity, pipe: Infinity, kafka: Infinity, eos: Infinity };
const reader = readAvsc("schemas/order.avsc", FIX).type;
// BENCH_ONLY=bare,nul (a comma list of perf, bare, avro, nul, pipe, kafka, eos) runs only those, e.g. under --cpu-prof.
// eos (delivery: exactly_once) runs on @platformatic/kafka only: kafkajs has no exactly-once here.
const only = new Set((process.env.BENCH_ONLY ?? `perf,bare,avro,nul,pipe,kafka${CLIENT === "platformatic" ? ",eos" : ""}`).split(","));
let note = "";
/** The stack's broker's CPU time so far (ms, from /proc), or -1 when it is not the local stack's. */
function brokerCpuMs(): number {
  try {
    const pid = fs.readFileSync(path.join(stackOptionsFromEnv(process.env).stateDir, "run", "kafka.pid"), "utf8").trim();
    const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop()!.trim().split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return -1;
  }
}
const measure = async (which: keyof typeof best, fn: () => Promise<number>) => {
  if (!only.has(which)) return;
  note = "";
  const cpu0 = process.cpuUsage();
  const broker0 = brokerCpuMs();
  const wall0 = performance.now();
  const ms = await fn();
  // CPU per record over the contender's whole run (start-up and stop included), this process's
  // and the broker's: less at the mercy of the machine's other load than records/s.
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - wall0;
  const broker = brokerCpuMs() - broker0;
  if (which !== "perf") note += `, CPU ${(((cpu.user + cpu.system) / 1000 / wall) * 100).toFixed(0)} % of a core, ${((cpu.user + cpu.system) / N).toFixed(2)} µs/record`;
  if (broker0 >= 0) note += `, broker ${((broker * 1000) / N).toFixed(2)} µs/record`;
  // Every round's figure, for the spread.
  console.log(`  round ${run2.split("-").pop()} ${which}: ${rate(N, ms)}${note}`);
  best[which] = Math.min(best[which], ms);
};
let perfMbs = 0;
for (let round = 0; round < ROUNDS; round++) {
  run2 = `${run}-${round}`;
  await measure("perf", async () => {
    const { ms, mbs } = await consumerPerformance();
    if (ms < best.perf) perfMbs = mbs;
    note = `, ${mbs.toFixed(1)} MB/s`;
    return ms;
  });
  await measure("bare", () => bare());
  await measure("avro", () => bare((b) => reader.fromBuffer(b.subarray(5))));
  await measure("nul", () => topology("null", { type: "null" }));
  await measure("pipe", () => pipe());
  const kafkaSink = { type: "kafka", topic: `${input}.out`, key: "{id}", value: { type: "avro", schema: path.join(FIX, "schemas/order-enriched.avsc") } };
  await measure("kafka", () => topology("kafka", kafkaSink));
  await measure("eos", () => topology("eos", kafkaSink, { delivery: "exactly_once" }));
}
const line = (label: string, ms: number, base?: number, baseLabel?: string) =>
  console.log(`${label.padEnd(40)} ${rate(N, ms).padStart(14)}  ${(ms / 1000).toFixed(2)} s${base ? `  ${((base / ms) * 100).toFixed(0)} % of ${baseLabel}` : ""}`);
if (best.perf < Infinity) console.log(`${"Kafka ConsumerPerformance (Java client)".padEnd(40)} ${rate(N, best.perf).padStart(14)}  ${(best.perf / 1000).toFixed(2)} s  ${perfMbs.toFixed(1)} MB/s`);
line(CLIENT === "platformatic" ? "bare @platformatic/kafka stream consumer" : "bare kafkajs eachBatch consumer", best.bare);
line("bare consumer + avsc decode", best.avro);
line("topology decode→transform→null sink", best.nul, best.bare, "bare consumer");
line("bare consumer → producer (pipe)", best.pipe);
line("topology decode→transform→kafka sink", best.kafka, best.pipe, "bare pipe");
if (best.perf < Infinity) {
  for (const [label, ms] of [["bare consumer", best.bare], ["topology → null sink", best.nul]] as const) {
    if (ms < Infinity) console.log(`${label} ÷ ConsumerPerformance: ${(best.perf / ms).toFixed(2)}×`);
  }
}
console.log(`topology → kafka sink vs bare consumer: ${((best.bare / best.kafka) * 100).toFixed(0)} %`);
if (best.eos < Infinity) line("topology → kafka sink, exactly-once", best.eos, best.kafka, "at-least-once");
const admin = kafka.admin();
await admin.connect();
await admin.deleteTopics({ topics: [input, `${input}.out`, `${input}.pipe`, ...Array.from({ length: ROUNDS }, (_, r) => [`bench-${run}-${r}-null.dlq`, `bench-${run}-${r}-kafka.dlq`, `bench-${run}-${r}-eos.dlq`]).flat()] }).catch(() => {});
await admin.disconnect();
