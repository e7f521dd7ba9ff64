import path from "node:path";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Kafka, Producer, RecordMetadata } from "kafkajs";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { createKafka } from "../../lib/connectors/kafka/client.ts";
import { clusterTag } from "../../lib/connectors/kafka/cluster.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { pgTarget } from "../../lib/connectors/postgres/connection.ts";
import { amqpTarget, connectAmqp } from "../../lib/connectors/rabbitmq/connection.ts";
import { createRedis } from "../../lib/connectors/redis/client.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { collect } from "../support/fleet.ts";
import { complaint, complaintMessages, RESIDENT_TOPICS as TOPICS, recordIds, ROOT, runIds, until } from "../support/examples.ts";
import { adminKafka, adminRedis, connections, describeSecure, secureEnv, silent } from "./support.ts";

/**
 * The resident example (topologies/resident, unchanged) on the secured stack: the worker
 * connects as its own principals — Kafka SASL_SSL SCRAM as kafka-worker under its ACLs, the
 * registry over HTTPS, Redis over TLS as the ACL user redis-worker (BullMQ included), RabbitMQ
 * over amqps as rabbit-worker on vhost streamfleet, PostgreSQL with scram-sha-256 and
 * verify-full as sf_pg_worker. The test's own clients are authenticated and encrypted too:
 * nothing here talks to a server in the clear. Each sink's effect is observed where a user
 * would look, as test/e2e/resident-management.test.ts does on the open stack.
 */
const { uid } = runIds();

let fleet: Fleet | undefined;
let cluster: string;
let producer: Producer;
let worker: Kafka;
let redis: Redis;
let encode: Record<"complaint" | "user" | "notification", (v: unknown) => Buffer>;
const createdJobs: string[] = [];
const createdKeys: string[] = [];

async function sendComplaints(events: Record<string, unknown>[], timestamp?: number): Promise<RecordMetadata[]> {
  for (const e of events) createdKeys.push(`complaint:${String(e.id)}`, `resident:complaint-state:${String(e.id)}`);
  return producer.send({
    topic: TOPICS.complaints,
    messages: complaintMessages(events, encode.complaint, timestamp),
  });
}

/** The worker's queue `notifications`, over TLS as redis-worker (BullMQ's own connection). */
function notificationsQueue(): Queue {
  return new Queue("notifications", { connection: createRedis(connections(), "default", { maxRetriesPerRequest: null }) });
}

beforeAll(async () => {
  if (!secureEnv().KAFKA_BROKERS) return;
  const admin = adminKafka().admin();
  await admin.connect();
  await createTopicsReady(admin, Object.values(TOPICS), 3);
  await admin.disconnect();
  // The producer is the worker's principal: the ACLs let it write the resident.* topics.
  worker = createKafka(connections(), "default", silent, "security-resident-test");
  cluster = await clusterTag(worker);
  const codecs = SchemaCodecs.fromConnections(connections());
  const encoder = async (topic: string, file: string) => {
    const { text, type } = readAvsc(path.join(ROOT, file), ROOT);
    return codecs.encoder(await codecs.register(`${topic}-value`, text), type);
  };
  encode = {
    complaint: await encoder(TOPICS.complaints, "schemas/resident/complaint-event.avsc"),
    user: await encoder(TOPICS.users, "schemas/resident/user-event.avsc"),
    notification: await encoder(TOPICS.notifications, "schemas/resident/notification-event.avsc"),
  };
  redis = createRedis(connections());
  await redis.connect();
  fleet = await Fleet.load([path.join(ROOT, "topologies/resident")], { env: secureEnv(), logger: silent });
  await fleet.start();
  producer = worker.producer();
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await fleet?.stop(10_000);
  if (!secureEnv().KAFKA_BROKERS) return;
  if (createdJobs.length) {
    const queue = notificationsQueue();
    for (const id of createdJobs) await (await queue.getJob(id))?.remove().catch(() => {});
    await queue.close();
  }
  redis?.disconnect();
  const admin = adminRedis();
  if (createdKeys.length) await admin.del(...createdKeys).catch(() => {});
  admin.disconnect();
});

describeSecure("the resident example end to end on the secured stack (every connection authenticated and encrypted)", () => {
  it("caches a complaint and a user in Redis over TLS as the ACL user, and removes them on delete", async () => {
    const c = { id: uid("c"), userId: uid("u"), building: uid("b") };
    await sendComplaints([complaint("complaint.created", c)]);
    const cached = await until(() => redis.get(`complaint:${c.id}`), (v) => v !== null);
    expect(JSON.parse(cached!)).toMatchObject({ id: c.id, userId: c.userId, status: "PENDING" });
    expect(await redis.ttl(`complaint:${c.id}`)).toBeGreaterThan(850);
    await sendComplaints([complaint("complaint.deleted", c)]);
    expect(await until(() => redis.exists(`complaint:${c.id}`), (n) => n === 0)).toBe(0);

    const id = uid("u");
    createdKeys.push(`user:${id}`);
    const send = (type: string) => producer.send({ topic: TOPICS.users, messages: [{ key: id, value: encode.user({ type, id, email: `${id}@residents.example`, role: "RESIDENT" }) }] });
    await send("user.created");
    expect(JSON.parse((await until(() => redis.get(`user:${id}`), (v) => v !== null))!)).toEqual({ id, email: `${id}@residents.example`, role: "RESIDENT" });
    await send("user.deleted");
    expect(await until(() => redis.exists(`user:${id}`), (n) => n === 0)).toBe(0);
  });

  it("keeps the open-complaint features per resident and building through create, update, resolve and delete", async () => {
    const userId = uid("u");
    const building = uid("b");
    const a = { id: uid("ca"), userId, building, priority: "HIGH" };
    const b = { id: uid("cb"), userId, building, priority: "LOW" };
    await sendComplaints([complaint("complaint.created", a), complaint("complaint.updated", { ...a, status: "RESOLVED" })]);
    await sendComplaints([complaint("complaint.created", b)]);
    const features = new FeatureClient({ redis });
    const expected = { open_complaints: 1, open_low: 1, open_high: 0, complaints_24h: 2 };
    const read = async (view: string, id: string) => {
      const [row] = await features.getFeatures(view, [id], Object.keys(expected));
      return Object.fromEntries(Object.entries(row?.features ?? {}).map(([k, f]) => [k, f.value ?? 0]));
    };
    const same = (v: Record<string, unknown>) => Object.entries(expected).every(([k, n]) => v[k] === n);
    expect(await until(() => read("resident_complaints", userId), same)).toEqual(expected);
    expect(await until(() => read("building_complaints", building), same)).toEqual(expected);
  });

  it("enqueues the BullMQ notification job and publishes it on the channel, both through the TLS Redis", async () => {
    const c = { id: uid("c"), userId: uid("u"), building: uid("b") };
    const sub = createRedis(connections());
    const seen: Record<string, unknown>[] = [];
    sub.on("message", (_channel: string, text: string) => {
      const m = JSON.parse(text) as Record<string, unknown>;
      if (m.complaintId === c.id) seen.push(m);
    });
    const queue = notificationsQueue();
    try {
      await sub.subscribe("notifications");
      const meta = await sendComplaints([complaint("complaint.created", c), complaint("complaint.updated", { ...c, status: "RESOLVED" })]);
      const ids = recordIds(meta, 2, cluster);
      createdJobs.push(...ids);
      const last = await until(() => queue.getJob(ids[1]!), (j) => j !== undefined);
      expect(last?.name).toBe("complaint.status_changed");
      expect(last?.data).toMatchObject({ complaintId: c.id, status: "RESOLVED", previousStatus: "PENDING" });
      await until(async () => seen.length, (n) => n >= 2);
      expect(seen.map((m) => m.kind)).toEqual(["complaint.created", "complaint.status_changed"]);
    } finally {
      sub.disconnect();
      await queue.close();
    }
  });

  it("delivers notification.created events to RabbitMQ over amqps on the worker's vhost", async () => {
    const conn = await connectAmqp(amqpTarget(connections(), "default"), "security-resident-test");
    try {
      const ch = await conn.createChannel();
      expect((await ch.checkQueue("resident.notifications")).queue).toBe("resident.notifications");
      const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
      await ch.bindQueue(queue, "resident.notifications", "notification.#");
      const id = uid("n");
      const got: string[] = [];
      await ch.consume(queue, (m) => {
        if (m && (JSON.parse(m.content.toString()) as { id: string }).id === id) got.push(m.fields.routingKey);
      }, { noAck: true });
      const notification = { type: "notification.created", id, userId: uid("u"), kind: "ANNOUNCEMENT", title: "Building meeting", message: "Thursday 7pm, lobby", complaintId: null, createdAt: new Date().toISOString() };
      await producer.send({ topic: TOPICS.notifications, messages: [{ key: id, value: encode.notification(notification) }] });
      await until(async () => got.length, (n) => n > 0);
      expect(got).toEqual(["notification.ANNOUNCEMENT"]);
    } finally {
      await conn.close();
    }
  });

  it("writes complaint events as rows in PostgreSQL (scram-sha-256, verify-full), and every worker session there is TLS", async () => {
    const c = { id: uid("c"), userId: uid("u"), building: uid("b") };
    await sendComplaints([complaint("complaint.created", c), complaint("complaint.updated", { ...c, status: "RESOLVED" })]);
    const client = new pg.Client(pgTarget(connections(), "default").config);
    await client.connect();
    try {
      const rows = await until(
        async () => {
          const exists = await client.query(`SELECT to_regclass('resident.complaint_events') AS t`);
          if (!exists.rows[0].t) return [];
          return (await client.query(`SELECT event_type, status FROM resident.complaint_events WHERE complaint_id = $1 ORDER BY recorded_at, event_type`, [c.id])).rows;
        },
        (r) => r.length >= 2,
      );
      expect(rows.map((r) => `${r.event_type}/${r.status}`).sort()).toEqual(["complaint.created/PENDING", "complaint.updated/RESOLVED"]);
      // The server's view: each session of the worker role (the sink's pool, this client) is encrypted.
      const sessions = (await client.query(`SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = current_user`)).rows;
      expect(sessions.length).toBeGreaterThanOrEqual(2);
      expect(sessions.every((s) => s.ssl === true)).toBe(true);
    } finally {
      await client.end();
    }
  });

  it("routes the 101st creation of one resident within a minute to resident.complaints-throttled, Avro through the HTTPS registry", { timeout: 120_000 }, async () => {
    const userId = uid("u");
    const building = uid("b");
    const at = Date.now();
    const first = Array.from({ length: 100 }, (_, i) => complaint("complaint.created", { id: `${uid("c")}-${i}`, userId, building }));
    await sendComplaints(first, at);
    const features = new FeatureClient({ redis });
    const open = async () => (await features.getFeatures("resident_complaints", [userId], ["open_complaints"]))[0]?.features.open_complaints?.value;
    expect(await until(open, (v) => v === 100, 90_000)).toBe(100);
    const extra = complaint("complaint.created", { id: uid("c101"), userId, building });
    await sendComplaints([extra], at);
    // Read back as the admin: the worker's ACLs allow consumer groups streamfleet.* only.
    const got = await collect(adminKafka(), TOPICS.throttled, 1, 60_000, (all) => all.some((m) => m.key === extra.id));
    const mine = got.filter((m) => m.key === extra.id || first.some((f) => f.id === m.key));
    expect(mine.map((m) => m.key)).toEqual([extra.id]);
    const codecs = SchemaCodecs.fromConnections(connections());
    await codecs.prepare([mine[0]!.value]);
    expect(codecs.decode(mine[0]!.value!)).toEqual(extra);
    expect(await open()).toBe(100);
  });
});
