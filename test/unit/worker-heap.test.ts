import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { missingHeapFlags, missingWorkerEnv, setWorkerV8Flags, WORKER_ENV, WORKER_HEAP_MB, WORKER_V8_FLAGS } from "../../lib/cli/worker-heap.ts";

const defaults = Object.entries(WORKER_HEAP_MB).map(([flag, mb]) => `${flag}=${mb}`);

describe("a worker's default heap bounds", () => {
  it("adds each bound the user did not set, on node's command line or in NODE_OPTIONS", () => {
    expect(missingHeapFlags([], undefined)).toEqual(defaults);
    expect(missingHeapFlags(["--max-old-space-size=512"], "")).toEqual(defaults.filter((f) => !f.startsWith("--max-old-space-size")));
    expect(missingHeapFlags([], "--enable-source-maps --max_semi_space_size=4")).toEqual(defaults.filter((f) => !f.startsWith("--max-semi-space-size")));
    expect(missingHeapFlags(["--max-old-space-size=512"], "--max-semi-space-size=4")).toEqual([]);
  });

  it("adds none when the user sized the whole heap (--max-heap-size)", () => {
    expect(missingHeapFlags([], "--max-heap-size=1024")).toEqual([]);
  });

  it("sets the worker's environment (one malloc arena) only where the user did not", () => {
    expect(missingWorkerEnv({})).toEqual({ MALLOC_ARENA_MAX: "1" });
    expect(missingWorkerEnv({ MALLOC_ARENA_MAX: "4" })).toEqual({});
  });

  it("turns V8's allocation-site pretenuring off in the worker unless node's command line chose either way", () => {
    // in a child: the flag changes the process it is set in
    const module = path.resolve(import.meta.dirname, "../../lib/cli/worker-heap.ts");
    const code = `import { setWorkerV8Flags } from ${JSON.stringify(module)}; console.log(JSON.stringify(setWorkerV8Flags()));`;
    const run = (flags: string[]) => {
      const out = spawnSync(process.execPath, [...flags, "--input-type=module", "-e", code], { env: { ...process.env, NODE_OPTIONS: "" }, encoding: "utf8" });
      expect(out.status, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as string[];
    };
    expect(WORKER_V8_FLAGS).toContain("--no-allocation-site-pretenuring");
    expect(run([])).toEqual(["--no-allocation-site-pretenuring"]);
    expect(run(["--allocation-site-pretenuring"])).toEqual([]);
    expect(run(["--no-allocation_site_pretenuring"])).toEqual([]);
    expect(setWorkerV8Flags(["--allocation-site-pretenuring"])).toEqual([]);
  });

  it("starts the process again in place, with the bounds, keeping its arguments", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-heap-"));
    const script = path.join(dir, "bounded.ts");
    const module = path.resolve(import.meta.dirname, "../../lib/cli/worker-heap.ts");
    fs.writeFileSync(
      script,
      `import v8 from "node:v8";
import { boundWorkerHeap } from ${JSON.stringify(module)};
process.env.FIRST_PID ??= String(process.pid);
boundWorkerHeap();
console.log(JSON.stringify({ samePid: process.env.FIRST_PID === String(process.pid), execArgv: process.execArgv, args: process.argv.slice(2), limitMb: v8.getHeapStatistics().heap_size_limit / 2 ** 20, arenas: process.env.MALLOC_ARENA_MAX ?? null }));
`,
    );
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: "" };
      delete env.MALLOC_ARENA_MAX;
      const out = spawnSync(process.execPath, [script, "run", "x.yaml"], { env, encoding: "utf8" });
      expect(out.status, out.stderr).toBe(0);
      const r = JSON.parse(out.stdout) as { samePid: boolean; execArgv: string[]; args: string[]; limitMb: number; arenas: string | null };
      expect(r).toMatchObject({ samePid: true, execArgv: defaults, args: ["run", "x.yaml"], arenas: WORKER_ENV.MALLOC_ARENA_MAX });
      // old space + the young generation (three semi-spaces' worth, V8's reservation)
      expect(r.limitMb).toBe(WORKER_HEAP_MB["--max-old-space-size"]! + 3 * WORKER_HEAP_MB["--max-semi-space-size"]!);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
