import { SfError } from "../../errors.ts";
import type { EffectContext, RecordFailure, SinkEffects, StreamRecord } from "../../runtime/contracts.ts";
import { compileValue } from "../../topology/template.ts";
import type { PostgresSinkConfig } from "./config.ts";
import { convert } from "./convert.ts";

/**
 * `postgres`, rendered: one `{ table, row }` per record, in record order — the row after the
 * sink's column mapping and type conversion (the values pg would be sent; timestamps as ISO
 * text). A record that does not fit is refused with the sink's own reason. A replayed key
 * inserting nothing (ON CONFLICT DO NOTHING) depends on the table's content: not rendered.
 * Loads the sink's module (and pg) on first use, like `create`.
 */
export async function postgresEffect(config: PostgresSinkConfig, records: readonly StreamRecord[], ctx: EffectContext): Promise<SinkEffects> {
  const { resolveColumns } = await import("./sink.ts");
  const columns = resolveColumns(config, ctx.baseDir);
  const getters = columns.map((c) => compileValue(c.path));
  const [qualifier, bare] = config.table.includes(".") ? config.table.split(".") : [undefined, config.table];
  const table = `${config.pg_schema ?? qualifier ?? "public"}.${bare}`;
  const effects: unknown[] = [];
  const failed: RecordFailure[] = [];
  records: for (const r of records) {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) {
      const c = columns[i]!;
      const v = getters[i]!(r);
      let why: string | undefined;
      if (v === undefined || v === null) {
        if (c.nullable) row[c.name] = null;
        else why = `column ${c.name} is NOT NULL, the record has no value`;
      } else {
        const conv = convert(c.type, v);
        if (conv.ok) row[c.name] = c.type === "jsonb" ? (JSON.parse(conv.value as string) as unknown) : Buffer.isBuffer(conv.value) ? conv.value.toString("base64") : conv.value;
        else why = `column ${c.name} (${c.type}): ${conv.reason}`;
      }
      if (why !== undefined) {
        failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `record ${r.id} does not fit table ${config.table}: ${why}`, { where: ctx.component }) });
        continue records;
      }
    }
    effects.push({ table, row });
  }
  return { effects, failed };
}
