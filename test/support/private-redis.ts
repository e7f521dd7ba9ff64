import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import net from "node:net";
import { eventually, freePort } from "./observability.ts";

/**
 * A test's own redis-server child process (never the shared one, which other tests use):
 * it can be killed and restarted on the same port, optionally with a password.
 */
export class PrivateRedis {
  readonly port: number;
  private readonly password: string | undefined;
  private child: ChildProcess | undefined;

  private constructor(port: number, password?: string) {
    this.port = port;
    this.password = password;
  }

  static async start(options: { password?: string } = {}): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort(), options.password);
    await redis.start();
    return redis;
  }

  /** redis://[:password@]127.0.0.1:port */
  get url(): string {
    return `redis://${this.password ? `:${encodeURIComponent(this.password)}@` : ""}127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    if (this.password) args.push("--requirepass", this.password);
    this.child = spawn("redis-server", args, { stdio: "ignore" });
    await eventually(`redis-server on port ${this.port}`, () => accepts(this.port));
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
}

function accepts(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(undefined));
  });
}
