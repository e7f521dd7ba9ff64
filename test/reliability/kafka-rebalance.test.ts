/**
 * Rebalances under load (issue 16, item 3). A producer writes a steady 1,500 records/s over six
 * partitions; workers run a topology that takes about a millisecond a record into an output
 * topic. What a reader of the output observes:
 *
 * - "a worker joins a loaded group of two": for each input partition, the longest time between
 *   two output writes after the third worker starts (against the same measure in the seconds
 *   before), split into the partitions that stayed with their owner and those that moved. With
 *   cooperative assignment (@platformatic/kafka, KAFKA_REBALANCE=cooperative) the partitions that
 *   stay must not stop; eager assignment (either client) stops every partition for the join.
 * - "scale 1 → 3 → 1": one worker, two more join, the two leave (SIGTERM); every input reaches
 *   the output (at-least-once: duplicates allowed, nothing missing), in per-partition order.
 */
import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { Kafka } from "kafkajs";
import { writeTopologies } from "../support/fleet.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";
import type { WorkerProcess } from "../support/worker.ts";

const scope = new TestScope("rebalance");
const spawned: WorkerProcess[] = [];
afterAll(async () => {
  for (const w of spawned) w.child.kill("SIGKILL");
  await scope.cleanup();
});

const PARTITIONS = 6;
const RATE = 1500;
const SESSION_MS = 10_000;

interface Mode {
  label: string;
  env: NodeJS.ProcessEnv;
  cooperative: boolean;
}
const MODES: Mode[] = [
  { label: "platformatic, cooperative", env: { KAFKA_CLIENT: "platformatic", KAFKA_REBALANCE: "cooperative" }, cooperative: true },
  { label: "platformatic, eager", env: { KAFKA_CLIENT: "platformatic", KAFKA_REBALANCE: "eager" }, cooperative: false },
  { label: "kafkajs, eager", env: { KAFKA_CLIENT: "kafkajs" }, cooperative: false },
];

function start(dir: string, env: NodeJS.ProcessEnv): WorkerProcess {
  const w = spawnWorker(dir, env);
  spawned.push(w);
  return w;
}

/** Writes RATE records/s, explicit partition i % 6, until stopped; returns how many it wrote. */
function steadyProducer(topic: string) {
  const producer = scope.producer();
  let stop = false;
  let sent = 0;
  const done = (async () => {
    await producer.connect();
    const every = 100;
    const per = (RATE * every) / 1000;
    let next = Date.now();
    while (!stop) {
      const messages = Array.from({ length: per }, (_, j) => {
        const i = sent + j;
        return { partition: i % PARTITIONS, key: `k${i % 60}`, value: JSON.stringify({ id: `r${i}`, p: i % PARTITIONS, seq: i }) };
      });
      await producer.send({ topic, messages });
      sent += per;
      next += every;
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
    await producer.disconnect();
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
      return sent;
    },
  };
}

/** The output as a reader sees it: per input partition, the timestamp of each write that is progress; ids seen; per-partition order. */
async function reader(kafka: Kafka, topic: string) {
  const times: number[][] = Array.from({ length: PARTITIONS }, () => []);
  const seen = new Set<string>();
  const last = new Map<number, number>();
  const outOfOrder: string[] = [];
  let writesAgain = 0;
  const consumer = kafka.consumer({ groupId: scope.group(`reader-${topic}`) });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const v = JSON.parse(message.value!.toString()) as { id: string; p: number; seq: number };
      // Progress: a write that takes the partition further than before (a record read again after a rebalance is not).
      if (v.seq > (last.get(v.p) ?? -1)) times[v.p]!.push(Number(message.timestamp));
      else writesAgain++;
      // A duplicate (at-least-once) may go back once; a record never seen before must come after what came before it.
      if (!seen.has(v.id) && v.seq < (last.get(v.p) ?? -1)) outOfOrder.push(`${v.id} after seq ${last.get(v.p)}`);
      seen.add(v.id);
      last.set(v.p, Math.max(last.get(v.p) ?? -1, v.seq));
    },
  });
  return { times, seen, outOfOrder, again: () => writesAgain, stop: () => consumer.disconnect() };
}

/** Longest time without progress of a partition's output in [from, to] (a stop), in ms. */
function longestStop(times: number[], from: number, to: number): number {
  const inside = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  if (inside.length === 0) return to - from;
  let gap = Math.max(inside[0]! - from, to - inside[inside.length - 1]!);
  for (let i = 1; i < inside.length; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!);
  return gap;
}

/** A worker's assignments from its log ("joined consumer group"), with their time. */
function joins(w: WorkerProcess): { at: number; partitions: Set<number> }[] {
  if (!fs.existsSync(w.logFile)) return [];
  const out: { at: number; partitions: Set<number> }[] = [];
  for (const line of fs.readFileSync(w.logFile, "utf8").split("\n")) {
    if (!line.includes('"msg":"joined consumer group"') && !line.includes('"msg":"partitions revoked by a cooperative rebalance"')) continue;
    const l = JSON.parse(line) as { time: string | number; assignment?: Record<string, number[]>; revoked?: string[] };
    const at = typeof l.time === "number" ? l.time : Date.parse(l.time);
    if (l.assignment) out.push({ at, partitions: new Set(Object.values(l.assignment).flat()) });
    else {
      const prev = new Set(out[out.length - 1]?.partitions ?? []);
      for (const k of l.revoked ?? []) prev.delete(Number(k.slice(k.lastIndexOf("/") + 1)));
      out.push({ at, partitions: prev });
    }
  }
  return out;
}

function ownedAt(w: WorkerProcess, at: number): Set<number> {
  const before = joins(w).filter((j) => j.at <= at);
  return before[before.length - 1]?.partitions ?? new Set();
}

function topology(name: string, input: string, output: string) {
  return writeTopologies([
    {
      name,
      source: { topics: [input], session_timeout_ms: SESSION_MS, max_bytes_per_partition: 16_384, commit_interval_ms: 1000 },
      codec: { value: { type: "json" } },
      steps: [{ transform: { module: "./transforms.ts", export: "slow" } }],
      // Keyed by the input partition: one input partition's records go to one output partition, in order.
      sinks: [{ type: "kafka", topic: output, key: "{p}", value: { type: "json" } }],
      errors: { dlq: { topic: `${output}-dlq` } },
    },
  ]);
}

const joinedAll = (ws: WorkerProcess[]) => () => ws.every((w) => joins(w).length > 0);

describeStack("rebalances under load", () => {
  describe.each(MODES)("$label", (mode) => {
    it("a worker joins a loaded group of two: how long the partitions that stay with their owner stop", async () => {
      const slug = mode.label.replace(/\W+/g, "-");
      const [input, output] = [scope.topic(`join-${slug}-in`), scope.topic(`join-${slug}-out`)];
      await scope.createTopics([input, output], PARTITIONS);
      const dir = topology(`${scope.id}-join-${slug}`, input, output);
      const out = await reader(scope.kafka(), output);
      const load = steadyProducer(input);
      const workers = [start(dir, mode.env), start(dir, mode.env)];
      let sent = 0;
      let t: number;
      try {
        await waitUntil(joinedAll(workers), 60_000, "two workers to join");
        // Both in the group and the output flowing on every partition for 8 s.
        await waitUntil(() => { const now = Date.now(); return out.times.every((ts) => ts.some((x) => x > now - 500)); }, 60_000, "output on every partition");
        await new Promise((r) => setTimeout(r, 8000));
        t = Date.now();
        workers.push(start(dir, mode.env));
        await waitUntil(joinedAll(workers), 60_000, "the third worker to join");
        await new Promise((r) => setTimeout(r, 15_000));
      } finally {
        sent = await load.stop();
      }
      await waitUntil(() => out.seen.size >= sent, 120_000, `all ${sent} ids in the output (had ${out.seen.size})`);
      for (const w of workers) w.child.kill("SIGTERM");
      await Promise.all(workers.map((w) => w.exited));
      await out.stop();
      const end = t! + 15_000;
      const stayed: number[] = [];
      const moved: number[] = [];
      for (let p = 0; p < PARTITIONS; p++) {
        const owner = workers.slice(0, 2).find((w) => ownedAt(w, t!).has(p));
        (owner && ownedAt(owner, end).has(p) ? stayed : moved).push(p);
      }
      const before = Math.max(...out.times.map((ts) => longestStop(ts, t! - 8000, t!)));
      const stopOf = (ps: number[]) => (ps.length ? Math.max(...ps.map((p) => longestStop(out.times[p]!, t!, end))) : 0);
      console.log(
        `${mode.label}: third worker joins a group of two at ${RATE} rec/s — partitions that stayed ${JSON.stringify(stayed)}: longest stop ${stopOf(stayed)} ms; moved ${JSON.stringify(moved)}: ${stopOf(moved)} ms; before the join, longest gap ${before} ms; ${sent} records, ${out.seen.size} ids out, ${out.again()} written again`,
      );
      expect(out.seen.size).toBe(sent);
      expect(out.outOfOrder.slice(0, 5)).toEqual([]);
      expect(moved.length).toBeGreaterThan(0);
      if (mode.cooperative) {
        // Four of six partitions stay with their owner when a third member joins (sticky).
        expect(stayed.length).toBeGreaterThanOrEqual(3);
        // Flowing through the join: no stop longer than what happens without one (+ a second of slack).
        expect(stopOf(stayed)).toBeLessThan(before + 1000);
      }
    }, 240_000);

    it("scale 1 → 3 → 1 workers under load: every input reaches the output, in per-partition order", async () => {
      const slug = mode.label.replace(/\W+/g, "-");
      const [input, output] = [scope.topic(`scale-${slug}-in`), scope.topic(`scale-${slug}-out`)];
      await scope.createTopics([input, output], PARTITIONS);
      const dir = topology(`${scope.id}-scale-${slug}`, input, output);
      const out = await reader(scope.kafka(), output);
      const load = steadyProducer(input);
      const first = start(dir, mode.env);
      const extra: WorkerProcess[] = [];
      let sent = 0;
      try {
        await waitUntil(joinedAll([first]), 60_000, "the first worker to join");
        await new Promise((r) => setTimeout(r, 6000));
        extra.push(start(dir, mode.env), start(dir, mode.env));
        await waitUntil(joinedAll(extra), 60_000, "two more workers to join");
        await new Promise((r) => setTimeout(r, 10_000));
        for (const w of extra) w.child.kill("SIGTERM");
        const codes = await Promise.all(extra.map((w) => w.exited));
        expect(codes).toEqual([0, 0]);
        await new Promise((r) => setTimeout(r, 6000));
      } finally {
        sent = await load.stop();
      }
      await waitUntil(() => out.seen.size >= sent, 120_000, `all ${sent} ids in the output (had ${out.seen.size})`);
      first.child.kill("SIGTERM");
      await first.exited;
      await out.stop();
      console.log(`${mode.label}: scale 1 → 3 → 1 at ${RATE} rec/s: ${sent} records in, ${out.seen.size} ids out (${out.again()} written again), ${out.outOfOrder.length} out of order`);
      const missing = Array.from({ length: sent }, (_, i) => `r${i}`).filter((id) => !out.seen.has(id));
      expect(missing.slice(0, 10)).toEqual([]);
      expect(out.outOfOrder.slice(0, 5)).toEqual([]);
    }, 240_000);
  });
});
