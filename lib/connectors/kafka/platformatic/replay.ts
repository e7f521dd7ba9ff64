import type { Logger } from "pino";
import type { TopologyMetrics } from "../../../observability/metrics.ts";
import type { Connections } from "../../../runtime/connections.ts";
import type { ReplayResult } from "../../../runtime/contracts.ts";
import { replayGroups, sendReplayGroups } from "../replay-batch.ts";
import type { KafkaWriter } from "../writer.ts";
import { PlatformaticSource } from "./source.ts";

/** A replay is no topology: its source reports to nothing. */
const NO_METRICS = { rebalanced() {}, setReady() {} } as unknown as TopologyMetrics;

/**
 * DLQ replay on @platformatic/kafka, as the kafkajs side does it: each dead letter goes back to
 * its source topic (original key, value and headers, plus sf-replayed-from), read with the
 * replay's own committed group (an interrupted replay resumes), up to the high watermarks seen
 * when it began.
 */
export async function replayDeadLetters(connections: Connections, name: string, writer: KafkaWriter, dlqTopic: string, group: string, logger: Logger, dryRun = false): Promise<ReplayResult> {
  const source = new PlatformaticSource(connections, { topology: `dlq-replay:${dlqTopic}`, connection: name, topics: [dlqTopic], group, fromBeginning: true, concurrency: 1, sessionTimeoutMs: 30_000 }, logger, NO_METRICS);
  const result: ReplayResult = { replayed: 0, byTopic: {} };
  const ends = await source.ends(dlqTopic);
  const committed = await source.committed(dlqTopic, ends.length);
  const pending = new Set(ends.map((high, p) => [p, high] as const).filter(([p, high]) => (committed[p] ?? 0n) < high).map(([p]) => p));
  if (pending.size === 0) {
    await source.stop();
    return result;
  }
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  await source.run(async (batch) => {
    const high = ends[batch.partition] ?? 0n;
    const messages = batch.messages.filter((m) => BigInt(m.offset) < high);
    const letters = messages.map((m) => ({ offset: m.offset, key: m.rawKey, value: m.rawValue, headers: m.rawHeaders }));
    await sendReplayGroups(writer, replayGroups(dlqTopic, batch.partition, letters), result, dryRun);
    const last = messages[messages.length - 1];
    if (last) {
      batch.resolveOffset(last.offset);
      if (!dryRun) await batch.commitThrough(last.offset);
      if (BigInt(last.offset) + 1n >= high) pending.delete(batch.partition);
    }
    if (pending.size === 0) finish();
  });
  await done;
  await source.stop();
  logger.info({ dlqTopic, ...result }, "dead letters replayed");
  return result;
}
