import type { Message, Producer } from "kafkajs";

/** Kafka refuses a record batch over message.max.bytes (1 MiB by default): send in slices under it. */
const MAX_BYTES = 800 * 1024;
// kafkajs groups a send's messages per partition in O(n²): keep each send small.
const MAX_COUNT = 1000;

/** What a slice measures of a message (either client's shape). */
interface Sized {
  key?: Buffer | string | null;
  value?: Buffer | string | null;
  headers?: Record<string, unknown>;
}

function size(m: Sized): number {
  let n = 64 + (m.key ? Buffer.byteLength(m.key) : 0) + (m.value ? Buffer.byteLength(m.value) : 0);
  const headers = m.headers;
  for (const k in headers) {
    const v = headers[k];
    n += k.length + (v ? Buffer.byteLength(v as Buffer | string) : 0);
  }
  return n;
}

/** Splits messages into slices under the broker's batch limit, keeping order. */
export function slices<M extends Sized>(messages: M[], maxCount = MAX_COUNT): M[][] {
  const out: M[][] = [];
  let cur: M[] = [];
  let bytes = 0;
  for (const m of messages) {
    const s = size(m);
    if (cur.length && (bytes + s > MAX_BYTES || cur.length >= maxCount)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(m);
    bytes += s;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** What a slice weighs, as `slices` counts it. */
export function sliceBytes(messages: readonly Sized[]): number {
  let n = 0;
  for (const m of messages) n += size(m);
  return n;
}

/** The most bytes one send carries (under the broker's default message.max.bytes of 1 MiB). */
export const MAX_SEND_BYTES = MAX_BYTES;

/** True for a message too large to ever be accepted (a retry cannot help). */
export function oversized(m: Sized): boolean {
  return size(m) > MAX_BYTES;
}

/** Sends messages to one topic in order, slice after slice, acks=all. */
export async function sendAll(producer: Producer, topic: string, messages: Message[]): Promise<void> {
  for (const slice of slices(messages)) await producer.send({ topic, acks: -1, messages: slice });
}
