import crypto from "node:crypto";
import { Admin } from "@platformatic/kafka";
import type { ClusterMetadata } from "@platformatic/kafka";
import type { Connections } from "../../../runtime/connections.ts";
import { platformaticOptions } from "./options.ts";

/** Runs fn with a short-lived admin client of connection `name`. */
export async function withAdmin<T>(connections: Connections, name: string, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = new Admin(platformaticOptions(connections, name, "streamfleet-admin"));
  try {
    return await fn(admin);
  } finally {
    await admin.close().catch(() => {});
  }
}

/** 8 hex characters of a cluster id (as the kafkajs side computes it). */
export function tagOf(metadata: ClusterMetadata): string {
  return crypto.createHash("sha256").update(metadata.id).digest("hex").slice(0, 8);
}

/**
 * Creates the missing topics and waits until the metadata shows every partition with a leader
 * (a consumer that joins before would get none of them).
 */
export async function createTopicsReady(admin: Admin, topics: string[], partitions: number, timeoutMs = 30_000): Promise<void> {
  const existing = new Set(await admin.listTopics({ includeInternals: false }));
  const missing = topics.filter((t) => !existing.has(t));
  if (missing.length) {
    try {
      await admin.createTopics({ topics: missing, partitions, replicas: -1 });
    } catch (err) {
      // Created meanwhile by another client: the wait below decides.
      if (!/already exists/i.test(describe(err))) throw err;
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const meta = await admin.metadata({ topics, forceUpdate: true });
      if (topics.every((t) => { const m = meta.topics.get(t); return m && m.partitionsCount > 0 && m.partitions.every((p) => p.leader >= 0); })) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`topics ${topics.join(", ")} have no leaders after ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** An error's message with its nested errors' messages (MultipleErrors keeps the broker's reason inside). */
export function describe(err: unknown): string {
  const parts: string[] = [];
  const walk = (e: unknown, depth: number) => {
    if (!e || typeof e !== "object" || depth > 4) return;
    const x = e as { message?: string; errors?: unknown[]; cause?: unknown };
    if (x.message) parts.push(x.message);
    for (const inner of Array.isArray(x.errors) ? x.errors : []) walk(inner, depth + 1);
    walk(x.cause, depth + 1);
  };
  walk(err, 0);
  return parts.join(": ");
}
