import { Connections } from "../../lib/runtime/connections.ts";
import type { ComponentContext, StreamRecord } from "../../lib/runtime/contracts.ts";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { EngineMetrics } from "../../lib/observability/metrics.ts";
import { createLogger } from "../../lib/observability/logger.ts";

let offset = 0;

/** A decoded record as the runtime hands it to steps and sinks. */
export function makeRecord(value: unknown, over: Partial<StreamRecord> & { topic?: string; partition?: number; offset?: string; timestamp?: number } = {}): StreamRecord {
  const topic = over.topic ?? "test.topic";
  const partition = over.partition ?? 0;
  const off = over.offset ?? String(offset++);
  const timestamp = over.timestamp ?? Date.now();
  return {
    key: over.key ?? null,
    value,
    headers: over.headers ?? {},
    id: over.id ?? `${topic}/${partition}/${off}`,
    origin: { cluster: "test0000", topic, partition, offset: off, timestamp, rawKey: null, rawValue: Buffer.from(JSON.stringify(value ?? null)), rawHeaders: {} },
    ...(over.targets ? { targets: over.targets } : {}),
  };
}

/** A component context wired to the real services of this test run (process.env from global setup). */
export function makeContext(over: Partial<ComponentContext> = {}): ComponentContext {
  const env = process.env;
  return {
    topology: "test",
    component: "test",
    logger: createLogger({ level: env.LOG_LEVEL ?? "silent" }),
    metrics: new EngineMetrics({ processMetrics: false }),
    connections: new Connections(env),
    codecs: new SchemaCodecs(env.SCHEMA_REGISTRY_URL ?? "http://127.0.0.1:8081/apis/ccompat/v7"),
    baseDir: process.cwd(),
    signal: new AbortController().signal,
    now: () => Date.now(),
    ...over,
  };
}
