import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

export interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  logFile: string;
}

/** Runs `streamfleet run <dir> --json` as a child process, as an operator would. */
export function spawnWorker(dir: string, env: NodeJS.ProcessEnv = {}, logFile = path.join(dir, `worker-${Date.now()}.log`)): WorkerProcess {
  const out = fs.openSync(logFile, "a");
  const child = spawn(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "run", dir, "--json", "--admin-port", "0"], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", STREAMFLEET_SHUTDOWN_MS: "20000", ...env },
    stdio: ["ignore", out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited, logFile };
}

export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
