import pg from "pg";
import type { Connections } from "../../runtime/connections.ts";
import { pgSecurityError, pgTarget } from "./connection.ts";

/** Checks that the default PostgreSQL accepts a connection and answers a query; passes when DATABASE_URL is not set (connector unused). */
export async function postgresHealth(connections: Connections, signal: AbortSignal): Promise<void> {
  // A worker whose environment names no DATABASE_URL does not use this connector: nothing to check.
  if (connections.get("DATABASE_URL") === undefined) return;
  const target = pgTarget(connections, "default");
  const client = new pg.Client({ ...target.config, connectionTimeoutMillis: 5_000 });
  const abort = () => void client.end().catch(() => {});
  signal.addEventListener("abort", abort, { once: true });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
  } catch (err) {
    throw pgSecurityError(err, target) ?? err;
  } finally {
    signal.removeEventListener("abort", abort);
    await client.end().catch(() => {});
  }
}
