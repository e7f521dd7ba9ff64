import type { DemoEvent, DemoSystem } from "../demo.ts";

/**
 * Demo traffic of the ML data platform: prediction requests drawn from a small pool of
 * feature vectors (so most are answered from the cache after the first minute), user
 * sessions and product events for the feature store, model metrics for the analytics
 * table, and now and then a training request (whose completion may raise an alert).
 * Everything but the ids is a function of the tick number i; ids carry `now` too, so a
 * restarted demo never collides with its earlier rows.
 */

const MODELS = ["churn_v3", "ltv_v1", "fraud_v7"] as const;
const MODEL_TYPES: Record<string, string> = { churn_v3: "classification", ltv_v1: "regression", fraud_v7: "classification" };
const DEVICES = ["mobile", "desktop", "tablet"] as const;
const CATEGORIES = ["books", "electronics", "garden", "toys"] as const;
const METRICS = ["latency_ms", "drift_psi", "accuracy"] as const;

/** A cheap deterministic pseudo-random number in [0, 1) from integers. */
function rand(...n: number[]): number {
  let h = 2166136261;
  for (const x of n) {
    h ^= x;
    h = Math.imul(h, 16777619) >>> 0;
    h ^= h >>> 13;
  }
  return (Math.imul(h, 2246822519) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[], r: number): T => xs[Math.floor(r * xs.length)]!;
const round = (x: number, d = 2) => Number(x.toFixed(d));

/** One of 8 feature vectors per model: repeats are what the prediction cache answers. */
function featureVector(k: number): Record<string, number> {
  return { age: 20 + Math.floor(rand(k, 1) * 50), sessions_30d: Math.floor(rand(k, 2) * 40), avg_basket: round(rand(k, 3) * 120), tenure_months: Math.floor(rand(k, 4) * 60) };
}

function events(i: number, now: number): DemoEvent[] {
  const id = (kind: string) => `${kind}-${now.toString(36)}-${i}`;
  const model = MODELS[i % MODELS.length]!;
  const userId = `user-${Math.floor(rand(i, 10) * 50)}`;
  const productId = `product-${Math.floor(rand(i, 20) * 40)}`;
  const out: DemoEvent[] = [
    {
      topic: "ml.prediction-requests",
      key: id("req"),
      value: { request_id: id("req"), model_id: model, features: featureVector(Math.floor(rand(i, 30) * 8)), user_id: userId, requested_at: now },
    },
    {
      topic: "ml.user-events",
      key: userId,
      value: {
        event_id: id("session"),
        user_id: userId,
        session_length_s: 30 + Math.floor(rand(i, 11) * 1200),
        page_views: 1 + Math.floor(rand(i, 12) * 25),
        purchases: rand(i, 13) < 0.15 ? 1 : 0,
        purchase_amount: rand(i, 13) < 0.15 ? round(10 + rand(i, 14) * 190) : 0,
        device: pick(DEVICES, rand(i, 15)),
        occurred_at: now,
      },
    },
  ];
  const kind = rand(i, 21);
  const basePrice = 5 + Math.floor(rand(Number(productId.slice(8)), 22) * 95);
  out.push({
    topic: "ml.product-events",
    key: productId,
    value: {
      event_id: id("product"),
      product_id: productId,
      event_type: kind < 0.8 ? "view" : kind < 0.95 ? "purchase" : "price_change",
      price: kind < 0.95 ? basePrice + 0.99 : round(basePrice * (0.8 + rand(i, 23) * 0.3)),
      views: kind < 0.8 ? 1 + Math.floor(rand(i, 24) * 5) : 0,
      category: CATEGORIES[Number(productId.slice(8)) % CATEGORIES.length]!,
      occurred_at: now,
    },
  });
  if (i % 2 === 0) {
    const metric = pick(METRICS, rand(i, 40));
    const value = metric === "latency_ms" ? round(5 + rand(i, 41) * 80) : metric === "drift_psi" ? round(rand(i, 41) * 0.3, 3) : round(0.75 + rand(i, 41) * 0.2, 3);
    out.push({ topic: "ml.metric-events", key: model, value: { event_id: id("metric"), model_id: model, metric, value, tags: { env: "demo", region: pick(["eu", "us"], rand(i, 42)) }, recorded_at: now } });
  }
  if (i % 25 === 0) {
    // A new dataset each time: the stand-in trainer scores it differently, so accuracy moves up and down.
    out.push({
      topic: "ml.training-requests",
      key: model,
      value: { request_id: id("train"), model_id: model, model_type: MODEL_TYPES[model]!, dataset: `${model.split("_")[0]}_data_${i / 25}`, epochs: 5 + (i % 20), hyperparameters: { learning_rate: "0.01", n_estimators: "100" }, requested_by: "demo", requested_at: now },
    });
  }
  return out;
}

export const demo: DemoSystem = {
  name: "ml",
  topics: [
    { topic: "ml.prediction-requests", schema: "schemas/ml/prediction-request.avsc", partitions: 3 },
    { topic: "ml.user-events", schema: "schemas/ml/user-activity.avsc", partitions: 3 },
    { topic: "ml.product-events", schema: "schemas/ml/product-event.avsc", partitions: 3 },
    { topic: "ml.training-requests", schema: "schemas/ml/training-request.avsc", partitions: 3 },
    { topic: "ml.metric-events", schema: "schemas/ml/metric-event.avsc", partitions: 3 },
  ],
  next: events,
};
