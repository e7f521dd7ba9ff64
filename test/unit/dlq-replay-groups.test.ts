import { describe, expect, it } from "vitest";
import { DLQ_HEADERS } from "../../lib/connectors/kafka/dead-letters.ts";
import { replayGroups, sendReplayGroups } from "../../lib/connectors/kafka/replay-batch.ts";
import type { KafkaWriter, OutMessage } from "../../lib/connectors/kafka/writer.ts";
import type { ReplayResult } from "../../lib/runtime/contracts.ts";

/** A dead letter as the DLQ writer leaves it: the record's own headers beside streamfleet's. */
function letter(offset: number, source: string | undefined, own: Record<string, string> = {}) {
  const headers: Record<string, string> = { ...own, [DLQ_HEADERS.code]: "SF_ERR_STEP", [DLQ_HEADERS.offset]: "12" };
  if (source) headers[DLQ_HEADERS.topic] = source;
  return { offset: String(offset), key: Buffer.from(`k${offset}`), value: Buffer.from(`v${offset}`), headers };
}

describe("DLQ replay: which dead letters go back where (both Kafka clients)", () => {
  it("groups a batch by source topic in order, with the record's own headers and sf-replayed-from, and leaves out letters without a source", () => {
    const groups = replayGroups("t.dlq", 2, [letter(5, "a.in", { trace: "x" }), letter(6, "b.in"), letter(7, undefined), letter(8, "a.in")]);
    expect([...groups.keys()]).toEqual(["a.in", "b.in"]);
    expect(groups.get("a.in")).toEqual([
      { key: Buffer.from("k5"), value: Buffer.from("v5"), headers: { trace: "x", "sf-replayed-from": "t.dlq/2/5" } },
      { key: Buffer.from("k8"), value: Buffer.from("v8"), headers: { "sf-replayed-from": "t.dlq/2/8" } },
    ]);
    expect(groups.get("b.in")!.map((m) => m.headers)).toEqual([{ "sf-replayed-from": "t.dlq/2/6" }]);
  });

  it("sends each group to its topic and counts it; a dry run counts without sending", async () => {
    const sent: Array<[string, OutMessage[]]> = [];
    const writer: KafkaWriter = { send: async (topic, messages) => void sent.push([topic, messages]), securityError: () => undefined, close: async () => {} };
    const groups = replayGroups("t.dlq", 0, [letter(0, "a.in"), letter(1, "b.in"), letter(2, "a.in")]);
    const result: ReplayResult = { replayed: 1, byTopic: { "a.in": 1 } };
    await sendReplayGroups(writer, groups, result, false);
    expect(sent.map(([t, m]) => [t, m.length])).toEqual([["a.in", 2], ["b.in", 1]]);
    expect(result).toEqual({ replayed: 4, byTopic: { "a.in": 3, "b.in": 1 } });
    const dry: ReplayResult = { replayed: 0, byTopic: {} };
    await sendReplayGroups(writer, groups, dry, true);
    expect(sent).toHaveLength(2);
    expect(dry).toEqual({ replayed: 3, byTopic: { "a.in": 2, "b.in": 1 } });
  });
});
