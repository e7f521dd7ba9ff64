import { avroErrors, readAvsc } from "../../codecs/avro.ts";
import { SfError } from "../../errors.ts";
import type { ComponentSpec, EffectContext, RecordFailure, Sink, SinkEffects, StreamRecord } from "../../runtime/contracts.ts";
import { compileTemplate } from "../../topology/template.ts";
import type { kafkaSink } from "./sink.ts";

type KafkaSinkConfig = typeof kafkaSink extends ComponentSpec<infer C, Sink> ? C : never;

/**
 * `kafka`, rendered: one `{ topic, key, value, headers? }` per record, in record order. An
 * Avro value is encoded with the sink's schema and read back — what the next topology
 * receives (fields the schema lacks dropped); a value the schema rejects is refused, naming
 * the fields, as the producer's encoder would refuse it.
 */
export function kafkaEffect(config: KafkaSinkConfig, records: readonly StreamRecord[], ctx: EffectContext): SinkEffects {
  const key = config.key ? compileTemplate(config.key) : undefined;
  const type = config.value.type === "avro" ? readAvsc(config.value.schema, ctx.baseDir).type : undefined;
  const effects: unknown[] = [];
  const failed: RecordFailure[] = [];
  for (const r of records) {
    let value: unknown;
    if (type) {
      const problems = avroErrors(type, r.value);
      if (problems.length) {
        failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `value does not encode for ${config.topic}: ${problems.join("; ")}`, { where: ctx.component }) });
        continue;
      }
      value = type.fromBuffer(type.toBuffer(r.value));
    } else value = r.value;
    const k = key ? key(r) : r.key === null || r.key === undefined ? null : Buffer.isBuffer(r.key) ? r.key.toString("utf8") : String(r.key);
    const headers = config.headers && Object.keys(r.headers).length ? { headers: { ...r.headers } } : {};
    effects.push({ topic: config.topic, key: k, value: JSON.parse(JSON.stringify(value ?? null)) as unknown, ...headers });
  }
  return { effects, failed };
}
