import { SfError, errorMessage } from "../../errors.ts";
import type { EffectContext, RecordFailure, SinkEffects, StreamRecord } from "../../runtime/contracts.ts";
import { compileTemplate, compileValue } from "../../topology/template.ts";
import type { RabbitmqSinkConfig } from "./config.ts";
import { buildMessage } from "./message.ts";

/**
 * `rabbitmq`, rendered: one `{ exchange, routing_key, message_id, type?, headers?, body }`
 * per record, in record order — built by the sink's own buildMessage (body parsed back from
 * its JSON). Whether a queue is bound for the routing key is the broker's answer: not rendered.
 */
export function rabbitmqEffect(config: RabbitmqSinkConfig, records: readonly StreamRecord[], ctx: EffectContext): SinkEffects {
  const templates = {
    routingKey: compileTemplate(config.routing_key),
    messageId: compileTemplate(config.message_id),
    type: config.message_type !== undefined ? compileTemplate(config.message_type) : undefined,
    headers: Object.entries(config.headers).map(([k, v]) => [k, compileValue(v)] as const),
    body: config.body ? Object.entries(config.body).map(([k, v]) => [k, compileValue(v)] as const) : undefined,
    persistent: config.persistent,
    mandatory: config.mandatory,
  };
  const effects: unknown[] = [];
  const failed: RecordFailure[] = [];
  for (const r of records) {
    try {
      const m = buildMessage(r, templates);
      const headers = m.options.headers as Record<string, unknown>;
      effects.push({
        exchange: config.exchange,
        routing_key: m.routingKey,
        message_id: m.options.messageId,
        ...(m.options.type !== undefined ? { type: m.options.type } : {}),
        ...(Object.keys(headers).length ? { headers: JSON.parse(JSON.stringify(headers)) as unknown } : {}),
        body: JSON.parse(m.content.toString("utf8")) as unknown,
      });
    } catch (err) {
      failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `record ${r.id} cannot become a message: ${errorMessage(err)}`, { cause: err, where: ctx.component }) });
    }
  }
  return { effects, failed };
}
