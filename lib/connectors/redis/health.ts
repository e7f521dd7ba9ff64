import type { Connections } from "../../runtime/connections.ts";
import { createRedisClient, toSfError } from "./client.ts";

/**
 * Checks that the default Redis connection answers PING within the caller's deadline;
 * throws SF_ERR_SINK_NOT_CONNECTED with the (password-free) address otherwise. Passes when
 * neither REDIS_URL nor REDIS_CLUSTER_NODES is set: /readyz checks every registered connector,
 * and a worker without a Redis address does not use this one. A cluster is ready once its
 * slot map is loaded and a node answers.
 */
export async function redisHealth(connections: Connections, signal: AbortSignal, name = "default"): Promise<void> {
  if (connections.get("REDIS_URL", name) === undefined && connections.get("REDIS_CLUSTER_NODES", name) === undefined) return;
  const redis = createRedisClient(connections, name, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  let abort = () => redis.disconnect();
  // a Cluster client's connect() may not settle when disconnected mid-way: the deadline rejects by itself
  const aborted = new Promise<never>((_, reject) => {
    abort = () => {
      redis.disconnect();
      reject(new Error("no answer before the health check's deadline"));
    };
  });
  aborted.catch(() => {});
  if (signal.aborted) abort();
  signal.addEventListener("abort", abort, { once: true });
  try {
    await Promise.race([
      (async () => {
        await redis.connect();
        await redis.ping();
      })(),
      aborted,
    ]);
  } catch (err) {
    throw toSfError(err, redis, "redis.health");
  } finally {
    signal.removeEventListener("abort", abort);
    redis.disconnect();
  }
}
