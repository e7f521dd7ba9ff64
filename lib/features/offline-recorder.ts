/**
 * The `redis.features` sink's hook into the offline feature log: the per-record rows a batch
 * kept for views with `offline`, grouped per database, table and view and written while
 * the batch goes to Redis. pg and the writer load only when a view has `offline`.
 */
import type { ComponentContext } from "../runtime/contracts.ts";
import type { CompiledView, OfflineRow } from "../connectors/redis/feature-log.ts";
import type { CopyData, LogRow, OfflineLogWriter, RowEncoder, RowKey } from "./offline-log.ts";

export interface OfflineRecorder {
  /** Connects and creates the tables and partitions of the views when missing. */
  open(): Promise<void>;
  /** Writes the rows (a replayed row adds nothing); throws SF_ERR_SINK_NOT_CONNECTED when PostgreSQL is away. */
  record(rows: readonly OfflineRow[]): Promise<void>;
  close(): Promise<void>;
}

/** The JSON object text of a row's contributions, features it leaves alone left out. */
export function contributionsOf(heads: readonly string[], values: readonly unknown[]): string {
  let out = "{";
  for (let f = 0; f < values.length; f++) {
    const v = values[f];
    if (v === undefined) continue;
    out += `${out.length > 1 ? "," : ""}${heads[f]!}${JSON.stringify(v) ?? "null"}`;
  }
  return `${out}}`;
}

/**
 * Writes a row's columns after its offset (entity, event time, seq, contributions) straight
 * into the COPY payload, as contributionsOf and the writer's COPY text would: per feature a
 * prepared `{"name":` / `,"name":`, then the value as JSON.
 */
/** The columns between the offset and the contributions, each after a tab, and the contributions' tab: what every row encoder writes first. */
export function entityColumns(d: CopyData, entity: string, eventTime: number, seq: number): void {
  d.byte(9);
  d.text(entity);
  d.byte(9);
  d.int(eventTime);
  d.byte(9);
  d.int(seq);
  d.byte(9);
}

/** An OfflineRow's entity and event time, for the writer's late-row check. */
const OFFLINE_ROW_KEY: RowKey<OfflineRow> = { entity: (r) => r.entity, time: (r) => r.t };

export function encoderOf(features: readonly { name: string }[]): RowEncoder<OfflineRow> {
  // JSON text holds no raw tab or line break: COPY's escaping only doubles its backslashes
  const head = (prefix: string, name: string) => Buffer.from(`${prefix}${JSON.stringify(name)}:`.replace(/\\/g, "\\\\"));
  const first = features.map((f) => head("{", f.name));
  const next = features.map((f) => head(",", f.name));
  return (d: CopyData, r: OfflineRow) => {
    entityColumns(d, r.entity, r.t, r.seq);
    const values = r.values;
    let any = false;
    for (let f = 0; f < values.length; f++) {
      const v = values[f];
      if (v === undefined) continue;
      d.raw(any ? next[f]! : first[f]!);
      any = true;
      d.json(v);
    }
    if (!any) d.byte(123);
    d.byte(125);
    d.byte(10);
  };
}

/** A recorder for the views that have `offline`; undefined when none has. */
export function offlineRecorder(views: readonly CompiledView[], ctx: ComponentContext): OfflineRecorder | undefined {
  const logged = views.filter((v) => v.offline);
  if (logged.length === 0) return undefined;
  const heads = new Map(logged.map((v) => [v, v.def.features.map((f) => `${JSON.stringify(f.name)}:`)]));
  const encoders = new Map(logged.map((v) => [v, encoderOf(v.def.features)]));
  const writers = new Map<string, OfflineLogWriter>();
  let opened: Promise<void> | undefined;

  async function open(): Promise<void> {
    const { OfflineLogWriter } = await import("./offline-log.ts");
    for (const v of logged) {
      const c = v.offline!.connection;
      if (!writers.has(c)) writers.set(c, new OfflineLogWriter(ctx.connections, c, ctx.component));
    }
    for (const v of logged) await writers.get(v.offline!.connection)!.prepare(v.offline!, [v.store]);
  }

  let isOpen = false;
  const ready = () =>
    (opened ??= open().then(
      () => void (isOpen = true),
      (err: unknown) => {
        opened = undefined; // the next batch tries again
        throw err;
      },
    ));

  /** Starts the views' writes, synchronously up to their COPYs (see OfflineLogWriter.writeRows). */
  function write(rows: readonly OfflineRow[]): Promise<void> {
    const byView = new Map<CompiledView, OfflineRow[]>();
    for (const r of rows) {
      let list = byView.get(r.view);
      if (!list) byView.set(r.view, (list = []));
      list.push(r);
    }
    // the rows go into the COPY as they are (encoderOf); LogRows only for a table in layout 1
    const asLogRow = (r: OfflineRow): LogRow => ({ entity: r.entity, eventTime: r.t, cluster: r.cluster, topic: r.topic, partition: r.partition, offset: r.offset, seq: r.seq, contributions: contributionsOf(heads.get(r.view)!, r.values) });
    return Promise.all([...byView].map(([v, list]) => writers.get(v.offline!.connection)!.writeRows(v.offline!, v.store, list, encoders.get(v)!, asLogRow, OFFLINE_ROW_KEY))).then(() => undefined);
  }

  return {
    open: ready,
    record(rows) {
      if (rows.length === 0) return Promise.resolve();
      // once open, the COPYs leave within this call, before the sink builds its Redis update: PostgreSQL works meanwhile
      return isOpen ? write(rows) : ready().then(() => write(rows));
    },
    async close() {
      await Promise.all([...writers.values()].map((w) => w.close()));
      writers.clear();
      opened = undefined;
      isOpen = false;
    },
  };
}
