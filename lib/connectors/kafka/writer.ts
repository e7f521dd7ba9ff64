import type { SfError } from "../../errors.ts";

/** A record to write, the same for either client: key and value bytes (or text), string or byte headers. */
export interface OutMessage {
  key: Buffer | string | null;
  value: Buffer | null;
  headers?: Record<string, string | Buffer | undefined>;
}

/**
 * A connection's idempotent, acks=all producer as the sink, the DLQ writer and DLQ replay use
 * it, whichever client backs it (kafkajs or @platformatic/kafka).
 */
export interface KafkaWriter {
  /** Writes messages to one topic in order (same key, same partition as the Java client). */
  send(topic: string, messages: OutMessage[]): Promise<void>;
  /** A failure no retry fixes (credentials, ACLs, certificates) as an SfError; undefined otherwise. */
  securityError(err: unknown, resource?: { topics?: string[]; group?: string }): SfError | undefined;
  close(): Promise<void>;
}
