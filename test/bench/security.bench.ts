/**
 * What TLS and authentication cost, plaintext vs secured in the same run, rounds interleaved:
 *   npm run bench -- security [records=200000] [rounds=3]
 * 1. Runtime (as the runtime benchmark): a bare kafkajs consumer, a topology
 *    decode→transform→null sink and decode→transform→kafka sink, on the open stack's Kafka
 *    (PLAINTEXT) and registry (HTTP) vs the secured stack's Kafka (SASL_SSL, SCRAM-SHA-512, ACLs)
 *    and registry (HTTPS), as the worker principal.
 * 2. The redis.features sink (as the redis-features benchmark, no Kafka) on one private
 *    redis-server with a plain port (default user, no password) and a TLS port (an ACL user
 *    with a password): the same server for both, so the difference is TLS + AUTH alone.
 * Needs both stacks up (npm run stack -- up; npm run stack -- up --secure).
 * BENCH_PART=runtime|features runs one part; BENCH_FEATURE_RECORDS (100,000).
 */
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Kafka, KafkaMessage } from "kafkajs";
import { stringify } from "yaml";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { createKafka } from "../../lib/connectors/kafka/client.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { createRedis } from "../../lib/connectors/redis/client.ts";
import { featuresSink } from "../../lib/connectors/redis/sink-features.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { Sink, StreamRecord } from "../../lib/runtime/contracts.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { secureCerts, secureEnv, secureOptionsFromEnv } from "../../lib/stack/secure/stack.ts";
import { makeContext, makeRecord } from "../support/records.ts";
import { BENCH_USER_VIEW, benchEnv, deleteKeys, machine, rate } from "./support.ts";

const N = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const PART = process.env.BENCH_PART ?? "all";
const FIX = path.resolve(import.meta.dirname, "../fixtures");
const silent = createLogger({ level: "silent" });
const run = Date.now().toString(36);
// The worker principal may use ml.* topics and streamfleet.* groups only: both legs use such names.
const input = `ml.bench-${run}.orders`;
const output = `${input}.out`;
const dlq = `${input}.dlq`;

const secureOptions = secureOptionsFromEnv(process.env);
const all = secureEnv(secureOptions);
/** The worker's variables (no __ADMIN): what a secured worker runs with. */
const secured = Object.fromEntries(Object.entries(all).filter(([k]) => !k.includes("__ADMIN")));
const legs = {
  plaintext: { env: benchEnv(), admin: (e: NodeJS.ProcessEnv) => createKafka(new Connections(e), "default", silent, "bench") },
  secured: { env: { ...process.env, ...secured } as NodeJS.ProcessEnv, admin: () => createKafka(new Connections(all), "admin", silent, "bench") },
};
type Leg = keyof typeof legs;
const adminOf = (leg: Leg): Kafka => (leg === "plaintext" ? legs.plaintext.admin(legs.plaintext.env) : legs.secured.admin());

async function produce(leg: Leg): Promise<void> {
  const kafka = adminOf(leg);
  const admin = kafka.admin();
  await admin.connect();
  await createTopicsReady(admin, [input, output, dlq], 3);
  await admin.disconnect();
  const codecs = SchemaCodecs.fromConnections(new Connections(legs[leg].env));
  const { text, type } = readAvsc("schemas/order.avsc", FIX);
  const encode = codecs.encoder(await codecs.register(`${input}-value`, text), type);
  const producer = kafka.producer();
  await producer.connect();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < N; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({ key: `o${i + j}`, value: encode({ id: `o${i + j}`, amount: (i + j) / 7, status: "open", note: null }) }));
    sends.push(producer.send({ topic: input, messages }));
    if (sends.length >= 20) await Promise.all(sends.splice(0));
  }
  await Promise.all(sends);
  await producer.disconnect();
}

/** A bare kafkajs eachBatch consumer (the worker's client settings), first batch to the N-th record committed. */
/** The bench process's CPU time (user + system), µs: the worker's cost per record, less sensitive than rates to other processes on the machine. */
const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
/** CPU µs per record of each timed run, by kind and leg (kind "features" for part 2). */
const cpu: Record<string, Record<Leg, number[]>> = {};
function noteCpu(kind: string, leg: Leg, us: number, n: number): void {
  cpu[kind] ??= { plaintext: [], secured: [] };
  cpu[kind][leg].push(us / n);
}

async function bare(leg: Leg, round: number): Promise<number> {
  const kafka = createKafka(new Connections(legs[leg].env), "default", silent, "bench");
  const consumer = kafka.consumer({ groupId: `streamfleet.bench-${run}-${round}-${leg}-bare` });
  await consumer.connect();
  await consumer.subscribe({ topics: [input], fromBeginning: true });
  let count = 0;
  let t0 = 0;
  let c0 = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.run({
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, uncommittedOffsets }) => {
      if (t0 === 0) {
        t0 = performance.now();
        c0 = cpuNow();
      }
      const messages: KafkaMessage[] = batch.messages;
      count += messages.length;
      resolveOffset(batch.lastOffset());
      await commitOffsetsIfNecessary(uncommittedOffsets());
      if (count >= N) done();
    },
  });
  await finished;
  const ms = performance.now() - t0;
  noteCpu("bare", leg, cpuNow() - c0, N);
  await consumer.disconnect();
  return ms;
}

async function topology(leg: Leg, round: number, name: string, sink: Record<string, unknown>): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-bench-"));
  fs.writeFileSync(
    path.join(dir, `${name}.yaml`),
    stringify({
      name: `bench-${run}-${round}-${leg}-${name}`,
      source: { topics: [input] },
      codec: { value: { type: "avro", schema: path.join(FIX, "schemas/order.avsc") } },
      steps: [{ transform: { module: path.join(FIX, "transforms.ts"), export: "enrich" } }],
      sinks: [sink],
      errors: { dlq: { topic: dlq } },
    }),
  );
  const fleet = await Fleet.load([dir], { env: legs[leg].env, logger: createLogger({ level: "warn" }) });
  await fleet.start();
  const sum = async (m: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> }, outcome?: string) =>
    (await m.get()).values.filter((x) => !outcome || x.labels.outcome === outcome).reduce((a, x) => a + x.value, 0);
  while ((await sum(fleet.metrics.consumed)) === 0) await new Promise((r) => setTimeout(r, 2));
  const t0 = performance.now();
  const c0 = cpuNow();
  while ((await sum(fleet.metrics.processed, "ok")) < N) await new Promise((r) => setTimeout(r, 10));
  const ms = performance.now() - t0;
  noteCpu(name, leg, cpuNow() - c0, N);
  await fleet.stop(5000);
  fs.rmSync(dir, { recursive: true, force: true });
  return ms;
}

async function runtimePart(): Promise<void> {
  await produce("plaintext");
  await produce("secured");
  const kinds = {
    bare: (leg: Leg, r: number) => bare(leg, r),
    null: (leg: Leg, r: number) => topology(leg, r, "null", { type: "null" }),
    kafka: (leg: Leg, r: number) => topology(leg, r, "kafka", { type: "kafka", topic: output, key: "{id}", value: { type: "avro", schema: path.join(FIX, "schemas/order-enriched.avsc") } }),
  };
  const figures: Record<string, Record<Leg, number[]>> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [kind, fn] of Object.entries(kinds)) {
      figures[kind] ??= { plaintext: [], secured: [] };
      // alternate which leg goes first, so that drift within a round hits both alike
      for (const leg of (r % 2 === 0 ? ["plaintext", "secured"] : ["secured", "plaintext"]) as Leg[]) {
        const ms = await fn(leg, r);
        figures[kind][leg].push((N / ms) * 1000);
        console.log(`  round ${r + 1} ${kind.padEnd(5)} ${leg.padEnd(9)}: ${rate(N, ms)}`);
      }
    }
  }
  console.log(`runtime: ${N.toLocaleString("en-US")} Avro records, 3 partitions; best of ${ROUNDS} rounds (spread: min–max)`);
  const labels: Record<string, string> = { bare: "bare kafkajs eachBatch consumer", null: "topology decode→transform→null sink", kafka: "topology decode→transform→kafka sink" };
  for (const [kind, f] of Object.entries(figures)) report(labels[kind]!, f.plaintext, f.secured, "rec/s", cpu[kind]);
  for (const leg of ["plaintext", "secured"] as Leg[]) {
    const admin = adminOf(leg).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [input, output, dlq] }).catch(() => {});
    await admin.disconnect();
  }
}

function report(label: string, plain: number[], secure: number[], unit: string, us?: Record<Leg, number[]>): void {
  const fmt = (xs: number[]) => `${Math.round(Math.max(...xs)).toLocaleString("en-US").padStart(9)} ${unit} (${Math.round(Math.min(...xs)).toLocaleString("en-US")}–${Math.round(Math.max(...xs)).toLocaleString("en-US")})`;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const cpuText = (leg: Leg) => (us ? `; CPU ${median(us[leg]).toFixed(2)} µs/rec (${Math.min(...us[leg]).toFixed(2)}–${Math.max(...us[leg]).toFixed(2)})` : "");
  console.log(`${label}`);
  console.log(`  plaintext : ${fmt(plain)}${cpuText("plaintext")}`);
  console.log(`  secured   : ${fmt(secure)}${cpuText("secured")}   rate ${((Math.max(...secure) / Math.max(...plain)) * 100).toFixed(0)} % of plaintext${us ? `, CPU ${((median(us.secured) / median(us.plaintext)) * 100).toFixed(0)} % of plaintext (medians)` : ""}`);
}

/** A private redis-server with a plain port (default user, no password) and a TLS port (an ACL user). */
async function dualRedis(): Promise<{ plain: string; tls: string; password: string; kill: () => void }> {
  const free = async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const p = (s.address() as net.AddressInfo).port;
    await new Promise((r) => s.close(r));
    return p;
  };
  const [plain, tls] = [await free(), await free()];
  const certs = secureCerts(secureOptions);
  const password = crypto.randomBytes(24).toString("base64url");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-bench-redis-"));
  const conf = path.join(dir, "redis.conf");
  const config = [`bind 127.0.0.1`, `port ${plain}`, `tls-port ${tls}`, `tls-cert-file ${certs.cert}`, `tls-key-file ${certs.key}`, `tls-ca-cert-file ${certs.ca}`, `tls-auth-clients no`, `save ""`, `appendonly no`, `dir ${dir}`, `user default on nopass ~* &* +@all`, `user bench on >${password} ~bench:* resetchannels +@all -@dangerous +info`];
  fs.writeFileSync(conf, `${config.join("\n")}\n`, { mode: 0o600 });
  const child = spawn("redis-server", [conf], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(tls, "127.0.0.1");
      s.once("connect", () => (s.destroy(), r(true)));
      s.once("error", () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { plain: `redis://127.0.0.1:${plain}`, tls: `rediss://localhost:${tls}`, password, kill: () => (child.kill("SIGKILL"), fs.rmSync(dir, { recursive: true, force: true })) };
}

async function featuresPart(): Promise<void> {
  const RECORDS = Number(process.env.BENCH_FEATURE_RECORDS ?? 100_000);
  const BATCH = 10_000;
  const SLICE = 500;
  const prefix = `bench:${crypto.randomBytes(4).toString("hex")}:`;
  const T0 = Date.now() - 3_600_000;
  const view = BENCH_USER_VIEW;
  const server = await dualRedis();
  const pwFile = path.join(os.tmpdir(), `sf-bench-${run}.secret`);
  fs.writeFileSync(pwFile, server.password, { mode: 0o600 });
  const envs: Record<Leg, Record<string, string>> = {
    plaintext: { REDIS_URL: server.plain },
    secured: { REDIS_URL: server.tls, REDIS_USERNAME: "bench", REDIS_PASSWORD_FILE: pwFile, REDIS_TLS_CA_FILE: secureCerts(secureOptions).ca },
  };
  const sinks = {} as Record<Leg, Sink>;
  for (const leg of ["plaintext", "secured"] as Leg[]) {
    // each leg its own key space (both under bench:, which the ACL user may write)
    sinks[leg] = featuresSink.create(featuresSink.schema.parse({ key_prefix: `${prefix}${leg}:`, views: [view] }), makeContext({ connections: new Connections(envs[leg]) })) as Sink;
    await sinks[leg].open!();
  }
  const input = (partition: number) =>
    Array.from({ length: RECORDS }, (_, i) => makeRecord({ userId: `u${i % 2000}`, item: `item-${i % 97}`, amount: (i % 50) + 0.5, at: T0 + i }, { topic: "bench", partition, offset: String(i) }));
  const apply = async (sink: Sink, records: StreamRecord[], leg?: Leg): Promise<number> => {
    const t0 = performance.now();
    const c0 = cpuNow();
    for (let i = 0; i < records.length; i += BATCH) {
      const b = sink.batch!();
      const batch = records.slice(i, i + BATCH);
      for (let j = 0; j < batch.length; j += SLICE) b.add(batch.slice(j, j + SLICE));
      await b.flush();
    }
    if (leg) noteCpu("features", leg, cpuNow() - c0, records.length);
    return (records.length / (performance.now() - t0)) * 1000;
  };
  for (const leg of ["plaintext", "secured"] as Leg[]) await apply(sinks[leg], input(1000).slice(0, BATCH)); // warm-up
  const f: Record<Leg, number[]> = { plaintext: [], secured: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const leg of (r % 2 === 0 ? ["plaintext", "secured"] : ["secured", "plaintext"]) as Leg[]) {
      const records = input(r);
      const x = await apply(sinks[leg], records, leg);
      f[leg].push(x);
      console.log(`  round ${r + 1} redis.features ${leg.padEnd(9)}: ${Math.round(x).toLocaleString("en-US")} rec/s`);
    }
  }
  console.log(`redis.features sink: ${RECORDS.toLocaleString("en-US")} records per round, batches of ${BATCH} (slices of ${SLICE}), 2,000 entities, 4 features; one private redis-server, plain port vs TLS port + ACL user; best of ${ROUNDS}`);
  report("redis.features sink (no Kafka)", f.plaintext, f.secured, "rec/s", cpu.features);
  for (const leg of ["plaintext", "secured"] as Leg[]) await sinks[leg].close();
  const cleanup = createRedis(new Connections({ REDIS_URL: server.plain }));
  await cleanup.connect();
  await deleteKeys(cleanup, prefix);
  cleanup.disconnect();
  server.kill();
  fs.rmSync(pwFile, { force: true });
}

console.log(`machine: ${machine()}`);
if (PART === "all" || PART === "features") await featuresPart();
if (PART === "all" || PART === "runtime") await runtimePart();
