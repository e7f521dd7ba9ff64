/**
 * What the feature server does per (view, feature names), built once and cached: the hash
 * fields to HMGET and a JSON serialiser for the reply. The output is the JSON of what
 * `decodeFeatures` returns (same keys, same order, same values), written as one string
 * without building the intermediate objects: the server's hot path.
 */
import { bucketStart, fields, fieldsToRead } from "./layout.ts";
import type { FeatureDef, ViewDef } from "./layout.ts";

export interface ReadPlan {
  readonly view: ViewDef;
  /** The view's name as JSON. */
  readonly viewJson: string;
  /** The hash fields to read, in the order `entityJson` expects. */
  fields(asOf: number): string[];
  /**
   * `{"id":…,"found":…,"features":{…}}` for one HMGET reply: `reply[at]` onwards, so a batch's
   * one flat reply (every entity's fields in turn) is decoded in place, without a slice per entity.
   * `open` replaces the leading `{` (e.g. `{"view":"v",` for a single read, saving a copy).
   */
  entityJson(id: string, reply: readonly (string | null)[], asOf: number, at?: number, open?: string): string;
}

const num = (x: number): string => (Number.isFinite(x) ? String(x) : "null");

// What the sink writes most: integers JSON.stringify writes back unchanged (at most 15 digits, so
// exact as a double), and strings with nothing JSON.stringify would escape (no quote, backslash,
// control character or surrogate). Those are their own JSON; a regex test allocates nothing.
const PLAIN_INT = /^(?:0|-?[1-9]\d{0,14})$/;
// eslint-disable-next-line no-control-regex -- control characters are what JSON.stringify escapes
const PLAIN_STRING = /^"[^"\\\u0000-\u001f\ud800-\udfff]*"$/;

/** A stored value (JSON text, or a bare string written by something else) as JSON: what parseJson + JSON.stringify give. */
function valueJson(raw: string | null | undefined): string {
  if (raw === null || raw === undefined) return "null";
  if (PLAIN_INT.test(raw) || PLAIN_STRING.test(raw)) return raw;
  try {
    const v: unknown = JSON.parse(raw);
    // numbers as JSON.stringify writes them (1e400 is null, -0 is 0); anything else is valid JSON text already
    return typeof v === "number" ? num(v) : raw.trim();
  } catch {
    return JSON.stringify(raw);
  }
}

const isWindow = (f: FeatureDef) => f.kind === "window_count" || f.kind === "window_sum";

/** The plan for `names` (already checked to exist in `view`). */
export function readPlan(view: ViewDef, names: readonly string[]): ReadPlan {
  const defs = names.map((n) => view.features.find((f) => f.name === n)!);
  const heads = names.map((n, i) => `${i ? "," : ""}${JSON.stringify(n)}:{"value":`);
  const windowed = defs.some(isWindow);
  const staticFields = windowed ? undefined : fieldsToRead(view, names, 0);
  let cachedKey = "";
  let cachedFields: string[] = [];
  return {
    view,
    viewJson: JSON.stringify(view.name),
    fields(asOf) {
      if (staticFields) return staticFields;
      // windows: the bucket fields change only when a window rolls over
      const starts = defs.map((f) => (isWindow(f) ? bucketStart(asOf, f.window_ms!) : 0)).join();
      if (cachedKey !== starts) {
        cachedFields = defs.flatMap((f, i) => (isWindow(f) ? [fields.bucket(names[i]!, bucketStart(asOf, f.window_ms!)), fields.time(names[i]!)] : [fields.value(names[i]!), fields.time(names[i]!)]));
        cachedKey = starts;
      }
      return cachedFields;
    },
    entityJson(id, reply, asOf, at = 0, open = "{") {
      let found = false;
      let out = "";
      for (let i = 0; i < defs.length; i++) {
        const f = defs[i]!;
        const raw = reply[at + 2 * i] ?? null;
        const t = reply[at + 2 * i + 1];
        if (raw !== null || (t !== null && t !== undefined)) found = true;
        const eventTime = t === null || t === undefined ? null : Number(t);
        // an event time the sink wrote (epoch ms, an integer) is its own JSON
        const times = eventTime === null ? `,"event_time":null,"staleness_ms":null` : `,"event_time":${PLAIN_INT.test(t!) ? t : num(eventTime)},"staleness_ms":${num(Math.max(0, asOf - eventTime))}`;
        out += heads[i]!;
        if (isWindow(f)) out += `${raw === null ? "0" : num(Number(raw))}${times},"window_start":${bucketStart(asOf, f.window_ms!)}}`;
        else out += `${valueJson(raw)}${times}}`;
      }
      return `${open}"id":${JSON.stringify(id)},"found":${found},"features":{${out}}}`;
    },
  };
}
