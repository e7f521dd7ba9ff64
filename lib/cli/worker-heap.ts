/**
 * The V8 heap bounds a worker (`streamfleet run`) runs with unless the user chose their own.
 * Left to its defaults on a large machine, V8 lets a worker draining a backlog grow past 500 MB
 * (a 64 MB semi-space: 128 MB of young generation alone, and an old generation that may grow
 * toward ~4 GB, mostly garbage, before it is collected in earnest); bounded, the same worker
 * peaks near 300 MB, for ~15–40 % more CPU per record in GC (BENCHMARKS.md, "memory under a
 * backlog"). Kept free of imports but node's own: `main.ts` applies it before it loads anything else.
 */
import v8 from "node:v8";

/**
 * Each flag's default value in MB. The old space is a ceiling (RSS ≈ heap + ~120 MB stays under
 * the Deployment's 512 Mi even when it is reached) and, as a side effect, makes V8 collect the
 * old generation sooner; the semi-space sets the young generation (two of them). 8 MB since
 * the 64 KiB default fetches (issue 11): with 256 KiB fetches a smaller young generation only
 * promoted more; with 64 KiB ones a fetch still dies young, and the RSS draining a backlog
 * fell by ~25 MB (BENCHMARKS.md, issue 11, 2026-12-05).
 */
export const WORKER_HEAP_MB: Readonly<Record<string, number>> = {
  "--max-old-space-size": 256,
  "--max-semi-space-size": 8,
};

/**
 * Environment a worker runs with unless the user set it. `MALLOC_ARENA_MAX=1`: glibc gives every
 * thread that mallocs (V8's GC and compiler threads, libuv's pool) an arena of its own, which
 * keeps what it once held; one shared arena took 10–15 MB off a worker's peak RSS draining a
 * 3,000,000-record backlog (BENCHMARKS.md, issue 11), for no measurable CPU.
 */
export const WORKER_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "1",
};

/** The worker environment variables that `env` does not set. */
export function missingWorkerEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(WORKER_ENV).filter(([k]) => env[k] === undefined));
}

/**
 * V8 behaviour a worker runs with unless node's command line chose otherwise. Not sizes, and not
 * allowed in NODE_OPTIONS, so the process sets them on itself as it starts (`setWorkerV8Flags`).
 *
 * `--no-allocation-site-pretenuring`: a fetched batch is alive from its parse until the runner
 * has taken it, long enough to outlive a scavenge or two, and V8 then learns that the sites that
 * allocate records, their Buffer views and our envelopes make long-lived objects, and allocates
 * them in the old generation from then on. They die there a few milliseconds later, and only a
 * mark-compact (with its concurrent marking on the GC threads) frees them. Without pretenuring
 * they are allocated young and die young: the topologies into Redis took 30–40 % less CPU per
 * record and ran 1.3–1.6× as fast, at a lower peak RSS (BENCHMARKS.md, issue 11, "pretenuring").
 */
export const WORKER_V8_FLAGS: readonly string[] = ["--no-allocation-site-pretenuring"];

/** A flag's name without its `--no-` form, so that `--allocation-site-pretenuring` on the command line counts as a choice. */
function choiceName(arg: string): string {
  return flagName(arg).replace(/^--no-/, "--");
}

/**
 * Sets the worker's V8 flags that `execArgv` leaves to us; returns those it set. Run in the
 * worker process itself, after `boundWorkerHeap` (which may start it again).
 */
export function setWorkerV8Flags(execArgv: readonly string[] = process.execArgv): string[] {
  const given = new Set(execArgv.filter((a) => a.startsWith("--")).map(choiceName));
  const missing = WORKER_V8_FLAGS.filter((f) => !given.has(choiceName(f)));
  for (const f of missing) v8.setFlagsFromString(f);
  return missing;
}

/** `--max-heap-size` sizes both generations: a user who sets it gets none of ours. */
const SIZES_BOTH = "--max-heap-size";

/** V8 reads `--max_old_space_size` and `--max-old-space-size` alike. */
function flagName(arg: string): string {
  return arg.split("=")[0]!.replaceAll("_", "-");
}

/**
 * The default heap flags that neither node's command line (`execArgv`) nor NODE_OPTIONS
 * already sets, e.g. `["--max-semi-space-size=8"]` when the user set only the old space.
 */
export function missingHeapFlags(execArgv: readonly string[], nodeOptions = ""): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].filter((a) => a.startsWith("--")).map(flagName));
  if (given.has(SIZES_BOTH)) return [];
  return Object.entries(WORKER_HEAP_MB)
    .filter(([flag]) => !given.has(flag))
    .map(([flag, mb]) => `${flag}=${mb}`);
}

/**
 * Starts this process again with the missing heap flags and worker environment, in place
 * (`process.execve`: same pid, so signals, exit codes and a container's PID 1 stay as they
 * were; glibc reads MALLOC_ARENA_MAX only when a process starts). Returns when nothing is
 * missing, or where execve does not exist (Windows): the worker then runs with V8's defaults.
 */
export function boundWorkerHeap(): void {
  const missing = missingHeapFlags(process.execArgv, process.env.NODE_OPTIONS);
  const env = missingWorkerEnv(process.env);
  if ((!missing.length && !Object.keys(env).length) || typeof process.execve !== "function") return;
  process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)], { ...process.env, ...env });
}
