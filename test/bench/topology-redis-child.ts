/**
 * What the topology-redis benchmark's contender processes share: their settings (from the
 * parent, as JSON in BENCH_CHILD) and how they report back. Imports nothing heavy, so a
 * contender's start-up time is only what it loads itself.
 */
import fs from "node:fs";

export type Contender = "bare" | "hand" | "features" | "cache";

/** Settings the parent hands a contender process. */
export interface ChildConfig {
  contender: Contender;
  topic: string;
  /** Consumer group (the topology's `source.group`). */
  group: string;
  /** Records to wait for: the contender stops once it committed this many. */
  records: number;
  brokers: string[];
  registryUrl: string;
  redisUrl: string;
  /** Unique per contender and round: the Redis keys it writes start with it. */
  keyPrefix: string;
  /** Absolute path of the .avsc the producer registered. */
  schemaPath: string;
  view: string;
}

/** Milliseconds since this process started (performance's time origin), at each step of its start-up and run. */
export interface Marks {
  /** Its modules were loaded (the contender's own imports). */
  imported?: number;
  /** Clients connected / topology loaded, before joining the group. */
  ready?: number;
  /** Joined the consumer group (partitions assigned). */
  joined?: number;
  firstBatch?: number;
  firstCommit?: number;
  /** The N-th record committed. */
  done?: number;
  [step: string]: number | undefined;
}

/** What a contender process reports (one IPC message) before it exits. */
export interface ChildResult {
  contender: Contender;
  /** From its first fetched batch to its N-th record committed. */
  ms: number;
  committed: number;
  marks: Marks;
  /** VmHWM: the process's peak resident set, MB. */
  peakRssMb: number;
  /** CPU time of the process (user + system, all its threads: GC too), ms: steadier than records/s on a shared machine. */
  cpuMs: number;
  /** The node flags it ran with (the topologies get a worker's default heap bounds). */
  execArgv: string[];
}

export function childConfig(): ChildConfig {
  const raw = process.env.BENCH_CHILD;
  if (!raw) throw new Error("BENCH_CHILD is not set: this file is started by test/bench/topology-redis.bench.ts");
  return JSON.parse(raw) as ChildConfig;
}

/** The process's peak resident set size so far (VmHWM), in MB. */
export function peakRssMb(): number {
  const status = fs.readFileSync("/proc/self/status", "utf8");
  const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** Sends the result to the parent and exits once it is delivered. */
export function report(result: Omit<ChildResult, "peakRssMb" | "cpuMs" | "execArgv">): void {
  const cpu = process.cpuUsage();
  const full: ChildResult = { ...result, peakRssMb: peakRssMb(), cpuMs: (cpu.user + cpu.system) / 1000, execArgv: process.execArgv };
  if (!process.send) {
    console.log(JSON.stringify(full));
    process.exit(0);
  }
  process.send(full, () => process.exit(0));
}

/** Exits non-zero with the error (the parent fails the run). */
export function fail(err: unknown): never {
  console.error(err);
  process.exit(1);
}
