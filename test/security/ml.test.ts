import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import type { Redis } from "ioredis";
import type { Producer } from "kafkajs";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { createKafka } from "../../lib/connectors/kafka/client.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { pgTarget } from "../../lib/connectors/postgres/connection.ts";
import { amqpTarget, connectAmqp } from "../../lib/connectors/rabbitmq/connection.ts";
import { createRedis } from "../../lib/connectors/redis/client.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { startFeatureServer } from "../../lib/features/server.ts";
import type { FeatureServer } from "../../lib/features/server.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { startTrainingLoop } from "../../topologies/ml/receivers.ts";
import { featuresHash } from "../../topologies/ml/transforms/prediction.ts";
import { avroProducer, ROOT, runIds, topicTails, until } from "../support/examples.ts";
import { adminKafka, certsDir, connections, describeSecure, secureEnv, silent } from "./support.ts";

/**
 * The ML example (topologies/ml, unchanged) on the secured stack, every connection
 * authenticated and encrypted: predictions with the Redis cache, feature views with their
 * offline log in PostgreSQL read through the feature server over HTTPS and point-in-time,
 * training jobs dispatched to RabbitMQ over amqps, model alerts to RabbitMQ and Kafka, the
 * audit trail in PostgreSQL, and the training receiver (topologies/ml/receivers.ts) taking
 * the job over amqps and reporting model_training_completed through Kafka SASL_SSL and the
 * HTTPS registry.
 */
const { run, uid } = runIds();
const TOPICS = ["ml.prediction-requests", "ml.prediction-responses", "ml.user-events", "ml.product-events", "ml.training-requests", "ml.model-training-completed", "ml.alerts", "ml.audit-log", "ml.metric-events"];

let fleet: Fleet | undefined;
let producer: Producer;
let redis: Redis;
let db: pg.Client;
let offline: pg.Pool;
const codecs = () => SchemaCodecs.fromConnections(connections());
const produce = avroProducer(() => producer, codecs, path.join(ROOT, "schemas/ml"));
/** Decoded records of a topic from its current end on (read as the admin: the worker may join streamfleet.* groups only). */
const tails = topicTails(() => adminKafka(), codecs, (topic) => `security-ml-${run}-${topic}`);
const tail = tails.tail;

beforeAll(async () => {
  if (!secureEnv().KAFKA_BROKERS) return;
  const admin = adminKafka().admin();
  await admin.connect();
  await createTopicsReady(admin, TOPICS, 3);
  await admin.disconnect();
  producer = createKafka(connections(), "default", silent, "security-ml-test").producer();
  await producer.connect();
  redis = createRedis(connections());
  await redis.connect();
  db = new pg.Client(pgTarget(connections(), "default").config);
  await db.connect();
  offline = new pg.Pool({ ...pgTarget(connections(), "default").config, max: 2 });
  fleet = await Fleet.load([path.join(ROOT, "topologies/ml")], { env: secureEnv(), logger: silent });
  await fleet.start();
});

afterAll(async () => {
  await tails.close();
  await fleet?.stop(5000);
  await producer?.disconnect();
  redis?.disconnect();
  await db?.end();
  await offline?.end();
});

describeSecure("the ML example end to end on the secured stack (every connection authenticated and encrypted)", () => {
  it("answers a prediction, caches it in the TLS Redis, and answers the same vector again from the cache", async () => {
    const responses = await tail("ml.prediction-responses");
    const model = uid("model");
    const request = (id: string, f: Record<string, number>) => ({ key: id, value: { request_id: id, model_id: model, features: f, user_id: uid("user"), requested_at: Date.now() } });
    const [first, second] = [uid("req"), uid("req")];
    await produce("ml.prediction-requests", "prediction-request.avsc", [request(first, { age: 34, income: 52.5, tenure: 3 })]);
    const miss = (await until(async () => responses.find((r) => r.value.request_id === first), Boolean, "the first response"))!;
    const hash = featuresHash({ age: 34, income: 52.5, tenure: 3 });
    expect(miss.value).toMatchObject({ model_id: model, features_hash: hash, cached: false });
    await until(() => redis.get(`prediction:${model}:${hash}`), (v) => v !== null, "the cache entry");
    await produce("ml.prediction-requests", "prediction-request.avsc", [request(second, { tenure: 3, income: 52.5, age: 34 })]);
    const hit = (await until(async () => responses.find((r) => r.value.request_id === second), Boolean, "the second response"))!;
    expect(hit.value).toMatchObject({ cached: true, prediction: miss.value.prediction });
    // the audit trail: the request lands in PostgreSQL (ml-audit → ml.audit-log → ml-audit-store)
    const rows = await until(
      async () => (await db.query(`SELECT event_type FROM ml.audit_log WHERE payload->>'request_id' = $1`, [first]).catch(() => ({ rows: [] }))).rows,
      (r) => r.length >= 2,
      "the audit rows of the first request",
      60_000,
    );
    expect(rows.map((r) => r.event_type).sort()).toEqual(["prediction_request", "prediction_response"]);
  });

  it("serves user features through the feature server over HTTPS with its token, and point-in-time from the offline log in PostgreSQL", async () => {
    const user = uid("user");
    const t0 = Date.now() - 60_000;
    await produce("ml.user-events", "user-activity.avsc", [
      { key: user, value: { event_id: uid("ev"), user_id: user, session_length_s: 300, page_views: 12, purchases: 1, purchase_amount: 49.9, device: "mobile", occurred_at: t0 } },
      { key: user, value: { event_id: uid("ev"), user_id: user, session_length_s: 120, page_views: 4, purchases: 0, purchase_amount: 0, device: "desktop", occurred_at: t0 + 1000 } },
    ]);
    const c = connections();
    const token = c.require("FEATURE_SERVER_TOKEN");
    let server: FeatureServer | undefined;
    try {
      server = await startFeatureServer({ redis, token, port: 0, host: "127.0.0.1", tls: { cert: c.file("FEATURE_SERVER_TLS_CERT_FILE")!, key: c.file("FEATURE_SERVER_TLS_KEY_FILE")! } });
      const ca = fs.readFileSync(path.join(certsDir(), "ca.pem"));
      const get = (id: string) =>
        new Promise<{ found: boolean; features: Record<string, { value: unknown }> } | undefined>((resolve, reject) =>
          https
            .get(`${server!.url}/v1/features/user/${encodeURIComponent(id)}`, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
              let body = "";
              res.on("data", (d: Buffer) => (body += d.toString()));
              res.on("end", () => resolve(res.statusCode === 200 ? JSON.parse(body) : undefined));
            })
            .on("error", reject),
        );
      const u = (await until(() => get(user), (b) => b?.features.sessions?.value === 2, "user features over HTTPS"))!;
      expect(u.features.total_session_seconds!.value).toBe(420);
      expect(u.features.last_device!.value).toBe("desktop");
    } finally {
      await server?.close();
    }
    const features = new FeatureClient({ redis, viewsRefreshMs: 0, offline });
    const [asOfFirst] = await features.historical("user", [{ entity: user, t: t0 + 500 }]);
    expect(asOfFirst!.features).toMatchObject({ sessions: 1, total_session_seconds: 300, last_device: "mobile" });
    const { rows } = await db.query("SELECT count(*)::int AS n FROM ml.feature_log WHERE view = 'user' AND entity = $1", [user]);
    expect(rows[0].n).toBe(2);
  });

  it("dispatches a training job to the quorum queue over amqps, and a completed training with low accuracy raises a critical alert to RabbitMQ and Kafka", async () => {
    const alerts = await tail("ml.alerts");
    const conn = await connectAmqp(amqpTarget(connections(), "default"), "security-ml-test");
    try {
      const ch = await conn.createChannel();
      const [model, request] = [uid("model"), uid("train")];
      // a private queue bound as the topology's ml.alerts.all is: this run's alert only
      await ch.assertExchange("ml.alerts", "topic");
      const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
      await ch.bindQueue(queue, "ml.alerts", "alert.#");
      const alertKeys: string[] = [];
      await ch.consume(queue, (m) => {
        if (m?.content.toString().includes(model)) alertKeys.push(m.fields.routingKey);
      }, { noAck: true });
      await produce("ml.training-requests", "training-request.avsc", [
        { key: model, value: { request_id: request, model_id: model, model_type: "classification", dataset: "customer_data", epochs: 5, hyperparameters: { n_estimators: "100" }, requested_by: "security", requested_at: Date.now() } },
      ]);
      // the training receiver takes the job over amqps and reports through Kafka and the registry
      // (a stand-in trainer with a low score, so the completed training raises the alert)
      const trained: string[] = [];
      const loop = await startTrainingLoop({
        env: secureEnv(),
        logger: silent,
        train: async (req) => {
          trained.push(String(req.model));
          return { accuracy: 0.5, loss: 0.9 };
        },
      });
      try {
        await until(async () => trained.includes(model), Boolean, "the training job taken by the receiver");
        const alert = (await until(async () => alerts.find((a) => a.value.model_id === model), Boolean, "the alert on ml.alerts"))!;
        expect(alert.value).toMatchObject({ model_id: model, severity: "critical" });
        await until(async () => alertKeys.length, (n) => n > 0, "the alert on the exchange ml.alerts");
        expect(alertKeys).toEqual(["alert.critical"]);
      } finally {
        await loop.close();
      }
    } finally {
      await conn.close();
    }
  });
});
