import { isRetriable } from "../errors.ts";
import type { TopologyMetrics } from "../observability/metrics.ts";
import type { BatchControl } from "./batch-control.ts";
import { backoffDelay } from "./batch-control.ts";
import type { BackoffPolicy } from "./batch-control.ts";
import { BatchAbandoned } from "./batch-control.ts";
import type { DeadLetter, RecordFailure, RecordOrigin, Step, StreamRecord } from "./contracts.ts";

export interface StepRun {
  ctl: BatchControl;
  policy: BackoffPolicy & { retries: number };
  metrics: TopologyMetrics;
  dead: DeadLetter[];
  letter(origin: RecordOrigin, err: unknown, step: string, attempts: number): DeadLetter;
}

/**
 * Runs one step over a batch. A throw from the whole step (its server is down) is an outage:
 * retried until it works. Per-record failures are retried by the error policy, then
 * dead-lettered; records that pass keep their input order.
 */
export async function runStep(step: Step, path: string, records: StreamRecord[], run: StepRun): Promise<StreamRecord[]> {
  let outcome;
  try {
    outcome = await run.ctl.untilDone(path, () => step.process(records));
  } catch (err) {
    if (err instanceof BatchAbandoned) throw err;
    for (const r of records) run.dead.push(run.letter(r.origin, err, path, 1));
    return [];
  }
  let failed: RecordFailure[] = outcome.failed ?? [];
  // Retried records are appended below; copy only then.
  const out = failed.length > 0 ? [...outcome.records] : outcome.records;
  let retried = false;
  for (let attempt = 1; failed.length > 0; attempt++) {
    const again = attempt <= run.policy.retries ? failed.filter((f) => isRetriable(f.error)) : [];
    const giveUp = failed.filter((f) => !again.includes(f));
    for (const f of giveUp) run.dead.push(run.letter(f.record.origin, f.error, path, attempt));
    if (again.length === 0) break;
    retried = true;
    run.metrics.outcome("retried", again.length);
    await run.ctl.sleep(backoffDelay(run.policy, attempt));
    const next = await run.ctl.untilDone(path, () => step.process(again.map((f) => f.record)));
    out.push(...next.records);
    failed = next.failed ?? [];
  }
  if (retried) out.sort(byOrigin);
  return out;
}

function byOrigin(a: StreamRecord, b: StreamRecord): number {
  const d = Number(a.origin.offset) - Number(b.origin.offset);
  return d !== 0 ? d : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
