import os from "node:os";
import type { Redis } from "ioredis";
import { stackOptionsFromEnv } from "../../lib/stack/stack.ts";

/** Benchmarks use the same addresses as the tests: the environment, else the local stack. */
export function benchEnv(): NodeJS.ProcessEnv {
  return { ...process.env, ...stackOptionsFromEnv(process.env).addresses };
}

export function machine(): string {
  return `${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString("en-US")} rec/s`;
}

/** Deletes every Redis key under `prefix` (what a benchmark wrote). */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== "0");
}

export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/**
 * Runs the baseline and the candidate alternately for `rounds` rounds (each returns a rate)
 * and prints the best of each and their ratio.
 */
export async function bestOfRounds(o: {
  title: string;
  unit: string;
  rounds: number;
  baseline: { label: string; run: (round: number) => Promise<number> };
  candidate: { label: string; run: (round: number) => Promise<number> };
}): Promise<{ baseline: number; candidate: number }> {
  const base: number[] = [];
  const cand: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    base.push(await o.baseline.run(r));
    cand.push(await o.candidate.run(r));
  }
  const best = { baseline: Math.max(...base), candidate: Math.max(...cand) };
  const width = Math.max(o.baseline.label.length, o.candidate.label.length, "ratio".length);
  console.log(`machine: ${machine()}`);
  console.log(`${o.title}, best of ${o.rounds} rounds`);
  console.log(`  ${o.baseline.label.padEnd(width)} : ${Math.round(best.baseline).toLocaleString("en-US")} ${o.unit}`);
  console.log(`  ${o.candidate.label.padEnd(width)} : ${Math.round(best.candidate).toLocaleString("en-US")} ${o.unit}`);
  console.log(`  ${"ratio".padEnd(width)} : ${((best.candidate / best.baseline) * 100).toFixed(0)} % of the baseline`);
  return best;
}

/** The feature view the redis.features benchmarks write: four features of four kinds per user. */
export const BENCH_USER_VIEW = {
  name: "bench_users",
  entity: "user",
  key: "{userId}",
  event_time: "at",
  features: [
    { name: "orders", kind: "counter" },
    { name: "last_item", kind: "latest", field: "item" },
    { name: "max_amount", kind: "max", field: "amount" },
    { name: "orders_1h", kind: "window_count", window: "1h" },
  ],
};
