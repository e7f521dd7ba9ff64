import crypto from "node:crypto";
import path from "node:path";
import type { Consumer, Kafka, Producer, RecordMetadata } from "kafkajs";
import { readAvsc } from "../../lib/codecs/avro.ts";
import type { SchemaCodecs } from "../../lib/codecs/registry.ts";

/*
 * What the end-to-end tests of the example topologies (topologies/resident, topologies/ml)
 * share, on the open stack (test/e2e) and on the secured one (test/security): their topics and
 * groups are the topologies' own, so each run tells its entities apart by id.
 */

export const ROOT = path.resolve(import.meta.dirname, "../..");

/** Entity ids unique to this run: `uid("c")` gives c-<run>-<random>. */
export function runIds(): { run: string; uid: (label: string) => string } {
  const run = crypto.randomBytes(4).toString("hex");
  return { run, uid: (label) => `${label}-${run}-${crypto.randomBytes(3).toString("hex")}` };
}

/**
 * Reads `read` every 250 ms until `ok` holds. Past `timeoutMs` it returns the last value read
 * (for the caller's expect to show it) or, given `what`, throws naming it and that value.
 */
export async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs?: number): Promise<T>;
export async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs?: number): Promise<T>;
export async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, whatOrTimeout?: string | number, timeoutMs = 45_000): Promise<T> {
  const what = typeof whatOrTimeout === "string" ? whatOrTimeout : undefined;
  const limit = typeof whatOrTimeout === "number" ? whatOrTimeout : timeoutMs;
  const end = Date.now() + limit;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) {
      if (what === undefined) return v;
      throw new Error(`timed out after ${limit} ms waiting for ${what}; last: ${JSON.stringify(v)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The resident example's topics (topologies/resident). */
export const RESIDENT_TOPICS = {
  complaints: "resident.complaint-events",
  users: "resident.user-events",
  notifications: "resident.notification-events",
  throttled: "resident.complaints-throttled",
};

export interface Complaint {
  id: string;
  userId: string;
  building: string;
  priority?: string;
  status?: string;
  title?: string;
  category?: string;
}

/** A complaint event of the resident example (schemas/resident/complaint-event.avsc). */
export function complaint(type: string, c: Complaint): Record<string, unknown> {
  const now = new Date().toISOString();
  return {
    type,
    id: c.id,
    title: c.title ?? "Water leak under sink",
    description: "Drips all night",
    category: c.category ?? "PLUMBING",
    priority: c.priority ?? "MEDIUM",
    status: c.status ?? "PENDING",
    userId: c.userId,
    apartment: `${c.building}101`,
    building: c.building,
    createdAt: now,
    updatedAt: now,
  };
}

/** Complaint events as messages keyed by complaint id (`timestamp`: one Kafka timestamp for all). */
export function complaintMessages(events: Record<string, unknown>[], encode: (v: unknown) => Buffer, timestamp?: number) {
  return events.map((value) => ({ key: String(value.id), value: encode(value), ...(timestamp ? { timestamp: String(timestamp) } : {}) }));
}

/** The record ids (topic/partition/offset@cluster) of events sent in one call, all with the same key. */
export function recordIds(meta: RecordMetadata[], count: number, cluster: string): string[] {
  const m = meta[0]!;
  return Array.from({ length: count }, (_, i) => `${m.topicName}/${m.partition}/${Number(m.baseOffset) + i}@${cluster}`);
}

export type AvroEvent = { key: string; value: Record<string, unknown> };

/**
 * Produces Avro values with `producer`, each topic's encoded with its real schema (a file of
 * `schemasDir`, registered under <topic>-value through `codecs` on first use).
 */
export function avroProducer(producer: () => Producer, codecs: () => SchemaCodecs, schemasDir: string): (topic: string, schema: string, events: AvroEvent[]) => Promise<void> {
  const encoders = new Map<string, (v: unknown) => Buffer>();
  return async (topic, schema, events) => {
    let encode = encoders.get(topic);
    if (!encode) {
      const { text, type } = readAvsc(path.join(schemasDir, schema), ROOT);
      const c = codecs();
      encode = c.encoder(await c.register(`${topic}-value`, text), type);
      encoders.set(topic, encode);
    }
    await producer().send({ topic, messages: events.map((e) => ({ key: e.key, value: encode(e.value) })) });
  };
}

/**
 * Tails of topics: `tail(topic)` gives the decoded Avro records that arrive on `topic` after
 * the call (read by `kafka` in group `group(topic)`); `close` stops every tail.
 */
export function topicTails(kafka: () => Kafka, codecs: () => SchemaCodecs, group: (topic: string) => string) {
  const consumers: Consumer[] = [];
  async function tail(topic: string): Promise<Array<{ key: string | null; value: Record<string, unknown> }>> {
    const k = kafka();
    const admin = k.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topic);
    await admin.disconnect();
    const decoder = codecs();
    const seen: Array<{ key: string | null; value: Record<string, unknown> }> = [];
    const consumer = k.consumer({ groupId: group(topic) });
    consumers.push(consumer);
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: false });
    const start = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        if (BigInt(message.offset) < (start.get(partition) ?? 0n) || !message.value) return;
        await decoder.prepare([message.value]);
        seen.push({ key: message.key?.toString() ?? null, value: decoder.decode(message.value) as Record<string, unknown> });
      },
    });
    for (const e of ends) consumer.seek({ topic, partition: e.partition, offset: e.high });
    return seen;
  }
  return { tail, close: () => Promise.all(consumers.map((c) => c.disconnect().catch(() => {}))) };
}
