import type { StreamRecord } from "../../../lib/runtime/contracts.ts";

/**
 * Transform of the ml-model-alerts topology: compares a completed training's accuracy with
 * the threshold and with the model's previous accuracy (read by `enrich` from the feature
 * view `model` before the sinks update it).
 */

/** Accuracy under this raises a critical alert. */
export const ACCURACY_THRESHOLD = 0.8;

export interface TrainingCompleted {
  event_id: string;
  request_id: string;
  model_id: string;
  accuracy: number;
  completed_at: number;
  /** The feature view `model` as enrich read it: null for a model never seen. */
  previous: { accuracy?: number | null } | null;
}

export interface ModelAlert {
  alert_id: string;
  severity: "critical" | "warning";
  reason: "below_threshold" | "accuracy_dropped";
  message: string;
  model_id: string;
  accuracy: number;
  previous_accuracy: number | null;
  threshold: number;
  raised_at: number;
}

/** The alert a completed training deserves, or undefined when the model is fine. */
export function alertFor(event: Omit<TrainingCompleted, "previous">, previous: number | null, raisedAt: number): ModelAlert | undefined {
  const base = { alert_id: `alert:${event.event_id}`, model_id: event.model_id, accuracy: event.accuracy, previous_accuracy: previous, threshold: ACCURACY_THRESHOLD, raised_at: raisedAt };
  if (event.accuracy < ACCURACY_THRESHOLD) {
    return { ...base, severity: "critical", reason: "below_threshold", message: `model ${event.model_id}: accuracy ${event.accuracy} is below the threshold ${ACCURACY_THRESHOLD}` };
  }
  if (previous !== null && event.accuracy < previous) {
    return { ...base, severity: "warning", reason: "accuracy_dropped", message: `model ${event.model_id}: accuracy dropped from ${previous} to ${event.accuracy}` };
  }
  return undefined;
}

/**
 * Always passes the completed event on (the feature sink must record the new accuracy
 * either way) and, when the model deserves it, fans out a second record: the alert. The
 * route step sends records with a `severity` (alerts) to the alert sinks, the rest to the
 * feature view.
 */
export function assessAccuracy(value: TrainingCompleted, _record: StreamRecord, ctx: { now(): number }): [Omit<TrainingCompleted, "previous">] | [Omit<TrainingCompleted, "previous">, ModelAlert] {
  const prev = value.previous?.accuracy;
  const { previous: _previous, ...event } = value;
  const alert = alertFor(event, typeof prev === "number" ? prev : null, ctx.now());
  return alert ? [event, alert] : [event];
}
