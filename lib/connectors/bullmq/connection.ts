import { Redis } from "ioredis";
import type { RedisOptions } from "ioredis";
import type { Connections } from "../../runtime/connections.ts";

/**
 * An ioredis client for connection `name`: REDIS_URL(__NAME), with REDIS_USERNAME and
 * REDIS_PASSWORD(_FILE) overriding the URL's credentials and REDIS_TLS_CA_FILE for
 * rediss://. `failFast` makes commands fail while Redis is down (a sink must report the
 * outage, not queue writes forever); BullMQ workers need `maxRetriesPerRequest: null`.
 */
export function redisClient(connections: Connections, name: string, failFast: boolean): Redis {
  const url = connections.require("REDIS_URL", name);
  const options: RedisOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: failFast ? 1 : null,
    enableOfflineQueue: !failFast,
    // Reconnect forever with a capped back-off: the runtime keeps retrying the batch meanwhile.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 2_000),
  };
  const username = connections.get("REDIS_USERNAME", name);
  const password = connections.get("REDIS_PASSWORD", name);
  if (username) options.username = username;
  if (password) options.password = password;
  const ca = connections.file("REDIS_TLS_CA_FILE", name);
  if (ca) options.tls = { ca };
  const client = new Redis(url, options);
  // Outages surface through the sink's writes (SF_ERR_SINK_NOT_CONNECTED), not as unhandled events.
  client.on("error", () => {});
  return client;
}
