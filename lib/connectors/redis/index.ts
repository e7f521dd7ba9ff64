import type { ConnectorDescriptor } from "../../runtime/contracts.ts";
import { redisHealth } from "./health.ts";
import { cacheSink } from "./sink-cache.ts";
import { featuresSink } from "./sink-features.ts";
import { publishSink } from "./sink-publish.ts";
import { dedupeStep, enrichStep, rateLimitStep } from "./steps.ts";
import { cacheEffect, featuresEffect, publishEffect } from "./effects.ts";

/**
 * The Redis connector: the feature store, entity caches and pub/sub as sinks; enrich,
 * dedupe and rate-limit as steps. Key layout: docs/feature-store.md.
 */
export const redis = {
  name: "redis",
  sinks: {
    "redis.features": { ...featuresSink, effect: featuresEffect },
    "redis.cache": { ...cacheSink, effect: cacheEffect },
    "redis.publish": { ...publishSink, effect: publishEffect },
  },
  steps: { enrich: enrichStep, dedupe: dedupeStep, "rate-limit": rateLimitStep },
  health: (connections, signal) => redisHealth(connections, signal),
} satisfies ConnectorDescriptor;
