/**
 * The feature server process: `node workers/feature-server.ts`.
 *
 * Environment: REDIS_URL (+ REDIS_USERNAME, REDIS_PASSWORD[_FILE], REDIS_TLS_CA_FILE),
 * FEATURE_SERVER_TOKEN or FEATURE_SERVER_TOKEN_FILE (required), FEATURE_SERVER_PORT
 * (default 8090), FEATURE_SERVER_KEY_PREFIX (the sinks' key_prefix, default empty),
 * FEATURE_SERVER_MAX_IN_FLIGHT (reads answered at once before 503 + Retry-After, default 256),
 * FEATURE_SERVER_DEADLINE_MS (504 after that long, default 250), FEATURE_SERVER_SEMI_SPACE_MB
 * (V8 young generation, default 4: see feature-server-gc.ts), FEATURE_SERVER_TLS_CERT_FILE and
 * FEATURE_SERVER_TLS_KEY_FILE (both: HTTPS instead of HTTP), DATABASE_URL (+ PGPASSWORD, PGSSLMODE,
 * PGSSLROOTCERT; optional: the offline feature log for POST /v1/historical/{view}), LOG_LEVEL. Views are read from the registry the redis.features sinks write.
 */
import "./feature-server-gc.ts";
import pg from "pg";
import { pgTarget } from "../lib/connectors/postgres/connection.ts";
import { createRedis } from "../lib/connectors/redis/client.ts";
import { startFeatureServer } from "../lib/features/server.ts";
import { createLogger } from "../lib/observability/logger.ts";
import { EngineMetrics } from "../lib/observability/metrics.ts";
import { Connections } from "../lib/runtime/connections.ts";

const logger = createLogger({ name: "feature-server", level: process.env.LOG_LEVEL ?? "info" });
const connections = new Connections(process.env);

async function main(): Promise<void> {
  const token = connections.get("FEATURE_SERVER_TOKEN");
  if (!token) {
    logger.fatal("FEATURE_SERVER_TOKEN (or FEATURE_SERVER_TOKEN_FILE) is required: clients send it as Authorization: Bearer <token>");
    process.exitCode = 1;
    return;
  }
  const port = Number(process.env.FEATURE_SERVER_PORT ?? 8090);
  // concurrent requests' HMGETs go to Redis in one write (and one read of the replies)
  const redis = createRedis(connections, "default", { enableAutoPipelining: true });
  await redis.connect();
  const limits = {
    ...(process.env.FEATURE_SERVER_MAX_IN_FLIGHT ? { maxInFlight: Number(process.env.FEATURE_SERVER_MAX_IN_FLIGHT) } : {}),
    ...(process.env.FEATURE_SERVER_DEADLINE_MS ? { deadlineMs: Number(process.env.FEATURE_SERVER_DEADLINE_MS) } : {}),
  };
  const cert = connections.file("FEATURE_SERVER_TLS_CERT_FILE");
  const key = connections.file("FEATURE_SERVER_TLS_KEY_FILE");
  if ((cert === undefined) !== (key === undefined)) throw new Error("HTTPS needs both FEATURE_SERVER_TLS_CERT_FILE and FEATURE_SERVER_TLS_KEY_FILE");
  const tls = cert && key ? { tls: { cert, key } } : {};
  // DATABASE_URL (optional): the offline feature log's database, for POST /v1/historical/{view}
  const offline = process.env.DATABASE_URL ? { offline: new pg.Pool({ ...pgTarget(connections, "default").config, max: 4 }) } : {};
  const server = await startFeatureServer({ ...tls, ...offline, redis, token, port, keyPrefix: process.env.FEATURE_SERVER_KEY_PREFIX ?? "", metrics: new EngineMetrics(), logger, ...limits });
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
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}

main().catch((err: unknown) => {
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "feature server failed to start");
  logger.flush();
  process.exitCode = 1;
});
