import crypto from "node:crypto";
import path from "node:path";
import amqp from "amqplib";
import type { ChannelModel } from "amqplib";
import { Redis } from "ioredis";
import type { Kafka, Producer } from "kafkajs";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { startFeatureServer } from "../../lib/features/server.ts";
import type { FeatureServer } from "../../lib/features/server.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { featuresHash } from "../../topologies/ml/transforms/prediction.ts";
import { ACCURACY_THRESHOLD } from "../../topologies/ml/transforms/alerts.ts";
import { startTrainingLoop } from "../../topologies/ml/receivers.ts";
import type { TrainingLoop } from "../../topologies/ml/receivers.ts";
import { avroProducer, ROOT, runIds, topicTails, until } from "../support/examples.ts";
import { startFleet } from "../support/fleet.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

/**
 * The ML data platform (topologies/ml) end to end, against the real services: the real
 * topology directory, Avro events with the real schemas, each sink's effect observed as a
 * user would. Topic, group and table names are fixed by the topology files, so every
 * entity id here is random per run and the shared topics are never deleted.
 */

const { uid } = runIds();
const scope = new TestScope("mlplatform");

let fleet: Fleet | undefined;
let training: TrainingLoop | undefined;
let kafka: Kafka;
let producer: Producer;
let redis: Redis;
let db: pg.Client;
let offline: pg.Pool;
let amqpConn: ChannelModel;
let features: FeatureClient;
const codecs = () => new SchemaCodecs(stack().SCHEMA_REGISTRY_URL);
/** Produces Avro values encoded with the topic's real schema (registered under <topic>-value). */
const produce = avroProducer(() => producer, codecs, path.join(ROOT, "schemas/ml"));
/** Decoded Avro records of a topic from its current end on: what arrives after this call. */
const tails = topicTails(() => kafka, codecs, (topic) => `test-${scope.id}-${topic}`);
const tail = tails.tail;

beforeAll(async () => {
  const s = stack();
  kafka = scope.kafka();
  producer = scope.producer();
  await producer.connect();
  redis = new Redis(s.REDIS_URL);
  db = new pg.Client({ connectionString: s.DATABASE_URL });
  await db.connect();
  offline = new pg.Pool({ connectionString: s.DATABASE_URL, max: 2 });
  features = new FeatureClient({ redis, viewsRefreshMs: 0, offline });
  fleet = await startFleet(path.join(ROOT, "topologies/ml"));
  training = await startTrainingLoop({ env: process.env, logger: createLogger({ level: process.env.LOG_LEVEL ?? "silent" }) });
  amqpConn = await amqp.connect(s.AMQP_URL);
});

afterAll(async () => {
  await tails.close();
  await training?.close();
  await fleet?.stop(5000);
  await producer?.disconnect();
  await amqpConn?.close().catch(() => {});
  redis?.disconnect();
  await db?.end();
  await offline?.end();
});

/** Rows of the offline feature log (ml.feature_log) of one entity of a view. */
async function logRows(view: string, entity: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM ml.feature_log WHERE view = $1 AND entity = $2", [view, entity]);
  return Number(rows[0]!.n);
}

describeStack("the ML data platform (topologies/ml)", () => {
  it("answers a repeated prediction request from the cache", async () => {
    const responses = await tail("ml.prediction-responses");
    const model = uid("model");
    const request = (id: string, f: Record<string, number>) => ({ key: id, value: { request_id: id, model_id: model, features: f, user_id: uid("user"), requested_at: Date.now() } });
    const [first, second] = [uid("req"), uid("req")];
    await produce("ml.prediction-requests", "prediction-request.avsc", [request(first, { age: 34, income: 52.5, tenure: 3 })]);
    const miss = (await until(async () => responses.find((r) => r.value.request_id === first), Boolean, "the first response"))!;
    const hash = featuresHash({ age: 34, income: 52.5, tenure: 3 });
    expect(miss.key).toBe(first);
    expect(miss.value).toMatchObject({ model_id: model, features_hash: hash, cached: false });

    const key = `prediction:${model}:${hash}`;
    // The cache and the response sinks write in parallel: the entry may land a moment later.
    const entry = await until(() => redis.get(key), (v) => v !== null, `the cache entry ${key}`);
    expect(JSON.parse(entry!)).toMatchObject({ model_id: model, prediction: miss.value.prediction });
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(1700);
    expect(ttl).toBeLessThanOrEqual(1800);

    // The same vector, its features named in another order: the stable hash finds the entry.
    await produce("ml.prediction-requests", "prediction-request.avsc", [request(second, { tenure: 3, income: 52.5, age: 34 })]);
    const hit = (await until(async () => responses.find((r) => r.value.request_id === second), Boolean, "the second response"))!;
    expect(hit.value).toMatchObject({ model_id: model, features_hash: hash, cached: true, prediction: miss.value.prediction, computed_at: miss.value.computed_at });
  });

  it("serves user and product features through the feature server and the client", async () => {
    const [user, product] = [uid("user"), uid("product")];
    const t0 = Date.now() - 60_000;
    await produce("ml.user-events", "user-activity.avsc", [
      { key: user, value: { event_id: uid("ev"), user_id: user, session_length_s: 300, page_views: 12, purchases: 1, purchase_amount: 49.9, device: "mobile", occurred_at: t0 } },
      { key: user, value: { event_id: uid("ev"), user_id: user, session_length_s: 120, page_views: 4, purchases: 0, purchase_amount: 0, device: "desktop", occurred_at: t0 + 1000 } },
    ]);
    await produce("ml.product-events", "product-event.avsc", [
      { key: product, value: { event_id: uid("ev"), product_id: product, event_type: "view", price: 19.99, views: 5, category: "books", occurred_at: t0 } },
      { key: product, value: { event_id: uid("ev"), product_id: product, event_type: "purchase", price: 19.99, views: 0, category: "books", occurred_at: t0 + 1000 } },
      { key: product, value: { event_id: uid("ev"), product_id: product, event_type: "price_change", price: 17.5, views: 0, category: "books", occurred_at: t0 + 2000 } },
    ]);

    const token = crypto.randomBytes(12).toString("hex");
    let server: FeatureServer | undefined;
    try {
      server = await startFeatureServer({ redis, token, port: 0, host: "127.0.0.1" });
      const get = async (view: string, id: string) => {
        const res = await fetch(`${server!.url}/v1/features/${view}/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${token}` } });
        return res.ok ? ((await res.json()) as { found: boolean; features: Record<string, { value: unknown }> }) : undefined;
      };
      const u = (await until(() => get("user", user), (b) => b?.features.sessions?.value === 2, "user features over HTTP"))!;
      expect(u.found).toBe(true);
      expect(u.features.total_session_seconds!.value).toBe(420);
      expect(u.features.purchases!.value).toBe(1);
      expect(u.features.max_purchase_amount!.value).toBe(49.9);
      expect(u.features.last_device!.value).toBe("desktop");
      expect(u.features.recent_page_views!.value).toEqual([4, 12]);
      const p = (await until(() => get("product", product), (b) => b?.features.price?.value === 17.5, "product features over HTTP"))!;
      expect(p.features.views!.value).toBe(5);
      expect(p.features.purchases!.value).toBe(1);
      expect(p.features.max_price!.value).toBe(19.99);
    } finally {
      await server?.close();
    }

    const [row] = await features.getFeatures("product", [product], ["price", "category", "views"]);
    expect(row).toMatchObject({ id: product, found: true, features: { price: { value: 17.5, event_time: t0 + 2000 }, category: { value: "books" }, views: { value: 5 } } });
    const [userRow] = await features.getFeatures("user", [user], ["sessions"]);
    expect(userRow!.features.sessions!.value).toBe(2);
    // both views keep their offline log: one row per applied record
    expect(await logRows("user", user)).toBe(2);
    expect(await logRows("product", product)).toBe(3);
  });

  it("builds a training set from the offline feature log for labelled predictions, equal to the online reads at each prediction", async () => {
    const [user, model] = [uid("user"), uid("model")];
    const t0 = Date.now() - 10 * 60_000;
    const session = (i: number, at: number) => ({
      key: user,
      value: { event_id: uid("ev"), user_id: user, session_length_s: 60 * (i + 1), page_views: i + 2, purchases: i % 2, purchase_amount: 10 * i + 0.5, device: i % 3 === 0 ? "mobile" : "desktop", occurred_at: at },
    });
    // three rounds: two sessions, then (once the view shows them) an online read and a prediction request at that moment
    const online: Record<string, unknown>[] = [];
    const asked: Array<{ request_id: string; at: number }> = [];
    for (let k = 0; k < 3; k++) {
      const base = t0 + k * 60_000;
      await produce("ml.user-events", "user-activity.avsc", [session(2 * k, base), session(2 * k + 1, base + 1000)]);
      await until(async () => (await features.getFeatures("user", [user], ["sessions"]))[0]!.features.sessions!.value, (v) => v === 2 * (k + 1), `user sessions ${2 * (k + 1)}`);
      const at = base + 2000;
      const [read] = await features.getFeatures("user", [user], undefined, { asOf: at });
      online.push(Object.fromEntries(Object.entries(read!.features).map(([n, f]) => [n, f.value])));
      const request_id = uid("req");
      asked.push({ request_id, at });
      await produce("ml.prediction-requests", "prediction-request.avsc", [{ key: request_id, value: { request_id, model_id: model, features: { age: 30 + k, income: 40 + k, tenure: k }, user_id: user, requested_at: at } }]);
    }
    expect(online[2]).toMatchObject({ sessions: 6, total_session_seconds: 1260, recent_page_views: [7, 6, 5, 4, 3], last_device: "desktop" });

    // the labelled events as a training job finds them: requests joined with their answers in the audit log
    const labelled = await until(
      async () =>
        (
          await db.query<{ request_id: string; user_id: string; requested_at: unknown; label: string }>(
            `SELECT q.payload->>'request_id' AS request_id, q.payload->>'user_id' AS user_id, q.payload->'requested_at' AS requested_at, r.payload->>'label' AS label
             FROM ml.audit_log q JOIN ml.audit_log r ON r.event_type = 'prediction_response' AND r.payload->>'request_id' = q.payload->>'request_id'
             WHERE q.event_type = 'prediction_request' AND q.model_id = $1`,
            [model],
          )
        ).rows,
      (r) => r.length >= 3,
      "the three labelled predictions in the audit log",
      60_000,
    );
    // newest first, as a job might ask: the answer keeps this order
    const rows = labelled
      .map((r) => ({ entity: r.user_id, t: typeof r.requested_at === "number" ? r.requested_at : Date.parse(String(r.requested_at)), label: r.label, request_id: r.request_id }))
      .sort((a, b) => b.t - a.t);
    expect(rows.map((r) => r.request_id)).toEqual(asked.map((a) => a.request_id).reverse());
    expect(rows.every((r) => r.label === "positive" || r.label === "negative")).toBe(true);

    const training = await features.historical("user", rows);
    expect(training.map((r) => [r.request_id, r.label])).toEqual(rows.map((r) => [r.request_id, r.label]));
    // each row holds what the online store answered at that prediction, although later sessions arrived since
    expect(training.map((r) => r.features)).toEqual([...online].reverse());
    expect(await logRows("user", user)).toBe(6);
  });

  it("dispatches a training request through the RabbitMQ job queue and reports model_training_completed to Kafka", async () => {
    const completed = await tail("ml.model-training-completed");
    const [model, request] = [uid("model"), uid("train")];
    await produce("ml.training-requests", "training-request.avsc", [
      { key: model, value: { request_id: request, model_id: model, model_type: "classification", dataset: "customer_data", epochs: 5, hyperparameters: { n_estimators: "100" }, requested_by: "e2e", requested_at: Date.now() } },
    ]);
    const done = (await until(async () => completed.find((r) => r.value.request_id === request), Boolean, "model_training_completed"))!;
    expect(done.key).toBe(model);
    expect(done.value).toMatchObject({ event_id: `training:${request}`, model_id: model, dataset: "customer_data" });
    expect(done.value.accuracy).toBeGreaterThan(0.5);
    expect(done.value.accuracy).toBeLessThanOrEqual(1);
  });

  it("alerts on the alert exchange when accuracy falls below the threshold or below the previous value, and not when it improves", async () => {
    const model = uid("model");
    const ch = await amqpConn.createChannel();
    const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
    await ch.bindQueue(queue, "ml.alerts", "alert.#");
    const alerts: Array<{ routingKey: string; body: Record<string, unknown> }> = [];
    await ch.consume(queue, (m) => {
      if (!m) return;
      const body = JSON.parse(m.content.toString()) as Record<string, unknown>;
      if (body.model_id === model) alerts.push({ routingKey: m.fields.routingKey, body });
    }, { noAck: true });

    const t0 = Date.now();
    const report = async (accuracy: number, i: number) => {
      await produce("ml.model-training-completed", "model-training-completed.avsc", [
        { key: model, value: { event_id: uid("done"), request_id: uid("train"), model_id: model, accuracy, loss: 1 - accuracy, dataset: "d", duration_ms: 10, completed_at: t0 + i * 1000 } },
      ]);
      // Wait until the view holds it, so the next event reads it as the previous accuracy.
      await until(async () => (await features.getFeatures("model", [model], ["accuracy"]))[0]?.features.accuracy?.value, (v) => v === accuracy, `model accuracy ${accuracy}`);
    };
    await report(0.9, 0); // first training: nothing to compare with
    await report(0.95, 1); // improves
    await report(0.85, 2); // below the previous value
    await report(0.7, 3); // below the threshold
    await until(async () => alerts.length, (n) => n >= 2, "two alerts");
    await ch.close();

    expect(alerts.map((a) => a.routingKey)).toEqual(["alert.warning", "alert.critical"]);
    expect(alerts[0]!.body).toMatchObject({ severity: "warning", reason: "accuracy_dropped", accuracy: 0.85, previous_accuracy: 0.95 });
    expect(alerts[1]!.body).toMatchObject({ severity: "critical", reason: "below_threshold", accuracy: 0.7, previous_accuracy: 0.85, threshold: ACCURACY_THRESHOLD });
    const [row] = await features.getFeatures("model", [model], ["best_accuracy", "trainings"]);
    expect(row!.features).toMatchObject({ best_accuracy: { value: 0.95 }, trainings: { value: 4 } });
    expect(await logRows("model", model)).toBe(4);
  });

  it("records every platform event in the PostgreSQL audit log through the ml.audit-log topic", async () => {
    const [model, predict, train] = [uid("model"), uid("req"), uid("train")];
    await produce("ml.prediction-requests", "prediction-request.avsc", [{ key: predict, value: { request_id: predict, model_id: model, features: { x: 1 }, user_id: null, requested_at: Date.now() } }]);
    await produce("ml.training-requests", "training-request.avsc", [
      { key: model, value: { request_id: train, model_id: model, model_type: "regression", dataset: "sales", epochs: 1, hyperparameters: {}, requested_by: null, requested_at: Date.now() } },
    ]);
    const expected = ["model_training_completed", "prediction_request", "prediction_response", "training_requested"];
    const rows = await until(
      async () => (await db.query<{ event_type: string; source_topic: string; payload: Record<string, unknown>; event_id: string }>("SELECT event_type, source_topic, payload, event_id FROM ml.audit_log WHERE model_id = $1 ORDER BY event_type", [model])).rows,
      (r) => expected.every((t) => r.some((x) => x.event_type === t)),
      "audit rows of the model",
      60_000,
    );
    expect(rows.find((r) => r.event_type === "prediction_request")).toMatchObject({ source_topic: "ml.prediction-requests", payload: { request_id: predict, features: { x: 1 } } });
    expect(rows.find((r) => r.event_type === "prediction_response")!.payload).toMatchObject({ request_id: predict, cached: false });
    expect(rows.find((r) => r.event_type === "model_training_completed")!.payload).toMatchObject({ request_id: train });
    expect(rows.find((r) => r.event_type === "training_requested")!.event_id).toMatch(/^ml\.training-requests\/\d+\/\d+@[0-9a-f]{8}$/);
  });

  it("stores metric events in the analytics table", async () => {
    const model = uid("model");
    const at = Date.UTC(2025, 0, 2, 3, 4, 5);
    const metrics = [
      { metric: "latency_ms", value: 12.5 },
      { metric: "drift_psi", value: 0.08 },
      { metric: "accuracy", value: 0.91 },
    ].map((m, i) => ({ key: model, value: { event_id: uid("metric"), model_id: model, ...m, tags: { region: "eu" }, recorded_at: at + i } }));
    await produce("ml.metric-events", "metric-event.avsc", metrics);
    const rows = await until(
      async () => (await db.query<{ metric: string; value: number; tags: Record<string, string>; recorded_at: Date }>("SELECT metric, value, tags, recorded_at FROM ml.metric_events WHERE model_id = $1 ORDER BY recorded_at", [model])).rows,
      (r) => r.length >= 3,
      "metric rows",
    );
    expect(rows.map((r) => [r.metric, r.value])).toEqual([["latency_ms", 12.5], ["drift_psi", 0.08], ["accuracy", 0.91]]);
    expect(rows[0]!.tags).toEqual({ region: "eu" });
    expect(rows[0]!.recorded_at.getTime()).toBe(at);
  });

  it("dead-letters none of the platform's events", async () => {
    const processed = await fleet!.metrics.processed.get();
    const ml = processed.values.filter((v) => String(v.labels.topology).startsWith("ml-"));
    expect(ml.filter((v) => v.labels.outcome === "ok").reduce((a, v) => a + v.value, 0)).toBeGreaterThan(0);
    expect(ml.filter((v) => v.labels.outcome === "dlq" && v.value > 0).map((v) => [v.labels.topology, v.value])).toEqual([]);
  });
});
