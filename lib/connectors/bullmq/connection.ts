import type { Redis } from "ioredis";
import type { Connections } from "../../runtime/connections.ts";
import { createRedis } from "../redis/client.ts";

/**
 * An ioredis client for connection `name`: REDIS_URL(__NAME), with REDIS_USERNAME and
 * REDIS_PASSWORD(_FILE) overriding the URL's credentials and REDIS_TLS_CA_FILE for
 * rediss://. `failFast` makes commands fail while Redis is down (a sink must report the
 * outage, not queue writes forever); BullMQ workers need `maxRetriesPerRequest: null`.
 */
export function redisClient(connections: Connections, name: string, failFast: boolean): Redis {
  // Through createRedis: the same TLS and credential settings, and its last error kept, so that a
  // refused login or ACL denial is reported as such (clientSecurityError), not as an outage.
  return createRedis(connections, name, {
    connectTimeout: 10_000,
    maxRetriesPerRequest: failFast ? 1 : null,
    enableOfflineQueue: !failFast,
    // Reconnect forever with a capped back-off: the runtime keeps retrying the batch meanwhile.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 2_000),
  });
}
