/**
 * What the topology-redis benchmark's contender processes share: their settings (from the
 * parent, as JSON in BENCH_CHILD) and how they report back. Imports nothing heavy, so a
 * contender's start-up time is only what it loads itself.
 */
import fs from "node:fs";
import inspector from "node:inspector";
import path from "node:path";
import v8 from "node:v8";

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
  /** V8 flags the process set on itself as a worker does (lib/cli/worker-heap.ts, setWorkerV8Flags). */
  v8Flags?: string[];
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

/**
 * BENCH_MEM=1: samples process.memoryUsage() every 100 ms and, at the report, prints the sample
 * with the highest RSS (where the memory is: V8 heap, young generation, buffers, the rest).
 * BENCH_MEM=timeline also prints every fifth sample as it is taken (when the peak comes).
 */
let peakSample: NodeJS.MemoryUsage | undefined;
if (process.env.BENCH_MEM) {
  let n = 0;
  setInterval(() => {
    const m = process.memoryUsage();
    if (!peakSample || m.rss > peakSample.rss) peakSample = m;
    if (process.env.BENCH_MEM === "timeline" && n++ % 5 === 0) {
      const mb = (x: number) => (x / 1048576).toFixed(0);
      // V8's spaces (committed / used), and the kernel's split of the resident set: anonymous (heap, malloc) vs file (node's binary, libraries).
      const spaces = v8.getHeapSpaceStatistics().map((s) => `${s.space_name.replace(/_space$/, "")} ${mb(s.space_size)}/${mb(s.space_used_size)}`).join(" ");
      const status = fs.readFileSync("/proc/self/status", "utf8");
      const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
      const nonHeap = m.rss - m.heapTotal - m.external - kb("RssFile");
      console.error(
        `mem ${(process.uptime()).toFixed(1)} s: rss ${mb(m.rss)} (anon ${mb(kb("RssAnon"))}, file ${mb(kb("RssFile"))}), heap ${mb(m.heapTotal)} (used ${mb(m.heapUsed)}), external ${mb(m.external)} (array buffers ${mb(m.arrayBuffers)}), anon outside heap and external ${mb(nonHeap)}, peak ${peakRssMb().toFixed(0)} | ${spaces}`,
      );
    }
  }, 100).unref();
}

function printPeakSample(contender: string): void {
  if (!peakSample) return;
  const mb = (n: number) => `${(n / 1048576).toFixed(0)} MB`;
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = peakSample;
  // Where the resident memory is now, by mapping (the binary, anonymous memory: malloc and V8's own), largest first.
  const byMapping = new Map<string, number>();
  let mapping = "";
  for (const line of fs.readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) mapping = head[1] ? path.basename(head[1]) : "[anonymous]";
    const rssKb = /^Rss:\s+(\d+) kB/.exec(line);
    if (rssKb) byMapping.set(mapping, (byMapping.get(mapping) ?? 0) + Number(rssKb[1]) * 1024);
  }
  const top = [...byMapping].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k} ${mb(v)}`).join(", ");
  console.error(`${contender}: resident now by mapping: ${top}`);
  console.error(`${contender}: at peak RSS ${mb(rss)}: heap total ${mb(heapTotal)} (used ${mb(heapUsed)}), external ${mb(external)} (array buffers ${mb(arrayBuffers)}), outside the JS heap and buffers ${mb(rss - heapTotal - external)}`);
}

/** BENCH_SNAPSHOT=<dir>:<s>: a heap snapshot (what is reachable then) <s> seconds after the process started. */
if (process.env.BENCH_SNAPSHOT) {
  const [dir, at] = process.env.BENCH_SNAPSHOT.split(":");
  setTimeout(() => v8.writeHeapSnapshot(path.join(dir!, `${process.pid}.heapsnapshot`)), Number(at) * 1000).unref();
}

/**
 * BENCH_ALLOC=<dir>: V8's sampling heap profiler over the whole run, collected objects included,
 * so the profile shows where a contender allocates (what the GC then has to clear), not only
 * what is alive at the end. BENCH_ALLOC_SURVIVORS=1 leaves out what a scavenge collected: what
 * is left is what lived long enough to be promoted to the old generation. Written as <dir>/<contender>-<pid>.heapprofile (DevTools' format).
 */
const allocSession = process.env.BENCH_ALLOC ? new inspector.Session() : undefined;
if (allocSession) {
  allocSession.connect();
  allocSession.post("HeapProfiler.startSampling", { samplingInterval: 32_768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.BENCH_ALLOC_SURVIVORS !== "1" });
}

function writeAllocProfile(contender: string): Promise<void> {
  if (!allocSession) return Promise.resolve();
  return new Promise((resolve) =>
    allocSession.post("HeapProfiler.stopSampling", (err, res) => {
      if (!err) fs.writeFileSync(path.join(process.env.BENCH_ALLOC!, `${contender}-${process.pid}.heapprofile`), JSON.stringify(res.profile));
      resolve();
    }),
  );
}

/** Sends the result to the parent and exits once it is delivered. */
export async function report(result: Omit<ChildResult, "peakRssMb" | "cpuMs" | "execArgv">): Promise<void> {
  const cpu = process.cpuUsage();
  await writeAllocProfile(result.contender);
  printPeakSample(result.contender);
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
