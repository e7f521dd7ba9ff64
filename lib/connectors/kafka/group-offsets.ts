import type { Admin } from "kafkajs";
import type { Logger } from "pino";
import type { Connections } from "../../runtime/connections.ts";

/** A consumer group's offsets as a tool outside the fleet moves and watches them (`features rebuild`). */
export interface GroupOffsets {
  /** Each partition's end offset (high watermark) now. */
  ends(topic: string): Promise<Map<number, bigint>>;
  /** Each partition's first offset at or after `timestamp` (ms); a partition with none: its end. */
  startsAt(topic: string, timestamp: number): Promise<Map<number, bigint>>;
  /** Sets `group`'s committed offsets (the group must have no active member). */
  set(group: string, topic: string, offsets: Map<number, bigint>): Promise<void>;
  /** `group`'s committed offsets per "topic/partition" (absent: none). */
  committed(group: string, topics: string[]): Promise<Map<string, bigint>>;
  close(): Promise<void>;
}

/** GroupOffsets over an admin client of connection `name` (kafkajs's admin API). */
export async function openGroupOffsets(connections: Connections, name: string, logger: Logger, clientId = "streamfleet-admin"): Promise<GroupOffsets> {
  const { createKafka } = await import("./client.ts");
  const admin: Admin = createKafka(connections, name, logger, clientId).admin();
  await admin.connect();
  const ends = async (topic: string) => new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
  return {
    ends,
    async startsAt(topic, timestamp) {
      const high = await ends(topic);
      const starts = await admin.fetchTopicOffsetsByTimestamp(topic, timestamp);
      return new Map(starts.map((p) => [p.partition, Number(p.offset) >= 0 ? BigInt(p.offset) : high.get(p.partition)!]));
    },
    async set(group, topic, offsets) {
      await admin.setOffsets({ groupId: group, topic, partitions: [...offsets].map(([partition, offset]) => ({ partition, offset: String(offset) })) });
    },
    async committed(group, topics) {
      const out = new Map<string, bigint>();
      for (const t of await admin.fetchOffsets({ groupId: group, topics })) {
        for (const p of t.partitions) if (Number(p.offset) >= 0) out.set(`${t.topic}/${p.partition}`, BigInt(p.offset));
      }
      return out;
    },
    close: () => admin.disconnect().catch(() => undefined),
  };
}
