/**
 * The feature server process: `node workers/feature-server.ts`.
 *
 * Environment: REDIS_URL, or REDIS_CLUSTER_NODES for a Redis Cluster (+ REDIS_USERNAME, REDIS_PASSWORD[_FILE], REDIS_TLS_CA_FILE),
 * FEATURE_SERVER_TOKEN or FEATURE_SERVER_TOKEN_FILE (required), FEATURE_SERVER_PORT
 * (default 8090), FEATURE_SERVER_KEY_PREFIX (the sinks' key_prefix, default empty),
 * FEATURE_SERVER_MAX_IN_FLIGHT (reads answered at once before 503 + Retry-After, default 256),
 * FEATURE_SERVER_DEADLINE_MS (504 after that long, default 250), FEATURE_SERVER_SEMI_SPACE_MB
 * (V8 young generation, default 4: see feature-server-gc.ts), FEATURE_SERVER_TLS_CERT_FILE and
 * FEATURE_SERVER_TLS_KEY_FILE (both: HTTPS instead of HTTP), FEATURE_SERVER_PROCESSES (server
 * processes sharing the port through node:cluster, default 1: see docs/feature-store.md),
 * FEATURE_SERVER_BATCH_READ ("script", the default, or "pipeline"), DATABASE_URL (+ PGPASSWORD, PGSSLMODE,
 * PGSSLROOTCERT; optional: the offline feature log for POST /v1/historical/{view}), LOG_LEVEL. Views are read from the registry the redis.features sinks write.
 */
import "./feature-server-gc.ts";
import cluster from "node:cluster";
import type { Worker } from "node:cluster";
import pg from "pg";
import client from "prom-client";
import { pgTarget } from "../lib/connectors/postgres/connection.ts";
import { createRedisClient } from "../lib/connectors/redis/client.ts";
import { startFeatureServer } from "../lib/features/server.ts";
import { createLogger } from "../lib/observability/logger.ts";
import { EngineMetrics } from "../lib/observability/metrics.ts";
import { Connections } from "../lib/runtime/connections.ts";

const logger = createLogger({ name: "feature-server", level: process.env.LOG_LEVEL ?? "info" });
const connections = new Connections(process.env);

const PROCESSES = Number(process.env.FEATURE_SERVER_PROCESSES ?? 1);
/** A worker that exits sooner than this after its start is failing to start: the primary stops rather than loop. */
const MIN_WORKER_LIFE_MS = 10_000;

/** Asks the primary for every worker's metrics, merged (prom-client's AggregatorRegistry): what /metrics answers in a worker. */
function clusterMetricsText(): () => Promise<string> {
  new client.AggregatorRegistry(); // registers the worker's answer to the primary's collection request
  const waiting = new Map<number, (text: string) => void>();
  let next = 0;
  process.on("message", (m: { type?: string; id?: number; text?: string }) => {
    if (m.type === "sf:metrics" && m.id !== undefined) {
      waiting.get(m.id)?.(m.text ?? "");
      waiting.delete(m.id);
    }
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => (waiting.delete(id), reject(new Error("the primary did not send the cluster's metrics within 5 s"))), 5_000);
      waiting.set(id, (text) => (clearTimeout(timer), resolve(text)));
      process.send!({ type: "sf:metrics", id });
    });
}

/** FEATURE_SERVER_PROCESSES > 1: this process forks the servers, answers their metrics requests, restarts one that dies, forwards SIGTERM/SIGINT. */
function primary(): void {
  const aggregator = new client.AggregatorRegistry();
  const started = new Map<Worker, number>();
  let stopping = false;
  const fork = () => started.set(cluster.fork(), Date.now());
  cluster.on("message", (worker, m: { type?: string; id?: number }) => {
    if (m.type !== "sf:metrics") return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: "sf:metrics", id: m.id, text }),
      (err: unknown) => worker.send({ type: "sf:metrics", id: m.id, text: `# metrics of the cluster unavailable: ${err instanceof Error ? err.message : String(err)}\n` }),
    );
  });
  cluster.on("exit", (worker, code, signal) => {
    const life = Date.now() - (started.get(worker) ?? 0);
    started.delete(worker);
    if (stopping) {
      if (started.size === 0) {
        logger.info("feature server stopped (every process)");
        logger.flush();
      }
      return;
    }
    if (life < MIN_WORKER_LIFE_MS) {
      logger.fatal({ pid: worker.process.pid, code, signal }, "a feature server process exited during start-up; stopping the others");
      process.exitCode = 1;
      stopping = true;
      for (const w of started.keys()) w.process.kill("SIGTERM");
      return;
    }
    logger.error({ pid: worker.process.pid, code, signal }, "a feature server process exited; starting another");
    fork();
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // a second signal: stop now
      for (const w of started.keys()) w.process.kill("SIGKILL");
      process.exit(process.exitCode ?? 1);
    }
    stopping = true;
    logger.info({ signal, processes: started.size }, "feature server stopping");
    for (const w of started.keys()) w.process.kill(signal);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  for (let i = 0; i < PROCESSES; i++) fork();
  logger.info({ processes: PROCESSES }, "feature server processes started");
}

async function main(): Promise<void> {
  const token = connections.get("FEATURE_SERVER_TOKEN");
  if (!token) {
    logger.fatal("FEATURE_SERVER_TOKEN (or FEATURE_SERVER_TOKEN_FILE) is required: clients send it as Authorization: Bearer <token>");
    process.exitCode = 1;
    cluster.worker?.disconnect(); // a worker's channel to the primary would keep it alive
    return;
  }
  const port = Number(process.env.FEATURE_SERVER_PORT ?? 8090);
  // concurrent requests' HMGETs go to Redis in one write (and one read of the replies)
  const redis = createRedisClient(connections, "default", { enableAutoPipelining: true });
  await redis.connect();
  const limits = {
    ...(process.env.FEATURE_SERVER_MAX_IN_FLIGHT ? { maxInFlight: Number(process.env.FEATURE_SERVER_MAX_IN_FLIGHT) } : {}),
    ...(process.env.FEATURE_SERVER_DEADLINE_MS ? { deadlineMs: Number(process.env.FEATURE_SERVER_DEADLINE_MS) } : {}),
  };
  const batchRead = process.env.FEATURE_SERVER_BATCH_READ;
  if (batchRead !== undefined && batchRead !== "script" && batchRead !== "pipeline") throw new Error(`FEATURE_SERVER_BATCH_READ is "script" or "pipeline", not ${JSON.stringify(batchRead)}`);
  const metrics = new EngineMetrics();
  const shared = cluster.isWorker ? (client.AggregatorRegistry.setRegistries([metrics.registry]), { metricsText: clusterMetricsText() }) : {};
  const cert = connections.file("FEATURE_SERVER_TLS_CERT_FILE");
  const key = connections.file("FEATURE_SERVER_TLS_KEY_FILE");
  if ((cert === undefined) !== (key === undefined)) throw new Error("HTTPS needs both FEATURE_SERVER_TLS_CERT_FILE and FEATURE_SERVER_TLS_KEY_FILE");
  const tls = cert && key ? { tls: { cert, key } } : {};
  // DATABASE_URL (optional): the offline feature log's database, for POST /v1/historical/{view}
  const offline = process.env.DATABASE_URL ? { offline: new pg.Pool({ ...pgTarget(connections, "default").config, max: 4 }) } : {};
  const server = await startFeatureServer({ ...tls, ...offline, redis, token, port, keyPrefix: process.env.FEATURE_SERVER_KEY_PREFIX ?? "", metrics, logger, ...limits, ...shared, ...(batchRead ? { batchRead } : {}) });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "feature server stopping");
    await server.close();
    await offline.offline?.end();
    await redis.quit().catch(() => redis.disconnect());
    logger.info("feature server stopped");
    logger.flush();
    cluster.worker?.disconnect();
  };
  // a worker gets a Ctrl-C both from the terminal and from its primary: it stays to finish; one process alone dies on the second
  const on = cluster.isWorker ? process.on.bind(process) : process.once.bind(process);
  on("SIGTERM", () => void stop("SIGTERM"));
  on("SIGINT", () => void stop("SIGINT"));
}

if (!Number.isInteger(PROCESSES) || PROCESSES < 1) {
  logger.fatal(`FEATURE_SERVER_PROCESSES is a whole number of processes (1 or more), not ${JSON.stringify(process.env.FEATURE_SERVER_PROCESSES)}`);
  process.exitCode = 1;
} else if (PROCESSES > 1 && cluster.isPrimary) primary();
else main().catch((err: unknown) => {
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "feature server failed to start");
  logger.flush();
  process.exitCode = 1;
  cluster.worker?.disconnect();
});
