import type { StreamRecord } from "../../../lib/runtime/contracts.ts";

/**
 * Transform of the ml-audit topology: every platform event becomes one audit entry on
 * ml.audit-log (JSON), which ml-audit-store writes to PostgreSQL.
 */

const EVENT_TYPES: Record<string, string> = {
  "ml.prediction-requests": "prediction_request",
  "ml.prediction-responses": "prediction_response",
  "ml.training-requests": "training_requested",
  "ml.model-training-completed": "model_training_completed",
  "ml.alerts": "model_alert",
};

export interface AuditEntry {
  /** The source record's id (topic/partition/offset@cluster): a replay writes the same row. */
  event_id: string;
  event_type: string;
  source_topic: string;
  model_id: string | null;
  entity_key: string | null;
  occurred_at: number;
  payload: unknown;
}

export function toAuditEntry(value: Record<string, unknown>, record: StreamRecord): AuditEntry {
  const topic = record.origin.topic;
  return {
    event_id: record.id,
    event_type: EVENT_TYPES[topic] ?? topic,
    source_topic: topic,
    model_id: typeof value.model_id === "string" ? value.model_id : null,
    entity_key: record.key === null || record.key === undefined ? null : String(record.key),
    occurred_at: record.origin.timestamp,
    payload: value,
  };
}
