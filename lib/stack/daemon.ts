import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { StackError } from "./errors.ts";

/**
 * Processes the stack starts itself: each runs detached in its own process group, with a
 * pid file under the state dir, so that `down` stops exactly what `up` started.
 */
export interface DaemonSpec {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this user (the stack as root starts PostgreSQL and RabbitMQ as their own users). */
  uid?: number;
  gid?: number;
}

export class Daemons {
  readonly runDir: string;
  readonly logDir: string;
  constructor(stateDir: string) {
    this.runDir = path.join(stateDir, "run");
    this.logDir = path.join(stateDir, "logs");
  }

  logFile(name: string): string {
    return path.join(this.logDir, `${name}.log`);
  }

  private pidFile(name: string): string {
    return path.join(this.runDir, `${name}.pid`);
  }

  /** The pid of a running daemon we started, or undefined. */
  pid(name: string): number | undefined {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.pidFile(name), "utf8").trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined;
    // Guard against a recycled pid: our processes carry the state dir in their command line
    // (or, for a server started through a wrapper script such as RabbitMQ's, in their environment).
    try {
      const stateDir = path.dirname(this.runDir);
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmdline.includes(stateDir) && !environ(pid).includes(stateDir)) return undefined;
    } catch {
      /* no /proc: trust the pid file */
    }
    return pid;
  }

  start(spec: DaemonSpec): number {
    fs.mkdirSync(this.runDir, { recursive: true });
    fs.mkdirSync(this.logDir, { recursive: true });
    const out = fs.openSync(this.logFile(spec.name), "a");
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ["ignore", out, out],
      ...(spec.uid !== undefined ? { uid: spec.uid, gid: spec.gid } : {}),
    });
    fs.closeSync(out);
    if (child.pid === undefined) {
      throw new StackError("SF_ERR_STACK_SPAWN", `could not start ${spec.name}: ${spec.command} did not spawn`);
    }
    child.unref();
    fs.writeFileSync(this.pidFile(spec.name), String(child.pid));
    return child.pid;
  }

  /** Stops a daemon we started (TERM, then KILL after the grace period). */
  async stop(name: string, graceMs = 15_000): Promise<boolean> {
    const pid = this.pid(name);
    fs.rmSync(this.pidFile(name), { force: true });
    if (pid === undefined) return false;
    signalGroup(pid, "SIGTERM");
    const deadline = Date.now() + graceMs;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) signalGroup(pid, "SIGKILL");
    while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
    return true;
  }

  /** Last lines of a daemon's log, for error messages. */
  tail(name: string, lines = 5): string {
    try {
      return fs.readFileSync(this.logFile(name), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }
}

function environ(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, "utf8");
  } catch {
    return "";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped) counts as gone.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return true;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/** Absolute path of an executable on PATH, or undefined. */
export function which(cmd: string, pathVar = process.env.PATH ?? ""): string | undefined {
  for (const dir of pathVar.split(path.delimiter)) {
    if (!dir) continue;
    const full = path.join(dir, cmd);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      if (fs.statSync(full).isFile()) return full;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
