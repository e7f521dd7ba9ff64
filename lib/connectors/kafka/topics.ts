import type { Admin } from "kafkajs";

/**
 * Creates the topics that are missing and waits until the broker's metadata shows every
 * partition with a leader. kafkajs's own `waitForLeaders` fails on a fresh KRaft broker while
 * another client creates topics at the same time ("does not host this topic-partition");
 * and a consumer that joins before the metadata shows the partitions gets none of them.
 */
export async function createTopicsReady(admin: Admin, topics: string[], partitions: number, timeoutMs = 30_000): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t));
  if (missing.length) {
    try {
      await admin.createTopics({ topics: missing.map((topic) => ({ topic, numPartitions: partitions })), waitForLeaders: false });
    } catch (err) {
      // Created meanwhile by another client: fine, the wait below decides.
      if (!/already exists/i.test((err as Error).message)) throw err;
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics });
      if (meta.length === topics.length && meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`topics ${topics.join(", ")} have no leaders after ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
