/**
 * Scale-out: 1, 2 and 3 workers (separate `streamfleet run` processes, as Kubernetes would run
 * replicas) of one topology on a 12-partition topic, with a CPU-bound transform
 * (scale-transform.ts, ~0.2 ms of a core per record) and the null sink.
 *   flock /tmp/streamfleet-bench.lock npm run bench -- scale [records=400000] [window_s=20]
 * For each worker count, on a fresh consumer group over the same records: workers join one
 * at a time (the pause each join costs is measured: the longest stretch without a committed
 * offset moving, from the join to 20 s after), then the group's committed rate is measured
 * over `window_s` seconds once the last one settled; for 3 workers, one then leaves (SIGTERM)
 * and that pause is measured too. Progress is the group's committed offsets, read every 100 ms.
 * Needs the stack (npm run stack -- up). Prints the figures for BENCHMARKS.md / docs/scaling.md.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { stringify } from "yaml";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { benchEnv, machine } from "./support.ts";

const N = Number(process.argv[2] ?? 400_000);
const WINDOW_MS = Number(process.argv[3] ?? 20) * 1000;
const PARTITIONS = 12;
const ROOT = path.resolve(import.meta.dirname, "../..");
const env = benchEnv();
const run = Date.now().toString(36);
const input = `bench.${run}.scale`;
const kafka = new Kafka({ clientId: "bench-scale", brokers: env.KAFKA_BROKERS!.split(","), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-scale-"));

async function produce(): Promise<void> {
  await createTopicsReady(admin, [input], PARTITIONS);
  const producer = kafka.producer();
  await producer.connect();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < N; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, N - i) }, (_, j) => {
      const id = i + j;
      return { key: `k${id}`, value: JSON.stringify({ id, text: `order-${String(id).padStart(6, "0")} placed by customer ${id % 4711} in store ${id % 42}` }) };
    });
    sends.push(producer.send({ topic: input, messages }));
    if (sends.length >= 20) await Promise.all(sends.splice(0));
  }
  await Promise.all(sends);
  await producer.disconnect();
}

function writeTopology(name: string): string {
  const file = path.join(dir, `${name}.yaml`);
  const topology = {
    name,
    source: { topics: [input], commit_interval_ms: 200, session_timeout_ms: 10_000 },
    codec: { value: { type: "json" } },
    steps: [{ transform: { module: path.join(import.meta.dirname, "scale-transform.ts"), export: "score" } }],
    sinks: [{ type: "null" }],
    errors: { dlq: { topic: `${input}.${name}.dlq` } },
  };
  fs.writeFileSync(file, stringify(topology));
  return file;
}

function startWorker(file: string, log: string): { child: ChildProcess; exited: Promise<void> } {
  const out = fs.openSync(log, "a");
  const child = spawn(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "run", file, "--json", "--admin-port", "0"], {
    cwd: ROOT,
    env: { ...env, LOG_LEVEL: "warn" },
    stdio: ["ignore", out, out],
  });
  fs.closeSync(out);
  return { child, exited: new Promise((r) => child.once("exit", () => r())) };
}

/** Committed records of the group, sampled every 100 ms. */
function progress(group: string) {
  const samples: Array<{ at: number; n: number }> = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const offsets = await admin.fetchOffsets({ groupId: group, topics: [input] }).catch(() => []);
      const n = offsets.flatMap((t) => t.partitions).reduce((a, p) => a + Math.max(0, Number(p.offset)), 0);
      samples.push({ at: Date.now(), n });
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    samples,
    now: () => samples.at(-1)?.n ?? 0,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The longest stretch in [from, to] during which the committed count did not move. */
function longestPause(samples: Array<{ at: number; n: number }>, from: number, to: number): number {
  const inside = samples.filter((s) => s.at >= from && s.at <= to);
  let pause = 0;
  let since = inside[0]?.at ?? from;
  for (let i = 1; i < inside.length; i++) {
    if (inside[i]!.n > inside[i - 1]!.n) since = inside[i]!.at;
    pause = Math.max(pause, inside[i]!.at - since);
  }
  return pause;
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

interface Result {
  workers: number;
  rate: number;
  /** Records per CPU second of the workers, and the share of a core each worker got, over the window. */
  perCpuSecond: number;
  coresUsed: number;
  joins: number[];
  leave?: number;
}

async function measure(workers: number): Promise<Result> {
  const name = `scale-${run}-w${workers}`;
  const file = writeTopology(name);
  const p = progress(`streamfleet.${name}`);
  const procs: Array<ReturnType<typeof startWorker>> = [];
  const joins: number[] = [];
  try {
    procs.push(startWorker(file, path.join(dir, `${name}-1.log`)));
    await waitFor(() => p.now() > 2000, 60_000, "the first worker's commits");
    await sleep(3000);
    for (let w = 2; w <= workers; w++) {
      const joinedAt = Date.now();
      procs.push(startWorker(file, path.join(dir, `${name}-${w}.log`)));
      await sleep(20_000);
      joins.push(longestPause(p.samples, joinedAt, Date.now()));
    }
    const cpu = () => procs.reduce((a, w) => a + cpuSeconds(w.child.pid), 0);
    const [t0, n0, c0] = [Date.now(), p.now(), cpu()];
    await sleep(WINDOW_MS);
    const [t1, n1, c1] = [Date.now(), p.now(), cpu()];
    if (n1 >= N) throw new Error(`all ${N} records consumed before the window closed: give more records`);
    let leave: number | undefined;
    if (workers === 3) {
      const leftAt = Date.now();
      procs.at(-1)!.child.kill("SIGTERM");
      await sleep(20_000);
      leave = longestPause(p.samples, leftAt, Date.now());
    }
    return { workers, rate: ((n1 - n0) / (t1 - t0)) * 1000, perCpuSecond: (n1 - n0) / (c1 - c0), coresUsed: ((c1 - c0) / (t1 - t0)) * 1000, joins, leave };
  } finally {
    for (const w of procs) w.child.kill("SIGTERM");
    await Promise.all(procs.map((w) => w.exited));
    await p.stop();
  }
}

await admin.connect();
try {
  const t = Date.now();
  await produce();
  console.log(`machine: ${machine()}; load average before: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`produced ${N.toLocaleString("en-US")} records to ${input} (${PARTITIONS} partitions) in ${((Date.now() - t) / 1000).toFixed(1)}s`);
  const results: Result[] = [];
  for (const w of [1, 2, 3]) {
    const r = await measure(w);
    results.push(r);
    const pauses = r.joins.map((j) => `${(j / 1000).toFixed(1)}s`).join(", ");
    console.log(
      `  ${w} worker(s): ${Math.round(r.rate).toLocaleString("en-US")} rec/s (${Math.round(r.rate / w).toLocaleString("en-US")} per worker, ${(r.rate / results[0]!.rate).toFixed(2)}x one); ` +
        `workers used ${r.coresUsed.toFixed(2)} cores, ${Math.round(r.perCpuSecond).toLocaleString("en-US")} rec per worker CPU-second` +
        `${pauses ? `; pause per join ${pauses}` : ""}${r.leave !== undefined ? `; pause when one leaves ${(r.leave / 1000).toFixed(1)}s` : ""}; load average ${os.loadavg()[0]!.toFixed(2)}`,
    );
  }
} finally {
  const topics = (await admin.listTopics()).filter((x) => x.startsWith(input));
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.disconnect();
  fs.rmSync(dir, { recursive: true, force: true });
}
