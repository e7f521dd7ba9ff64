import type { Connections } from "../../runtime/connections.ts";
import { amqpSecurityError, amqpTarget, connectAmqp } from "./connection.ts";

/** Checks that the default RabbitMQ accepts a connection and opens a channel; passes when AMQP_URL is not set (connector unused). */
export async function rabbitmqHealth(connections: Connections, signal: AbortSignal): Promise<void> {
  // A worker whose environment names no AMQP_URL does not use this connector: nothing to check.
  if (connections.get("AMQP_URL") === undefined) return;
  signal.throwIfAborted();
  const target = amqpTarget(connections, "default");
  const conn = await connectAmqp(target, "streamfleet-health").catch((err: unknown) => {
    throw amqpSecurityError(err, target) ?? err;
  });
  try {
    const ch = await conn.createChannel();
    await ch.close();
  } finally {
    await conn.close().catch(() => {});
  }
}
