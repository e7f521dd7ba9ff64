import type { Kafka } from "kafkajs";
import type { Logger } from "pino";
import type { ReplayResult } from "../../runtime/contracts.ts";
import { DLQ_HEADERS } from "./dead-letters.ts";
import type { KafkaWriter } from "./writer.ts";

/**
 * Sends dead letters back to their source topic (original key, value and headers, plus
 * sf-replayed-from), reading the DLQ with its own committed group so a replay interrupted
 * halfway resumes where it stopped. Stops at the high watermarks seen when it began.
 */
export async function replayDeadLetters(kafka: Kafka, writer: KafkaWriter, dlqTopic: string, group: string, logger: Logger, dryRun = false): Promise<ReplayResult> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(dlqTopic);
  const committed = await admin.fetchOffsets({ groupId: group, topics: [dlqTopic] });
  await admin.disconnect();
  const target = new Map(ends.map((e) => [e.partition, Number(e.high)]));
  const start = new Map(committed[0]?.partitions.map((p) => [p.partition, Number(p.offset) < 0 ? Number(ends.find((e) => e.partition === p.partition)?.low ?? 0) : Number(p.offset)]) ?? []);
  const pending = new Set([...target].filter(([p, high]) => (start.get(p) ?? 0) < high).map(([p]) => p));
  const result: ReplayResult = { replayed: 0, byTopic: {} };
  if (pending.size === 0) return result;

  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  await consumer.subscribe({ topics: [dlqTopic], fromBeginning: true });
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  await consumer.run({
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, uncommittedOffsets }) => {
      const high = target.get(batch.partition) ?? 0;
      const messages = batch.messages.filter((m) => Number(m.offset) < high);
      const byTopic = new Map<string, { key: Buffer | null; value: Buffer | null; headers: Record<string, string> }[]>();
      for (const m of messages) {
        const headers: Record<string, string> = {};
        let source = "";
        for (const [k, v] of Object.entries(m.headers ?? {})) {
          const s = Buffer.isBuffer(v) ? v.toString() : String(v);
          if (k === DLQ_HEADERS.topic) source = s;
          if (!k.startsWith("sf-")) headers[k] = s;
        }
        if (!source) continue;
        headers["sf-replayed-from"] = `${dlqTopic}/${batch.partition}/${m.offset}`;
        const list = byTopic.get(source) ?? [];
        list.push({ key: m.key, value: m.value, headers });
        byTopic.set(source, list);
      }
      for (const [topic, list] of byTopic) {
        if (!dryRun) await writer.send(topic, list);
        result.byTopic[topic] = (result.byTopic[topic] ?? 0) + list.length;
        result.replayed += list.length;
      }
      for (const m of messages) resolveOffset(m.offset);
      if (!dryRun) await commitOffsetsIfNecessary(uncommittedOffsets());
      const last = messages[messages.length - 1];
      if (last && Number(last.offset) + 1 >= high) pending.delete(batch.partition);
      if (pending.size === 0) finish();
    },
  });
  await done;
  await consumer.disconnect();
  logger.info({ dlqTopic, ...result }, "dead letters replayed");
  return result;
}
