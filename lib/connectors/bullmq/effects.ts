import { SfError, errorMessage } from "../../errors.ts";
import type { EffectContext, RecordFailure, SinkEffects, StreamRecord } from "../../runtime/contracts.ts";
import { compileTemplate, compileValue } from "../../topology/template.ts";
import type { BullmqSinkConfig } from "./config.ts";

/**
 * `bullmq`, rendered: one `{ queue, name, id, data }` per record, in record order — the job
 * the sink would add, with the id BullMQ would store (sanitised as the sink does). Loads the
 * sink's module (and bullmq) on first use, like `create`.
 */
export async function bullmqEffect(config: BullmqSinkConfig, records: readonly StreamRecord[], ctx: EffectContext): Promise<SinkEffects> {
  const { sanitizeJobId } = await import("./sink.ts");
  const jobName = compileTemplate(config.job_name);
  const jobId = compileTemplate(config.job_id);
  const fields = config.data ? Object.entries(config.data).map(([k, v]) => [k, compileValue(v)] as const) : undefined;
  const effects: unknown[] = [];
  const failed: RecordFailure[] = [];
  for (const r of records) {
    try {
      const data = fields ? Object.fromEntries(fields.map(([k, get]) => [k, get(r)])) : r.value;
      effects.push({ queue: config.queue, name: jobName(r), id: sanitizeJobId(jobId(r)), data: JSON.parse(JSON.stringify(data ?? null)) as unknown });
    } catch (err) {
      failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `record ${r.id} cannot become a job of queue ${config.queue}: ${errorMessage(err)}`, { cause: err, where: ctx.component }) });
    }
  }
  return { effects, failed };
}
