/**
 * Exactly-once Kafka → Kafka (`delivery: exactly_once`, KAFKA_CLIENT=platformatic): during a
 * run, workers are SIGKILLed again and again and one is stopped (SIGSTOP) past its session
 * timeout and then resumed — a zombie that wakes up holding an open transaction. A
 * read_committed reader of the output must see every input exactly once, in per-key order.
 * The same scenario with `delivery: at_least_once` must show duplicates: the check can fail.
 *
 * EOS_RECORDS sets how many records (100,000 by default).
 */
import fs from "node:fs";
import { afterAll, expect, it } from "vitest";
import type { Kafka } from "kafkajs";
import { writeTopologies } from "../support/fleet.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";
import type { WorkerProcess } from "../support/worker.ts";

const scope = new TestScope("eos");
/** Every worker started, so none outlives a failed or timed-out test. */
const spawned: WorkerProcess[] = [];
afterAll(async () => {
  for (const w of spawned) {
    w.child.kill("SIGCONT");
    w.child.kill("SIGKILL");
  }
  await scope.cleanup();
});

function start(dir: string, env: NodeJS.ProcessEnv): WorkerProcess {
  const w = spawnWorker(dir, env);
  spawned.push(w);
  return w;
}

const N = Number(process.env.EOS_RECORDS ?? 100_000);
const KEYS = 400;
const PARTITIONS = 6;
const SESSION_MS = 8000;

/** What a read_committed reader of the output saw: every record's id, key and per-key sequence, in partition order. */
async function readCommitted(kafka: Kafka, topic: string) {
  const seen = new Map<string, number>();
  const order = new Map<string, number>();
  const outOfOrder: string[] = [];
  let total = 0;
  // kafkajs reads read_committed unless told `readUncommitted`: aborted transactions never show.
  const consumer = kafka.consumer({ groupId: scope.group(`reader-${topic}`), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const v = JSON.parse(message.value!.toString()) as { id: string; key: string; seq: number };
      total++;
      seen.set(v.id, (seen.get(v.id) ?? 0) + 1);
      const prev = order.get(v.key) ?? -1;
      if (v.seq <= prev) outOfOrder.push(`${v.key}: ${v.seq} after ${prev}`);
      order.set(v.key, Math.max(prev, v.seq));
    },
  });
  return { seen, outOfOrder, total: () => total, stop: () => consumer.disconnect() };
}

async function produce(topic: string): Promise<void> {
  const producer = scope.producer();
  await producer.connect();
  for (let start = 0; start < N; start += 2000) {
    const messages = Array.from({ length: Math.min(2000, N - start) }, (_, j) => {
      const i = start + j;
      const key = `k${i % KEYS}`;
      return { key, value: JSON.stringify({ id: `r${i}`, key, seq: Math.floor(i / KEYS) }) };
    });
    await producer.send({ topic, messages });
  }
  await producer.disconnect();
}

/**
 * Two workers on a backlog. As the output grows, the worker running longest is SIGKILLed and
 * a new one started (eight times); once, at 40 %, one is stopped for the session timeout + 6 s
 * and resumed: it wakes up holding what it had taken, its transaction open.
 */
async function chaos(delivery: "exactly_once" | "at_least_once", label: string) {
  const [input, output] = [scope.topic(`${label}-in`), scope.topic(`${label}-out`)];
  await scope.createTopics([input, output], PARTITIONS);
  await produce(input);
  const name = `${scope.id}-${label}`;
  const dir = writeTopologies([
    {
      name,
      // A millisecond a record: a fetched batch takes seconds, so kills land inside open units.
      source: { topics: [input], session_timeout_ms: SESSION_MS },
      codec: { value: { type: "json" } },
      steps: [{ transform: { module: "./transforms.ts", export: "slow" } }],
      sinks: [{ type: "kafka", topic: output, key: "{key}", value: { type: "json" } }],
      errors: { dlq: { topic: scope.topic(`${label}-dlq`) } },
      delivery,
    },
  ]);
  const env = { KAFKA_CLIENT: "platformatic", LOG_LEVEL: "info" };
  const reader = await readCommitted(scope.kafka(), output);
  const workers: WorkerProcess[] = [start(dir, env), start(dir, env)];
  const t0 = Date.now();
  let kills = 0;
  let stalls = 0;
  let zombie: { log: string; wokeAt: number } | undefined;
  const events: [number, "kill" | "stall"][] = [[0.06, "kill"], [0.14, "kill"], [0.22, "kill"], [0.3, "kill"], [0.4, "stall"], [0.5, "kill"], [0.6, "kill"], [0.7, "kill"], [0.8, "kill"]];
  try {
    for (const [share, what] of events) {
      await waitUntil(() => reader.seen.size >= N * share, 120_000, `${share * 100} % of the ids in the output (had ${reader.seen.size})`);
      // The worker started first: it has surely joined and taken partitions by now.
      const victim = workers[0]!;
      if (what === "stall") {
        victim.child.kill("SIGSTOP");
        stalls++;
        await new Promise((r) => setTimeout(r, SESSION_MS + 6000));
        victim.child.kill("SIGCONT");
        zombie = { log: victim.logFile, wokeAt: Date.now() };
        workers.push(workers.shift()!);
        continue;
      }
      victim.child.kill("SIGKILL");
      await victim.exited;
      kills++;
      workers.shift();
      const next = start(dir, env);
      workers.push(next);
      // The next kill comes once this one runs (it takes the partitions at the following rebalance).
      await waitUntil(() => fs.existsSync(next.logFile) && fs.readFileSync(next.logFile, "utf8").includes('"msg":"worker started"'), 60_000, "the new worker to start");
    }
    await waitUntil(() => reader.seen.size >= N, 180_000, `all ${N} ids in the output (had ${reader.seen.size})`);
    // A duplicate committed late would show by now.
    await new Promise((r) => setTimeout(r, 4000));
  } finally {
    for (const w of workers) {
      w.child.kill("SIGCONT");
      w.child.kill("SIGTERM");
    }
    await Promise.all(workers.map((w) => w.exited));
    await reader.stop();
  }
  const duplicates = [...reader.seen.values()].filter((c) => c > 1).length;
  const missing = Array.from({ length: N }, (_, i) => `r${i}`).filter((id) => !reader.seen.has(id));
  const seconds = Math.round((Date.now() - t0) / 1000);
  // What the woken worker was refused (its writes or commit fenced), for the record: when it wakes between two units it is refused nothing.
  const refused = zombie
    ? fs.readFileSync(zombie.log, "utf8").split("\n").filter((l) => l.includes("exactly-once unit failed") && Date.parse((/"time":"([^"]+)"/.exec(l) ?? [])[1] ?? "") >= zombie!.wokeAt - 1000).length
    : 0;
  console.log(`${delivery}: ${N} records, ${kills} SIGKILLs, ${stalls} SIGSTOP past the session timeout, ${seconds} s; read_committed saw ${reader.total()} records, ${duplicates} ids more than once, ${missing.length} missing, ${reader.outOfOrder.length} out of per-key order; units of the woken worker refused: ${refused}`);
  return { duplicates, missing, outOfOrder: reader.outOfOrder, kills, stalls };
}

describeStack("exactly-once Kafka → Kafka under SIGKILL and a zombie (KAFKA_CLIENT=platformatic)", () => {
  it(`delivery: exactly_once — a read_committed reader sees each of ${N} inputs exactly once, in per-key order`, async () => {
    const r = await chaos("exactly_once", "eos");
    expect(r.kills).toBeGreaterThanOrEqual(3);
    expect(r.stalls).toBe(1);
    expect(r.missing).toEqual([]);
    expect(r.duplicates).toBe(0);
    expect(r.outOfOrder.slice(0, 10)).toEqual([]);
  }, 600_000);

  it("delivery: at_least_once in the same scenario writes duplicates (what the check above would catch)", async () => {
    const r = await chaos("at_least_once", "alo");
    expect(r.kills).toBeGreaterThanOrEqual(3);
    expect(r.missing).toEqual([]);
    expect(r.duplicates).toBeGreaterThan(0);
  }, 600_000);
});
