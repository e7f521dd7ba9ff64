import client from "prom-client";
import type { EngineMetrics } from "../../observability/metrics.ts";

const NAME = "streamfleet_rabbitmq_refused_total";

/**
 * Messages the broker did not take, by reason: `nack` (refused, e.g. a full queue with
 * reject-publish) or `unroutable` (returned: no queue bound for the routing key). The
 * engine's sink series cover what was delivered; this is RabbitMQ's own.
 */
export function refusedCounter(metrics: EngineMetrics): client.Counter<"topology" | "sink" | "reason"> {
  const existing = metrics.registry.getSingleMetric(NAME);
  if (existing) return existing as client.Counter<"topology" | "sink" | "reason">;
  return new client.Counter({
    name: NAME,
    help: "Messages RabbitMQ refused (nack) or returned as unroutable; their batch is retried",
    labelNames: ["topology", "sink", "reason"],
    registers: [metrics.registry],
  });
}
