import type { IHeaders, Kafka } from "kafkajs";
import type { Logger } from "pino";
import type { ReplayResult } from "../../runtime/contracts.ts";
import { replayGroups, sendReplayGroups } from "./replay-batch.ts";
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
      const letters = messages.map((m) => ({ offset: m.offset, key: m.key, value: m.value, headers: headerText(m.headers) }));
      await sendReplayGroups(writer, replayGroups(dlqTopic, batch.partition, letters), result, dryRun);
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

/** kafkajs's headers (bytes, text or lists of them) as text. */
function headerText(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) if (v !== undefined) out[k] = Buffer.isBuffer(v) ? v.toString() : String(v);
  return out;
}
