import path from "node:path";
import amqp from "amqplib";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import type { Producer, RecordMetadata } from "kafkajs";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { clusterTag } from "../../lib/connectors/kafka/cluster.ts";
import { FeatureClient } from "../../lib/features/client.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { avroEncoder, collect, startFleet } from "../support/fleet.ts";
import { complaint, complaintMessages, RESIDENT_TOPICS as TOPICS, recordIds, ROOT, runIds, until } from "../support/examples.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";

/**
 * The resident management system end to end: the real topologies/resident files in one
 * fleet, Avro events produced with the real schemas, each sink's effect observed where a
 * user would look. Topic and group names are the topologies' own, so every test uses
 * entity ids unique to this run.
 */
const { uid } = runIds();

const scope = new TestScope("resident");
let fleet: Fleet | undefined;
let cluster: string;
let producer: Producer;
let redis: Redis;
let encode: Record<"complaint" | "user" | "notification", (v: unknown) => Buffer>;
const createdJobs: string[] = [];

async function sendComplaints(events: Record<string, unknown>[], timestamp?: number): Promise<RecordMetadata[]> {
  return producer.send({
    topic: TOPICS.complaints,
    messages: complaintMessages(events, encode.complaint, timestamp),
  });
}

beforeAll(async () => {
  cluster = await clusterTag(scope.kafka());
  redis = new Redis(stack().REDIS_URL);
  const admin = scope.kafka().admin();
  await admin.connect();
  await createTopicsReady(admin, Object.values(TOPICS), 3);
  await admin.disconnect();
  fleet = await startFleet(path.join(ROOT, "topologies/resident"));
  encode = {
    complaint: await avroEncoder(TOPICS.complaints, path.join(ROOT, "schemas/resident/complaint-event.avsc")),
    user: await avroEncoder(TOPICS.users, path.join(ROOT, "schemas/resident/user-event.avsc")),
    notification: await avroEncoder(TOPICS.notifications, path.join(ROOT, "schemas/resident/notification-event.avsc")),
  };
  producer = scope.producer();
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await fleet?.stop(10_000);
  if (createdJobs.length) {
    const queue = new Queue("notifications", { connection: new Redis(stack().REDIS_URL, { maxRetriesPerRequest: null }) });
    for (const id of createdJobs) await (await queue.getJob(id))?.remove().catch(() => {});
    await queue.close();
  }
  redis?.disconnect();
  await scope.cleanup();
});

describeStack("resident management topologies (topologies/resident)", () => {
  it("caches a complaint for 15 minutes and removes it on delete", async () => {
    const c = { id: uid("c"), userId: uid("u"), building: uid("b") };
    await sendComplaints([complaint("complaint.created", c)]);
    const cached = await until(() => redis.get(`complaint:${c.id}`), (v) => v !== null);
    expect(JSON.parse(cached!)).toMatchObject({ id: c.id, userId: c.userId, status: "PENDING", priority: "MEDIUM", category: "PLUMBING" });
    const ttl = await redis.ttl(`complaint:${c.id}`);
    expect(ttl).toBeGreaterThan(850);
    expect(ttl).toBeLessThanOrEqual(900);

    await sendComplaints([complaint("complaint.updated", { ...c, status: "IN_PROGRESS" })]);
    await until(() => redis.get(`complaint:${c.id}`), (v) => v !== null && (JSON.parse(v) as { status: string }).status === "IN_PROGRESS");
    await sendComplaints([complaint("complaint.deleted", { ...c, status: "IN_PROGRESS" })]);
    expect(await until(() => redis.exists(`complaint:${c.id}`), (n) => n === 0)).toBe(0);
  });

  it("caches a user for 30 minutes, updates it, and removes it on user.deleted", async () => {
    const id = uid("u");
    const send = (type: string, email: string) => producer.send({ topic: TOPICS.users, messages: [{ key: id, value: encode.user({ type, id, email, role: "RESIDENT" }) }] });
    await send("user.created", `${id}@residents.example`);
    const cached = await until(() => redis.get(`user:${id}`), (v) => v !== null);
    expect(JSON.parse(cached!)).toEqual({ id, email: `${id}@residents.example`, role: "RESIDENT" });
    const ttl = await redis.ttl(`user:${id}`);
    expect(ttl).toBeGreaterThan(1750);
    expect(ttl).toBeLessThanOrEqual(1800);

    await send("user.updated", `new.${id}@residents.example`);
    const updated = await until(() => redis.get(`user:${id}`), (v) => v !== null && v.includes("new."));
    expect(JSON.parse(updated!)).toMatchObject({ email: `new.${id}@residents.example` });
    await send("user.deleted", `new.${id}@residents.example`);
    expect(await until(() => redis.exists(`user:${id}`), (n) => n === 0)).toBe(0);
  });

  it("keeps open complaints per resident and building, by priority and in the last 24 h, through create, update, resolve and delete", async () => {
    const userId = uid("u");
    const building = uid("b");
    const a = { id: uid("ca"), userId, building, priority: "HIGH" };
    const b = { id: uid("cb"), userId, building, priority: "LOW" };
    const c = { id: uid("cc"), userId, building, priority: "MEDIUM" };
    // One send per complaint, all at once: one complaint's events usually share a batch,
    // so the counters must follow transitions inside a batch, not only across batches.
    await Promise.all([
      sendComplaints([
        complaint("complaint.created", a),
        complaint("complaint.updated", { ...a, priority: "URGENT" }), // still open: the count moves to URGENT
        complaint("complaint.updated", { ...a, priority: "URGENT", status: "RESOLVED" }), // open -> resolved: -1
        complaint("complaint.deleted", { ...a, priority: "URGENT", status: "RESOLVED" }), // already closed: 0
      ]),
      sendComplaints([complaint("complaint.created", b), complaint("complaint.deleted", b)]), // deleted while open: -1
      sendComplaints([complaint("complaint.created", c), complaint("complaint.updated", { ...c, status: "IN_PROGRESS" })]), // still open: 0
    ]);

    // Every event has been through the topology once the state of each complaint holds it.
    const lastStatus = async (id: string) => {
      const s = await redis.get(`resident:complaint-state:${id}`);
      const h = s ? (JSON.parse(s) as { state: { history: { deleted: boolean; status: string }[] } }).state.history : [];
      return h.length ? `${h.at(-1)!.status}${h.at(-1)!.deleted ? "/deleted" : ""}` : "";
    };
    await until(() => Promise.all([a.id, b.id, c.id].map(lastStatus)), (s) => s.join() === ["RESOLVED/deleted", "PENDING/deleted", "IN_PROGRESS"].join());

    const features = new FeatureClient({ redis });
    const expected = { open_complaints: 1, open_low: 0, open_medium: 1, open_high: 0, open_urgent: 0, complaints_24h: 3 };
    const read = async (view: string, id: string) => {
      const [row] = await features.getFeatures(view, [id], Object.keys(expected));
      return Object.fromEntries(Object.entries(row?.features ?? {}).map(([k, f]) => [k, f.value]));
    };
    const same = (v: Record<string, unknown>) => Object.entries(expected).every(([k, n]) => v[k] === n);
    expect(await until(() => read("resident_complaints", userId), same)).toEqual(expected);
    expect(await until(() => read("building_complaints", building), same)).toEqual(expected);
    expect(await redis.exists(`complaint:${a.id}`, `complaint:${b.id}`)).toBe(0);
  });

  it("counts a complaint open from its creation until it is resolved, and a delete of an open one closes it, event by event", async () => {
    const userId = uid("u");
    const building = uid("b");
    const a = { id: uid("ca"), userId, building, priority: "URGENT" };
    const b = { id: uid("cb"), userId, building, priority: "LOW" };
    const features = new FeatureClient({ redis });
    const read = async () => {
      const [row] = await features.getFeatures("resident_complaints", [userId], ["open_complaints", "open_urgent", "open_low", "complaints_24h"]);
      // A counter no event has moved yet reads null: 0 for this purpose.
      return Object.fromEntries(Object.entries(row?.features ?? {}).map(([k, f]) => [k, f.value ?? 0]));
    };
    // Each step waits for the previous one: the previous state comes from Redis, not from the same batch.
    const steps: [Record<string, unknown>, Record<string, number>][] = [
      [complaint("complaint.created", a), { open_complaints: 1, open_urgent: 1, open_low: 0, complaints_24h: 1 }],
      [complaint("complaint.created", b), { open_complaints: 2, open_urgent: 1, open_low: 1, complaints_24h: 2 }],
      [complaint("complaint.updated", { ...a, status: "RESOLVED" }), { open_complaints: 1, open_urgent: 0, open_low: 1, complaints_24h: 2 }],
      [complaint("complaint.deleted", { ...b }), { open_complaints: 0, open_urgent: 0, open_low: 0, complaints_24h: 2 }],
    ];
    for (const [event, expected] of steps) {
      await sendComplaints([event]);
      expect(await until(read, (v) => Object.entries(expected).every(([k, n]) => v[k] === n))).toMatchObject(expected);
    }
  });

  it("enqueues a BullMQ notification job when a complaint is created or its status changes", async () => {
    const c = { id: uid("c"), userId: uid("u"), building: uid("b") };
    const meta = await sendComplaints([
      complaint("complaint.created", c),
      complaint("complaint.updated", { ...c, status: "IN_PROGRESS" }),
      complaint("complaint.updated", { ...c, status: "IN_PROGRESS", priority: "HIGH" }), // no status change: no job
      complaint("complaint.updated", { ...c, status: "RESOLVED", priority: "HIGH" }),
    ]);
    const ids = recordIds(meta, 4, cluster);
    createdJobs.push(...ids);
    const queue = new Queue("notifications", { connection: new Redis(stack().REDIS_URL, { maxRetriesPerRequest: null }) });
    try {
      const last = await until(() => queue.getJob(ids[3]!), (j) => j !== undefined);
      expect(last?.name).toBe("complaint.status_changed");
      expect(last?.data).toMatchObject({ complaintId: c.id, userId: c.userId, status: "RESOLVED", previousStatus: "IN_PROGRESS", kind: "complaint.status_changed" });
      const created = await queue.getJob(ids[0]!);
      expect(created?.name).toBe("complaint.created");
      expect(created?.data).toMatchObject({ id: ids[0], complaintId: c.id, userId: c.userId, building: c.building, status: "PENDING", previousStatus: null });
      expect((await queue.getJob(ids[1]!))?.data).toMatchObject({ status: "IN_PROGRESS", previousStatus: "PENDING" });
      expect(await queue.getJob(ids[2]!)).toBeUndefined();
    } finally {
      await queue.close();
    }
  });

  it("publishes the same notification on the Redis channel notifications", async () => {
    const c = { id: uid("c"), userId: uid("u"), building: uid("b") };
    const sub = new Redis(stack().REDIS_URL);
    const seen: Record<string, unknown>[] = [];
    sub.on("message", (_channel: string, text: string) => {
      const m = JSON.parse(text) as Record<string, unknown>;
      if (m.complaintId === c.id) seen.push(m);
    });
    try {
      await sub.subscribe("notifications");
      const meta = await sendComplaints([complaint("complaint.created", c), complaint("complaint.updated", { ...c, status: "RESOLVED" })]);
      const ids = recordIds(meta, 2, cluster);
      createdJobs.push(...ids);
      await until(async () => seen.length, (n) => n >= 2);
      expect(seen).toEqual([
        expect.objectContaining({ id: ids[0], kind: "complaint.created", userId: c.userId, status: "PENDING" }),
        expect.objectContaining({ id: ids[1], kind: "complaint.status_changed", userId: c.userId, status: "RESOLVED", previousStatus: "PENDING" }),
      ]);
    } finally {
      sub.disconnect();
    }
  });

  it("delivers notification.created events to RabbitMQ (exchange and queue resident.notifications)", async () => {
    const conn = await amqp.connect(stack().AMQP_URL);
    try {
      const ch = await conn.createChannel();
      // The topology declared the queue; a private queue bound the same way watches the exchange.
      expect((await ch.checkQueue("resident.notifications")).queue).toBe("resident.notifications");
      const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
      await ch.bindQueue(queue, "resident.notifications", "notification.#");
      const id = uid("n");
      const got: amqp.ConsumeMessage[] = [];
      await ch.consume(queue, (m) => {
        if (m && (JSON.parse(m.content.toString()) as { id: string }).id === id) got.push(m);
      }, { noAck: true });
      const notification = { type: "notification.created", id, userId: uid("u"), kind: "ANNOUNCEMENT", title: "Building meeting", message: "Thursday 7pm, lobby", complaintId: null, createdAt: new Date().toISOString() };
      const [meta] = await producer.send({ topic: TOPICS.notifications, messages: [{ key: id, value: encode.notification(notification) }] });
      await until(async () => got.length, (n) => n > 0);
      expect(got).toHaveLength(1);
      expect(JSON.parse(got[0]!.content.toString())).toEqual(notification);
      expect(got[0]!.fields.routingKey).toBe("notification.ANNOUNCEMENT");
      expect(got[0]!.properties.messageId).toBe(`${TOPICS.notifications}/${meta!.partition}/${meta!.baseOffset}@${cluster}`);
      expect(got[0]!.properties.deliveryMode).toBe(2);
      expect(got[0]!.properties.type).toBe("notification.created");
    } finally {
      await conn.close();
    }
  });

  it("writes every complaint event as a row of resident.complaint_events in PostgreSQL", async () => {
    const c = { id: uid("c"), userId: uid("u"), building: uid("b") };
    const meta = await sendComplaints([
      complaint("complaint.created", c),
      complaint("complaint.updated", { ...c, status: "RESOLVED" }),
      complaint("complaint.deleted", { ...c, status: "RESOLVED" }),
    ]);
    const client = new pg.Client({ connectionString: stack().DATABASE_URL });
    await client.connect();
    try {
      const rows = await until(
        async () => {
          const exists = await client.query(`SELECT to_regclass('resident.complaint_events') AS t`);
          if (!exists.rows[0].t) return [];
          return (await client.query(`SELECT record_id, event_type, complaint_id, status, user_id, building, created_at FROM resident.complaint_events WHERE complaint_id = $1`, [c.id])).rows;
        },
        (r) => r.length >= 3,
      );
      // In the order the events were produced (record ids hold the offset; their text order is not offset order).
      const ids = recordIds(meta, 3, cluster);
      rows.sort((a, b) => ids.indexOf(a.record_id) - ids.indexOf(b.record_id));
      expect(rows.map((r) => [r.event_type, r.status])).toEqual([
        ["complaint.created", "PENDING"],
        ["complaint.updated", "RESOLVED"],
        ["complaint.deleted", "RESOLVED"],
      ]);
      expect(rows.map((r) => r.record_id).sort()).toEqual(recordIds(meta, 3, cluster).sort());
      expect(rows[0]).toMatchObject({ user_id: c.userId, building: c.building });
      expect(rows[0].created_at).toBeInstanceOf(Date);
    } finally {
      await client.end();
    }
  });

  it("routes the 101st complaint creation of one resident within a minute to resident.complaints-throttled", { timeout: 120_000 }, async () => {
    const userId = uid("u");
    const building = uid("b");
    // One Kafka timestamp for all: the quota windows follow it, so no minute boundary splits them.
    const at = Date.now();
    const first = Array.from({ length: 100 }, (_, i) => complaint("complaint.created", { id: `${uid("c")}-${i}`, userId, building }));
    await sendComplaints(first, at);
    const features = new FeatureClient({ redis });
    const open = async () => (await features.getFeatures("resident_complaints", [userId], ["open_complaints"]))[0]?.features.open_complaints?.value;
    expect(await until(open, (v) => v === 100, 90_000)).toBe(100);

    const extra = complaint("complaint.created", { id: uid("c101"), userId, building });
    await sendComplaints([extra], at);
    const got = await collect(scope.kafka(), TOPICS.throttled, 1, 60_000, (all) => all.some((m) => m.key === extra.id));
    const codecs = new SchemaCodecs(stack().SCHEMA_REGISTRY_URL);
    const mine = got.filter((m) => m.key === extra.id || first.some((f) => f.id === m.key));
    expect(mine.map((m) => m.key)).toEqual([extra.id]);
    await codecs.prepare([mine[0]!.value]);
    expect(codecs.decode(mine[0]!.value!)).toEqual(extra);
    // The throttled creation is not counted, cached or notified.
    expect(await open()).toBe(100);
    expect(await redis.exists(`complaint:${extra.id}`)).toBe(0);
  });
});
