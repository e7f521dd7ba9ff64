import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Daemons } from "./daemon.ts";
import { StackError } from "./errors.ts";
import { ensurePomJars, requireJava } from "./java.ts";
import { brokerStorageProperties, plaintextListeners, startKafka } from "./kafka.ts";
import { tcpOpen } from "./probe.ts";
import type { ServiceStatus } from "./stack.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * A replicated Kafka cluster (`stack up --kafka-brokers N`): N KRaft nodes, each a combined
 * broker and controller (a static quorum of all N) on loopback ports, in their own state dir
 * `<open state dir>/kafka-cluster/node-<id>`, beside the open stack. The topics streamfleet
 * creates (sources, DLQs, consumer offsets) get the brokers' defaults: replication factor
 * min(3, N) and min.insync.replicas = RF - 1, so one broker may die without losing an
 * acknowledged write (producers ask acks=all) or stopping writes.
 */
export interface ClusterOptions {
  stateDir: string;
  /** The open stack's state dir: its Kafka jars (`kafka/libs`) are reused, not fetched again. */
  openStateDir: string;
  brokers: number;
  /** Broker i (1..N) listens on basePort + i - 1, its controller on controllerBasePort + i - 1. */
  basePort: number;
  controllerBasePort: number;
  startTimeoutMs: number;
}

export interface ClusterNode {
  id: number;
  port: number;
  controllerPort: number;
  dir: string;
}

export function clusterOptionsFromEnv(env: NodeJS.ProcessEnv, brokers: number): ClusterOptions {
  const open = path.resolve(env.STREAMFLEET_STACK_DIR ?? path.join(ROOT, ".stack"));
  const basePort = Number(env.STREAMFLEET_CLUSTER_KAFKA_PORT ?? 9292);
  return {
    stateDir: path.join(open, "kafka-cluster"),
    openStateDir: open,
    brokers,
    basePort,
    controllerBasePort: Number(env.STREAMFLEET_CLUSTER_KAFKA_CONTROLLER_PORT ?? basePort + 100),
    startTimeoutMs: Number(env.STREAMFLEET_STACK_TIMEOUT_MS ?? 120_000),
  };
}

export function clusterNodes(o: ClusterOptions): ClusterNode[] {
  return Array.from({ length: o.brokers }, (_, i) => ({
    id: i + 1,
    port: o.basePort + i,
    controllerPort: o.controllerBasePort + i,
    dir: path.join(o.stateDir, `node-${i + 1}`),
  }));
}

/** KAFKA_BROKERS for the cluster. */
export function clusterBrokers(o: ClusterOptions): string {
  return clusterNodes(o)
    .map((n) => `127.0.0.1:${n.port}`)
    .join(",");
}

/** The replication the cluster gives the topics it creates. */
export function clusterReplication(brokers: number): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = Math.min(3, brokers);
  return { replicationFactor, minInsyncReplicas: Math.max(1, replicationFactor - 1) };
}

function nodeProperties(o: ClusterOptions, n: ClusterNode, dataDir: string): string {
  const replication = clusterReplication(o.brokers);
  const voters = clusterNodes(o)
    .map((v) => `${v.id}@127.0.0.1:${v.controllerPort}`)
    .join(",");
  return `# written by \`streamfleet stack up --kafka-brokers ${o.brokers}\`
process.roles=broker,controller
node.id=${n.id}
controller.quorum.voters=${voters}
${plaintextListeners(n.port, n.controllerPort)}
default.replication.factor=${replication.replicationFactor}
min.insync.replicas=${replication.minInsyncReplicas}
unclean.leader.election.enable=false
${brokerStorageProperties(dataDir, replication)}`;
}

function libsDir(o: ClusterOptions): string {
  return path.join(o.openStateDir, "kafka", "libs");
}

/** Formats each node's storage once, all with one cluster id (kept in the state dir). */
function formatNodes(o: ClusterOptions): void {
  const java = requireJava();
  const classpath = `${libsDir(o)}/*`;
  const idFile = path.join(o.stateDir, "cluster-id");
  fs.mkdirSync(o.stateDir, { recursive: true });
  if (!fs.existsSync(idFile)) {
    const id = spawnSync(java, ["-cp", classpath, "kafka.tools.StorageTool", "random-uuid"], { encoding: "utf8" }).stdout.trim().split("\n").pop() ?? "";
    fs.writeFileSync(idFile, id);
  }
  const clusterId = fs.readFileSync(idFile, "utf8").trim();
  // The quorum's voters are written into each node's storage: a cluster formed with another
  // broker count cannot take new members this way.
  const sizeFile = path.join(o.stateDir, "brokers");
  const formed = fs.existsSync(sizeFile) ? Number(fs.readFileSync(sizeFile, "utf8")) : undefined;
  if (formed !== undefined && formed !== o.brokers) {
    throw new StackError("SF_ERR_STACK_KAFKA_FORMAT", `the cluster in ${o.stateDir} was formed with ${formed} brokers: use --kafka-brokers ${formed}, or stop it (down --kafka-brokers ${formed}) and remove that directory`);
  }
  fs.writeFileSync(sizeFile, String(o.brokers));
  for (const n of clusterNodes(o)) {
    const home = path.join(n.dir, "kafka");
    const dataDir = path.join(home, "data");
    if (fs.existsSync(path.join(dataDir, "meta.properties"))) continue;
    fs.mkdirSync(home, { recursive: true });
    const props = path.join(home, "server.properties");
    fs.writeFileSync(props, nodeProperties(o, n, dataDir), { mode: 0o600 });
    const fmt = spawnSync(java, ["-cp", classpath, "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", props], { encoding: "utf8" });
    if (fmt.status !== 0) throw new StackError("SF_ERR_STACK_KAFKA_FORMAT", `formatting Kafka node ${n.id}'s storage failed: ${(fmt.stderr || fmt.stdout).trim().slice(0, 300)}`);
  }
}

/** Starts one node (already formatted); resolves once it serves on its port. */
export async function startClusterNode(o: ClusterOptions, n: ClusterNode): Promise<void> {
  await startKafka(new Daemons(n.dir), {
    stateDir: n.dir,
    pomFile: path.join(ROOT, "scripts/stack/kafka-pom.xml"),
    libsDir: libsDir(o),
    port: n.port,
    controllerPort: n.controllerPort,
    startTimeoutMs: o.startTimeoutMs,
    properties: (dataDir) => nodeProperties(o, n, dataDir),
  });
}

/** The pid of a node we started, if it runs. */
export function clusterNodePid(n: ClusterNode): number | undefined {
  return new Daemons(n.dir).pid("kafka");
}

/** Starts the nodes that are not running (together: a node waits for the quorum); reuses the others. */
export async function clusterUp(o: ClusterOptions, log: (line: string) => void = () => {}): Promise<ServiceStatus[]> {
  ensurePomJars(path.join(ROOT, "scripts/stack/kafka-pom.xml"), libsDir(o), "Apache Kafka", path.join(o.openStateDir, "logs", "maven-kafka.log"));
  formatNodes(o);
  const started: ClusterNode[] = [];
  try {
    await Promise.all(
      clusterNodes(o).map(async (n) => {
        const t0 = Date.now();
        if (clusterNodePid(n)) return log(`kafka-${n.id}   reused`);
        await startClusterNode(o, n);
        started.push(n);
        log(`kafka-${n.id}   started in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      }),
    );
  } catch (err) {
    for (const n of started) await new Daemons(n.dir).stop("kafka");
    throw err;
  }
  return clusterStatus(o);
}

/** Stops every node this profile started (and nothing else). */
export async function clusterDown(o: ClusterOptions): Promise<string[]> {
  const stopped: string[] = [];
  for (const n of clusterNodes(o)) if (await new Daemons(n.dir).stop("kafka")) stopped.push(`kafka-${n.id}`);
  return stopped;
}

export async function clusterStatus(o: ClusterOptions): Promise<ServiceStatus[]> {
  const { replicationFactor, minInsyncReplicas } = clusterReplication(o.brokers);
  return Promise.all(
    clusterNodes(o).map(async (n) => {
      const pid = clusterNodePid(n);
      return {
        name: `kafka-${n.id}`,
        address: `127.0.0.1:${n.port}`,
        up: await tcpOpen("127.0.0.1", n.port),
        note: `Kafka KRaft broker+controller, RF ${replicationFactor}, min.insync ${minInsyncReplicas}, ${pid ? `ours, pid ${pid}` : "external"}`,
      };
    }),
  );
}

/** `stack up|down|status|env --kafka-brokers N`: the replicated cluster, beside the open stack. */
export async function clusterCommand(verb: string, env: NodeJS.ProcessEnv, brokers: number): Promise<number> {
  const o = clusterOptionsFromEnv(env, brokers);
  const print = (status: ServiceStatus[]) => {
    for (const s of status) console.log(`${s.name.padEnd(9)} ${(s.up ? "up" : "DOWN").padEnd(5)} ${s.address.padEnd(24)} ${s.note}`);
  };
  switch (verb) {
    case "up":
      print(await clusterUp(o, (line) => console.log(line)));
      console.log(`KAFKA_BROKERS=${clusterBrokers(o)}; state in ${o.stateDir}; stop with: npm run stack -- down --kafka-brokers ${brokers}`);
      return 0;
    case "down": {
      const stopped = await clusterDown(o);
      console.log(stopped.length ? `stopped: ${stopped.join(", ")}` : "no broker of the cluster was running");
      return 0;
    }
    case "env":
      console.log(`KAFKA_BROKERS=${clusterBrokers(o)}`);
      return 0;
    default: {
      const status = await clusterStatus(o);
      print(status);
      return status.every((s) => s.up) ? 0 : 1;
    }
  }
}
