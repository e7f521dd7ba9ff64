import { randomUUID } from "node:crypto";
import type { Connections } from "../runtime/connections.ts";

/**
 * The scratch key space of one test case: Redis-backed steps run against the real Redis
 * with this prefix before their own `key_prefix`, so a case sees only what it seeded and
 * leaves nothing behind (every key under the prefix is deleted when the case ends).
 */
export interface Scratch {
  readonly prefix: string;
  /** SETs each key (under the prefix) to its value as JSON, as a `redis.cache` sink would have. */
  seed(entries: Record<string, unknown>): Promise<void>;
  /** Deletes every key under the prefix and disconnects. */
  close(): Promise<void>;
}

export async function openScratch(connections: Connections): Promise<Scratch> {
  // The Redis client of the connector, loaded only when a case needs Redis.
  const { createRedis } = await import("../connectors/redis/client.ts");
  const redis = createRedis(connections, "default", { maxRetriesPerRequest: 0 });
  await redis.connect();
  const prefix = `sf-test:${randomUUID().slice(0, 8)}:`;
  return {
    prefix,
    async seed(entries) {
      const p = redis.pipeline();
      for (const [k, v] of Object.entries(entries)) p.set(prefix + k, JSON.stringify(v));
      await p.exec();
    },
    async close() {
      try {
        let cursor = "0";
        do {
          const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
          if (found.length) await redis.del(...found);
          cursor = next;
        } while (cursor !== "0");
      } finally {
        redis.disconnect();
      }
    },
  };
}
