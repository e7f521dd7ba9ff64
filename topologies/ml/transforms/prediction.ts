import crypto from "node:crypto";
import type { StreamRecord } from "../../../lib/runtime/contracts.ts";

/**
 * Transforms of the ml-predictions topology: a stable hash of the feature vector (the
 * cache key), and the answer — from the cache when `enrich` found an entry, else from a
 * stand-in model.
 */

export interface PredictionRequest {
  request_id: string;
  model_id: string;
  features: Record<string, number>;
  user_id: string | null;
  requested_at: number;
}

/** What the prediction cache holds under prediction:{model_id}:{features_hash}. */
export interface CachedPrediction {
  model_id: string;
  features_hash: string;
  prediction: number;
  label: string;
  computed_at: number;
}

/** sha256 of the feature vector as JSON with names in sorted order (32 hex digits): equal vectors, equal hash. */
export function featuresHash(features: Record<string, number>): string {
  const sorted = Object.keys(features)
    .sort()
    .map((k) => [k, features[k]]);
  return crypto.createHash("sha256").update(JSON.stringify(sorted)).digest("hex").slice(0, 32);
}

/** Step 1: adds `features_hash`, which the enrich step and the cache sink key on. */
export function hashFeatures(value: PredictionRequest): PredictionRequest & { features_hash: string } {
  return { ...value, features_hash: featuresHash(value.features) };
}

/** A stand-in model: a logistic score with weights derived from the model id and feature name. */
export function standInModel(modelId: string, features: Record<string, number>): number {
  let z = 0;
  for (const name of Object.keys(features).sort()) {
    const h = crypto.createHash("sha256").update(`${modelId}/${name}`).digest();
    const weight = (h[0]! / 255) * 2 - 1;
    z += weight * features[name]!;
  }
  return Number((1 / (1 + Math.exp(-z))).toFixed(6));
}

/**
 * Step 3: answers the request. `cached` is what `enrich` read from the cache (null on a
 * miss). The route step then sends misses to the cache and the responses, hits to the
 * responses only.
 */
export function answer(value: PredictionRequest & { features_hash: string; cached: CachedPrediction | null }, _record: StreamRecord, ctx: { now(): number }) {
  const now = ctx.now();
  const hit = value.cached;
  const prediction = hit ? hit.prediction : standInModel(value.model_id, value.features);
  return {
    request_id: value.request_id,
    model_id: value.model_id,
    features_hash: value.features_hash,
    prediction,
    label: hit ? hit.label : prediction >= 0.5 ? "positive" : "negative",
    cached: hit !== null,
    user_id: value.user_id,
    computed_at: hit ? hit.computed_at : now,
    answered_at: now,
  };
}
