import crypto from "node:crypto";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import type { Producer } from "kafkajs";
import { Redis } from "ioredis";
import amqp from "amqplib";
import pg from "pg";
import { beforeAll, describe, inject } from "vitest";
import type { StackAddresses } from "../../lib/stack/stack.ts";
import type { Tool } from "../../lib/stack/tools.ts";
import { needTools } from "./tools.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";

/** The addresses of the real services for this run. */
export function stack(): StackAddresses {
  return inject("stack");
}

/**
 * `describe` for suites that need the real stack (and, optionally, programs such as
 * Prometheus): where none can run (Docker mode with no engine, no Java) or a tool is missing
 * outside CI, the suite is skipped and its name says why; under CI a missing tool fails it.
 */
export function describeStack(name: string, fn: () => void, tools: readonly Tool[] = []): void {
  const reason = inject("stackSkipReason");
  const gate = needTools(tools);
  if (reason) describe.skip(`${name} (skipped: ${reason})`, fn);
  else if (gate.skip) describe.skip(gate.title(name), fn);
  else
    describe(name, () => {
      beforeAll(() => gate.check());
      fn();
    });
}

/**
 * Unique names for one test file (topics, key prefix, queues, database schema) and the
 * clean-up of everything created under them.
 */
export class TestScope {
  readonly id: string;
  private readonly topics = new Set<string>();
  private readonly queues = new Set<string>();
  private readonly exchanges = new Set<string>();
  private readonly subjects = new Set<string>();
  private schemaCreated = false;

  constructor(label: string) {
    this.id = `${label.replace(/[^a-z0-9]/gi, "").toLowerCase().slice(0, 20)}_${crypto.randomBytes(4).toString("hex")}`;
  }

  topic(name: string): string {
    const t = `t.${this.id}.${name}`;
    this.topics.add(t);
    return t;
  }
  /** A registry subject (`<topic>-value` by default), deleted with everything else. */
  subject(topic: string, side: "key" | "value" = "value"): string {
    const s = `${topic}-${side}`;
    this.subjects.add(s);
    return s;
  }
  get keyPrefix(): string {
    return `test:${this.id}:`;
  }
  queue(name: string): string {
    const q = `q.${this.id}.${name}`;
    this.queues.add(q);
    return q;
  }
  exchange(name: string): string {
    const e = `x.${this.id}.${name}`;
    this.exchanges.add(e);
    return e;
  }
  get pgSchema(): string {
    this.schemaCreated = true;
    return `s_${this.id}`;
  }
  group(name: string): string {
    return `g.${this.id}.${name}`;
  }

  kafka(): Kafka {
    return new Kafka({ clientId: this.id, brokers: stack().KAFKA_BROKERS.split(","), logLevel: logLevel.NOTHING });
  }

  /**
   * An idempotent producer: a send kafkajs retries (a partition not ready yet on a new topic)
   * never writes a record twice, so what tests count is what they sent.
   */
  producer(): Producer {
    return this.kafka().producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  }

  async createTopics(names: string[], partitions = 3): Promise<void> {
    const admin = this.kafka().admin();
    await admin.connect();
    try {
      await createTopicsReady(admin, names, partitions);
    } finally {
      await admin.disconnect();
    }
  }

  async cleanup(): Promise<void> {
    const s = stack();
    if (this.topics.size > 0) {
      const admin = this.kafka().admin();
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const mine = [...this.topics].filter((t) => existing.has(t));
      if (mine.length) await admin.deleteTopics({ topics: mine }).catch(() => {});
      await admin.disconnect();
    }
    for (const subject of this.subjects) {
      // Soft delete, then the permanent delete the registry allows only after it.
      for (const q of ["", "?permanent=true"]) await fetch(`${s.SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(subject)}${q}`, { method: "DELETE" }).then((r) => r.arrayBuffer()).catch(() => {});
    }
    const redis = new Redis(s.REDIS_URL, { lazyConnect: true });
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${this.keyPrefix}*`, "COUNT", 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== "0");
    redis.disconnect();
    if (this.queues.size + this.exchanges.size > 0) {
      const conn = await amqp.connect(s.AMQP_URL);
      const ch = await conn.createChannel();
      for (const q of this.queues) await ch.deleteQueue(q);
      for (const e of this.exchanges) await ch.deleteExchange(e);
      await conn.close();
    }
    if (this.schemaCreated) {
      const client = new pg.Client({ connectionString: s.DATABASE_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "s_${this.id}" CASCADE`);
      await client.end();
    }
  }
}
