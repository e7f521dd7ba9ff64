import type { DeadLetter, DeadLetterWriter } from "../../runtime/contracts.ts";
import type { KafkaWriter } from "./writer.ts";

/** Headers every dead letter carries, beside the record's own headers. */
export const DLQ_HEADERS = {
  code: "sf-error-code",
  message: "sf-error-message",
  step: "sf-step",
  topology: "sf-topology",
  topic: "sf-source-topic",
  partition: "sf-source-partition",
  offset: "sf-source-offset",
  timestamp: "sf-source-timestamp",
  failedAt: "sf-failed-at",
  attempts: "sf-attempts",
} as const;

/** Writes dead letters: the original key and value bytes, original headers, and why. */
export class KafkaDeadLetters implements DeadLetterWriter {
  private readonly writer: KafkaWriter;
  constructor(writer: KafkaWriter) {
    this.writer = writer;
  }

  async send(topic: string, letters: DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    const failedAt = new Date().toISOString();
    await this.writer.send(
      topic,
      letters.map((l) => ({
        key: l.origin.rawKey,
        value: l.origin.rawValue,
        headers: {
          ...l.origin.rawHeaders,
          [DLQ_HEADERS.code]: l.code,
          [DLQ_HEADERS.message]: l.message.slice(0, 2000),
          [DLQ_HEADERS.step]: l.step,
          [DLQ_HEADERS.topology]: l.topology,
          [DLQ_HEADERS.topic]: l.origin.topic,
          [DLQ_HEADERS.partition]: String(l.origin.partition),
          [DLQ_HEADERS.offset]: l.origin.offset,
          [DLQ_HEADERS.timestamp]: String(l.origin.timestamp),
          [DLQ_HEADERS.failedAt]: failedAt,
          [DLQ_HEADERS.attempts]: String(l.attempts),
        },
      })),
    );
  }

  async close(): Promise<void> {}
}
