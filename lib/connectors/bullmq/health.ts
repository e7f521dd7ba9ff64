import type { Connections } from "../../runtime/connections.ts";
import { clientSecurityError } from "../redis/client.ts";
import { redisClient } from "./connection.ts";

/** Checks that the default Redis (BullMQ's store) answers PING; passes when REDIS_URL is not set (connector unused). */
export async function bullmqHealth(connections: Connections, signal: AbortSignal): Promise<void> {
  // A worker whose environment names no REDIS_URL does not use this connector: nothing to check.
  if (connections.get("REDIS_URL") === undefined) return;
  const client = redisClient(connections, "default", true);
  const abort = () => client.disconnect();
  signal.addEventListener("abort", abort, { once: true });
  try {
    await client.connect();
    const pong = await client.ping();
    if (pong !== "PONG") throw new Error(`Redis answered PING with ${pong}`);
  } catch (err) {
    // a refused login reaches connect() only as "Connection is closed": say what it was
    throw clientSecurityError(err, client) ?? err;
  } finally {
    signal.removeEventListener("abort", abort);
    client.disconnect();
  }
}
