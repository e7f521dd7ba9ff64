import type { Channel, Options } from "amqplib";
import type { Declarations, QueueDeclaration } from "./config.ts";

/** The x-arguments of a queue declaration. */
export function queueArguments(q: QueueDeclaration): Record<string, unknown> {
  const args: Record<string, unknown> = {};
  if (q.quorum) args["x-queue-type"] = "quorum";
  if (q.dead_letter_exchange !== undefined) args["x-dead-letter-exchange"] = q.dead_letter_exchange;
  if (q.dead_letter_routing_key !== undefined) args["x-dead-letter-routing-key"] = q.dead_letter_routing_key;
  if (q.max_length !== undefined) args["x-max-length"] = q.max_length;
  if (q.overflow !== undefined) args["x-overflow"] = q.overflow;
  if (q.message_ttl_ms !== undefined) args["x-message-ttl"] = q.message_ttl_ms;
  if (q.delivery_limit !== undefined) args["x-delivery-limit"] = q.delivery_limit;
  return args;
}

/**
 * Declares exchanges, then queues, then bindings (idempotent: re-declaring with the same
 * settings is a no-op). Uses a throw-away channel because a mismatched declaration
 * (PRECONDITION_FAILED) closes the channel it was made on.
 */
export async function declareTopology(channel: Channel, d: Declarations): Promise<void> {
  for (const x of d.exchanges) {
    await channel.assertExchange(x.name, x.type, { durable: x.durable, autoDelete: x.auto_delete });
  }
  for (const q of d.queues) {
    const options: Options.AssertQueue = { durable: q.quorum ? true : q.durable, arguments: queueArguments(q) };
    await channel.assertQueue(q.name, options);
    for (const b of q.bindings) await channel.bindQueue(q.name, b.exchange, b.routing_key);
  }
}
