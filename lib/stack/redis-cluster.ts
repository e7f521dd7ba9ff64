import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Daemons, which } from "./daemon.ts";
import { StackError } from "./errors.ts";
import { tcpOpen, waitFor } from "./probe.ts";
import type { ServiceStatus } from "./stack.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * A Redis Cluster (`stack up --redis-cluster`): three masters (redis-server
 * `--cluster-enabled yes`, no replicas) on loopback ports 7001.., each in
 * `<open state dir>/redis-cluster/node-<port>`, the 16,384 slots split between them by
 * `redis-cli --cluster create`. Clients reach it through REDIS_CLUSTER_NODES (any node
 * answers with the slot map).
 */
export interface RedisClusterOptions {
  stateDir: string;
  masters: number;
  basePort: number;
  startTimeoutMs: number;
}

export function redisClusterOptionsFromEnv(env: NodeJS.ProcessEnv): RedisClusterOptions {
  const open = path.resolve(env.STREAMFLEET_STACK_DIR ?? path.join(ROOT, ".stack"));
  return {
    stateDir: path.join(open, "redis-cluster"),
    masters: 3,
    basePort: Number(env.STREAMFLEET_REDIS_CLUSTER_PORT ?? 7001),
    startTimeoutMs: Number(env.STREAMFLEET_STACK_TIMEOUT_MS ?? 60_000),
  };
}

export function redisClusterPorts(o: RedisClusterOptions): number[] {
  return Array.from({ length: o.masters }, (_, i) => o.basePort + i);
}

/** REDIS_CLUSTER_NODES for the cluster: its seed nodes. */
export function redisClusterNodes(o: RedisClusterOptions): string {
  return redisClusterPorts(o)
    .map((p) => `127.0.0.1:${p}`)
    .join(",");
}

const daemons = (o: RedisClusterOptions) => new Daemons(o.stateDir);
const nodeName = (port: number) => `redis-${port}`;

/** One inline command to a node (RESP), for CLUSTER INFO without a client library. */
export function redisCommand(port: number, args: string[], timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (err?: Error) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(reply);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`no reply from 127.0.0.1:${port}`)));
    socket.on("error", done);
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      // A bulk string: $<len>\r\n<body>\r\n; anything else is one line.
      const bulk = /^\$(\d+)\r\n/.exec(reply);
      if ((bulk && reply.length >= bulk[0].length + Number(bulk[1]) + 2) || (!bulk && reply.endsWith("\r\n") && !reply.startsWith("$"))) done();
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
  });
}

async function clusterInfo(port: number): Promise<Record<string, string>> {
  const text = await redisCommand(port, ["CLUSTER", "INFO"]).catch(() => "");
  return Object.fromEntries(
    text
      .split("\r\n")
      .filter((l) => l.includes(":"))
      .map((l) => l.split(":") as [string, string]),
  );
}

async function clusterOk(o: RedisClusterOptions): Promise<boolean> {
  const infos = await Promise.all(redisClusterPorts(o).map(clusterInfo));
  return infos.every((i) => i.cluster_state === "ok" && Number(i.cluster_known_nodes) === o.masters && Number(i.cluster_slots_assigned) === 16384);
}

/** Starts the nodes not running, forms the cluster once (slots split evenly), waits for cluster_state:ok. */
export async function redisClusterUp(o: RedisClusterOptions, log: (line: string) => void = () => {}): Promise<ServiceStatus[]> {
  const server = which("redis-server");
  const cli = which("redis-cli");
  if (!server || !cli) throw new StackError("SF_ERR_STACK_NO_REDIS", "a Redis Cluster needs redis-server and redis-cli: `apt-get install redis-server`");
  const d = daemons(o);
  for (const port of redisClusterPorts(o)) {
    if (d.pid(nodeName(port))) {
      log(`${nodeName(port)} reused`);
      continue;
    }
    if (await tcpOpen("127.0.0.1", port)) throw new StackError("SF_ERR_STACK_PORT_IN_USE", `port ${port} is in use by another process: stop it or set STREAMFLEET_REDIS_CLUSTER_PORT`);
    const dir = path.join(o.stateDir, `node-${port}`);
    fs.mkdirSync(dir, { recursive: true });
    // The title kept: `down` knows its processes by the state dir in their command line.
    d.start({
      name: nodeName(port),
      command: server,
      args: ["--bind", "127.0.0.1", "--port", String(port), "--dir", dir, "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, "nodes.conf"), "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no", "--set-proc-title", "no"],
      cwd: dir,
    });
    if (!(await waitFor(() => tcpOpen("127.0.0.1", port), o.startTimeoutMs))) {
      throw new StackError("SF_ERR_STACK_TIMEOUT", `Redis cluster node ${port} did not come up; log ${d.logFile(nodeName(port))}: ${d.tail(nodeName(port), 3)}`);
    }
    log(`${nodeName(port)} started`);
  }
  if (!(await clusterOk(o))) {
    const slotsAssigned = Number((await clusterInfo(o.basePort)).cluster_slots_assigned ?? 0);
    if (slotsAssigned === 0) {
      const create = spawnSync(cli, ["--cluster", "create", ...redisClusterNodes(o).split(","), "--cluster-replicas", "0", "--cluster-yes"], { encoding: "utf8", timeout: o.startTimeoutMs });
      if (create.status !== 0) throw new StackError("SF_ERR_STACK_REDIS_CLUSTER", `redis-cli --cluster create failed: ${(create.stderr || create.stdout).trim().slice(-300)}`);
      log("cluster   created (16384 slots over " + o.masters + " masters)");
    }
    if (!(await waitFor(() => clusterOk(o), o.startTimeoutMs))) {
      throw new StackError("SF_ERR_STACK_TIMEOUT", `the Redis Cluster on ${redisClusterNodes(o)} did not reach cluster_state:ok within ${o.startTimeoutMs / 1000}s`);
    }
  }
  return redisClusterStatus(o);
}

export async function redisClusterDown(o: RedisClusterOptions): Promise<string[]> {
  const stopped: string[] = [];
  for (const port of redisClusterPorts(o)) if (await daemons(o).stop(nodeName(port))) stopped.push(nodeName(port));
  return stopped;
}

export async function redisClusterStatus(o: RedisClusterOptions): Promise<ServiceStatus[]> {
  const d = daemons(o);
  return Promise.all(
    redisClusterPorts(o).map(async (port) => {
      const info = await clusterInfo(port);
      const pid = d.pid(nodeName(port));
      return {
        name: nodeName(port),
        address: `127.0.0.1:${port}`,
        up: info.cluster_state === "ok",
        note: `Redis Cluster master, cluster_state ${info.cluster_state ?? "?"}, ${pid ? `ours, pid ${pid}` : "external"}`,
      };
    }),
  );
}

/** `stack up|down|status|env --redis-cluster`. */
export async function redisClusterCommand(verb: string, env: NodeJS.ProcessEnv): Promise<number> {
  const o = redisClusterOptionsFromEnv(env);
  const print = (status: ServiceStatus[]) => {
    for (const s of status) console.log(`${s.name.padEnd(10)} ${(s.up ? "up" : "DOWN").padEnd(5)} ${s.address.padEnd(18)} ${s.note}`);
  };
  switch (verb) {
    case "up":
      print(await redisClusterUp(o, (line) => console.log(line)));
      console.log(`REDIS_CLUSTER_NODES=${redisClusterNodes(o)}; state in ${o.stateDir}; stop with: npm run stack -- down --redis-cluster`);
      return 0;
    case "down": {
      const stopped = await redisClusterDown(o);
      console.log(stopped.length ? `stopped: ${stopped.join(", ")}` : "no node of the Redis Cluster was running");
      return 0;
    }
    case "env":
      console.log(`REDIS_CLUSTER_NODES=${redisClusterNodes(o)}`);
      return 0;
    default: {
      const status = await redisClusterStatus(o);
      print(status);
      return status.every((s) => s.up) ? 0 : 1;
    }
  }
}
