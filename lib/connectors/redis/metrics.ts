import client from "prom-client";
import type { EngineMetrics } from "../../observability/metrics.ts";

/**
 * Redis-only series (the engine already counts sink writes, records and latency for every
 * sink): pipeline round-trip time per operation and what the scripts decided per record.
 */
export interface RedisMetrics {
  /** Seconds one batch pipeline takes, by operation (features, cache, publish, enrich, dedupe, rate_limit). */
  pipelineSeconds: client.Histogram<"topology" | "operation">;
  /** Per-record script results: applied, duplicate (replay skipped), passed, dropped, limited. */
  scriptResults: client.Counter<"topology" | "script" | "result">;
}

const PIPELINE = "streamfleet_redis_pipeline_seconds";
const RESULTS = "streamfleet_redis_script_results_total";

/** The connector's series on the engine's registry; registered once per registry however many sinks ask. */
export function redisMetrics(metrics: EngineMetrics): RedisMetrics {
  const registry = metrics.registry;
  const pipelineSeconds =
    (registry.getSingleMetric(PIPELINE) as client.Histogram<"topology" | "operation"> | undefined) ??
    new client.Histogram({
      name: PIPELINE,
      help: "Time one batch's Redis pipeline takes (script latency included), by operation",
      labelNames: ["topology", "operation"],
      buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
  const scriptResults =
    (registry.getSingleMetric(RESULTS) as client.Counter<"topology" | "script" | "result"> | undefined) ??
    new client.Counter({
      name: RESULTS,
      help: "Per-record results of the Redis scripts (features: applied/duplicate; dedupe: passed/dropped; rate_limit: passed/limited)",
      labelNames: ["topology", "script", "result"],
      registers: [registry],
    });
  return { pipelineSeconds, scriptResults };
}

/** Times `fn` into the pipeline histogram. */
export async function timed<T>(m: RedisMetrics, topology: string, operation: string, fn: () => Promise<T>): Promise<T> {
  const end = m.pipelineSeconds.startTimer({ topology, operation });
  try {
    return await fn();
  } finally {
    end();
  }
}
