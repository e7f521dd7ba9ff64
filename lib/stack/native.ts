import fs from "node:fs";
import path from "node:path";
import type { Daemons } from "./daemon.ts";
import { which } from "./daemon.ts";
import { StackError } from "./errors.ts";
import { tcpOpen, waitFor } from "./probe.ts";

/**
 * Redis, RabbitMQ and PostgreSQL come from the OS (Debian packages). A service whose port
 * answers is reused; otherwise the stack starts its own where that needs no root setup.
 */
export interface NativeTarget {
  host: string;
  port: number;
}

export async function ensureRedis(daemons: Daemons, stateDir: string, t: NativeTarget, timeoutMs: number): Promise<"reused" | "started"> {
  if (await tcpOpen(t.host, t.port)) return "reused";
  const server = which("redis-server");
  if (!server || !isLocal(t.host)) {
    throw new StackError("SF_ERR_STACK_NO_REDIS", `Redis does not answer on ${t.host}:${t.port}: install it (\`apt-get install redis-server\`) or set REDIS_URL`);
  }
  const dir = path.join(stateDir, "redis");
  fs.mkdirSync(dir, { recursive: true });
  daemons.start({
    name: "redis",
    command: server,
    args: ["--bind", "127.0.0.1", "--port", String(t.port), "--save", "", "--appendonly", "no", "--dir", dir],
    cwd: dir,
  });
  return awaitPort(daemons, "redis", t, timeoutMs);
}

export async function ensureRabbit(daemons: Daemons, stateDir: string, t: NativeTarget, timeoutMs: number): Promise<"reused" | "started"> {
  if (await tcpOpen(t.host, t.port)) return "reused";
  const server = which("rabbitmq-server");
  if (!server || !isLocal(t.host)) {
    throw new StackError("SF_ERR_STACK_NO_RABBITMQ", `RabbitMQ does not answer on ${t.host}:${t.port}: install it (\`apt-get install rabbitmq-server\`) or set AMQP_URL`);
  }
  const dir = path.join(stateDir, "rabbitmq");
  fs.mkdirSync(dir, { recursive: true });
  daemons.start({
    name: "rabbitmq",
    command: server,
    args: [],
    cwd: dir,
    env: {
      ...process.env,
      RABBITMQ_NODENAME: "streamfleet@localhost",
      RABBITMQ_NODE_PORT: String(t.port),
      RABBITMQ_MNESIA_BASE: path.join(dir, "mnesia"),
      RABBITMQ_LOG_BASE: path.join(dir, "log"),
      RABBITMQ_DIST_PORT: String(t.port + 20000),
    },
  });
  return awaitPort(daemons, "rabbitmq", t, Math.max(timeoutMs, 60_000));
}

export async function ensurePostgres(t: NativeTarget): Promise<"reused"> {
  if (await tcpOpen(t.host, t.port)) return "reused";
  const hint = which("pg_ctlcluster")
    ? "start it (`pg_ctlcluster 15 main start`)"
    : "install it (`apt-get install postgresql`)";
  throw new StackError("SF_ERR_STACK_NO_POSTGRES", `PostgreSQL does not answer on ${t.host}:${t.port}: ${hint}, or set DATABASE_URL`);
}

async function awaitPort(daemons: Daemons, name: string, t: NativeTarget, timeoutMs: number): Promise<"started"> {
  if (await waitFor(() => tcpOpen(t.host, t.port), timeoutMs)) return "started";
  const tail = daemons.tail(name, 3);
  await daemons.stop(name);
  throw new StackError("SF_ERR_STACK_TIMEOUT", `${name} did not come up on ${t.host}:${t.port} within ${timeoutMs / 1000}s: ${tail.slice(-300)}`);
}

function isLocal(host: string): boolean {
  return host === "127.0.0.1" || host === "localhost" || host === "::1";
}
