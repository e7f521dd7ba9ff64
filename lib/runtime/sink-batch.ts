import type { RecordFailure, SinkBatch, StreamRecord } from "./contracts.ts";

/**
 * `Sink.write` for a combining sink: the records as one batch, added and flushed at once,
 * failures named by their records again.
 */
export async function writeAsOneBatch(open: SinkBatch, records: StreamRecord[]): Promise<{ failed: RecordFailure[] } | undefined> {
  const failed = [...open.add(records), ...((await open.flush())?.failed ?? [])];
  if (failed.length === 0) return undefined;
  const byOrigin = new Map<unknown, StreamRecord>();
  for (const r of records) if (!byOrigin.has(r.origin)) byOrigin.set(r.origin, r);
  return { failed: failed.map((f) => ({ record: byOrigin.get(f.origin)!, error: f.error })) };
}
