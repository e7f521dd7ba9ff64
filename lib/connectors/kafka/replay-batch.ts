import type { ReplayResult } from "../../runtime/contracts.ts";
import { DLQ_HEADERS } from "./dead-letters.ts";
import type { KafkaWriter, OutMessage } from "./writer.ts";

/*
 * DLQ replay, what both clients share: which dead letters of a batch go back where, and sending
 * them. Each client only reads the DLQ (its own consumer, committed group, high watermarks).
 */

/** A dead letter as read back from the DLQ, its headers as text. */
export interface DeadLetterRead {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/**
 * The dead letters of one batch of DLQ partition `partition`, grouped by the source topic each
 * came from (its sf-source-topic header), in order, as they go back: the original key, value
 * and headers (streamfleet's sf-* headers dropped), plus sf-replayed-from naming the letter's
 * place in the DLQ. A letter without a source topic is left out.
 */
export function replayGroups(dlqTopic: string, partition: number, letters: Iterable<DeadLetterRead>): Map<string, OutMessage[]> {
  const byTopic = new Map<string, OutMessage[]>();
  for (const letter of letters) {
    const source = letter.headers[DLQ_HEADERS.topic];
    if (!source) continue;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(letter.headers)) if (!k.startsWith("sf-")) headers[k] = v;
    headers["sf-replayed-from"] = `${dlqTopic}/${partition}/${letter.offset}`;
    let list = byTopic.get(source);
    if (!list) byTopic.set(source, (list = []));
    list.push({ key: letter.key, value: letter.value, headers });
  }
  return byTopic;
}

/** Sends each group to its topic (not on a dry run) and counts it in `result`. */
export async function sendReplayGroups(writer: KafkaWriter, groups: Map<string, OutMessage[]>, result: ReplayResult, dryRun: boolean): Promise<void> {
  for (const [topic, list] of groups) {
    if (!dryRun) await writer.send(topic, list);
    result.byTopic[topic] = (result.byTopic[topic] ?? 0) + list.length;
    result.replayed += list.length;
  }
}
