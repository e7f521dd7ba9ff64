/**
 * The feature store's key layout: the one contract between the `redis.features` sink that
 * writes and every reader (the TS client, the HTTP server, redis-cli, redis-py). Pure: no
 * Redis client here. docs/feature-store.md describes the same layout for other languages.
 */

/** Namespace and layout version of every key streamfleet writes to Redis. */
export const NAMESPACE = "sf:v1:";

export type FeatureKind = "latest" | "counter" | "min" | "max" | "last_n" | "window_count" | "window_sum";

/** What readers need to know about one feature (no templates: those stay in the sink). */
export interface FeatureDef {
  name: string;
  kind: FeatureKind;
  /** last_n: how many values are kept. */
  n?: number;
  /** window_*: tumbling window length in ms. */
  window_ms?: number;
  /** window_*: how many windows (the current one included) are kept for late events. */
  buckets?: number;
}

/** A feature view as registered in the `sf:v1:views` hash (field = view name, value = JSON of this). */
export interface ViewDef {
  name: string;
  entity: string;
  ttl_seconds?: number;
  features: FeatureDef[];
  /**
   * The view version readers are pointed at (absent: 1). `streamfleet features rebuild`
   * computes a new version from history and switches readers to it by rewriting this entry.
   */
  version?: number;
  /** Where the version's data lives: the `<view>` part of entity keys and the offline log's `view` column (absent: the view name). */
  store?: string;
}

/** The name a view's data is kept under: `store` of its registry entry, else the view name (version 1). */
export function storeOf(view: Pick<ViewDef, "name" | "store">): string {
  return view.store ?? view.name;
}

/** The store of version `n` of a view: the view name for 1, `<view>@v<n>` after (`@` is never in a view name). */
export function versionStore(view: string, n: number): string {
  return n <= 1 ? view : `${view}@v${n}`;
}

/** One feature of one entity as a reader sees it. */
export interface FeatureValue {
  value: unknown;
  /** Event time (epoch ms) of the newest event that changed this feature; null when never written. */
  event_time: number | null;
  /** Read time minus event_time, in ms; null when never written. */
  staleness_ms: number | null;
  /** window_*: start (epoch ms) of the tumbling window the value sums. */
  window_start?: number;
}

export const keys = {
  /**
   * HASH of one entity's features in one view. On a Redis Cluster the id is a hash tag,
   * `fv:<view>:{<id>}`, so an entity's hashes (every view's) share one slot while entities
   * spread over the shards; a single Redis keeps the untagged key (docs/feature-store.md).
   */
  entity: (prefix: string, view: string, id: string, cluster = false) => (cluster ? `${prefix}${NAMESPACE}fv:${view}:{${id}}` : `${prefix}${NAMESPACE}fv:${view}:${id}`),
  /** HASH registry of feature views: field = view name, value = ViewDef JSON. */
  views: (prefix: string) => `${prefix}${NAMESPACE}views`,
  /** HASH of every version of every view: field = view name, value = JSON array of versions (lib/features/versions.ts). */
  versions: (prefix: string) => `${prefix}${NAMESPACE}view-versions`,
  /** STRING written by the `redis.cache` sink is user-templated; dedupe and rate-limit keys: */
  dedupe: (prefix: string, scope: string, key: string) => `${prefix}${NAMESPACE}dd:${scope}:${key}`,
  rate: (prefix: string, scope: string, key: string, windowStart: number) => `${prefix}${NAMESPACE}rl:${scope}:${key}:${windowStart}`,
};

/** Hash field names inside an entity hash; `@` and `|` never occur in feature names. */
export const fields = {
  value: (name: string) => name,
  time: (name: string) => `${name}@t`,
  times: (name: string) => `${name}@ts`,
  head: (name: string) => `${name}@h`,
  bucket: (name: string, start: number) => `${name}|${start}`,
};

/** Start (epoch ms) of the tumbling window of length `size` ms holding time `t`. Windows are aligned to the Unix epoch. */
export function bucketStart(t: number, size: number): number {
  return Math.floor(t / size) * size;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "500ms", "30s", "5m", "1h", "7d" (or a number of seconds) into ms; NaN when malformed. */
export function parseDuration(spec: string | number): number {
  if (typeof spec === "number") return spec * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(spec.trim());
  return m ? Math.round(Number(m[1]) * UNITS[m[2]!]!) : NaN;
}

function parseJson(text: string | undefined | null): unknown {
  if (text === undefined || text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The hash fields a reader fetches for `names` (HMGET), in the order decodeFeatures expects. */
export function fieldsToRead(view: ViewDef, names: readonly string[], asOf: number): string[] {
  const out: string[] = [];
  for (const name of names) {
    const f = view.features.find((x) => x.name === name)!;
    if (f.kind === "window_count" || f.kind === "window_sum") out.push(fields.bucket(name, bucketStart(asOf, f.window_ms!)), fields.time(name));
    else out.push(fields.value(name), fields.time(name));
  }
  return out;
}

/** Turns the HMGET reply for fieldsToRead into feature values as of `asOf`. */
export function decodeFeatures(view: ViewDef, names: readonly string[], reply: readonly (string | null)[], asOf: number): Record<string, FeatureValue> {
  const out: Record<string, FeatureValue> = {};
  names.forEach((name, i) => {
    const f = view.features.find((x) => x.name === name)!;
    const raw = reply[2 * i] ?? null;
    const t = reply[2 * i + 1];
    const eventTime = t === null || t === undefined ? null : Number(t);
    const staleness = eventTime === null ? null : Math.max(0, asOf - eventTime);
    if (f.kind === "window_count" || f.kind === "window_sum") {
      out[name] = { value: raw === null ? 0 : Number(raw), event_time: eventTime, staleness_ms: staleness, window_start: bucketStart(asOf, f.window_ms!) };
    } else {
      out[name] = { value: parseJson(raw), event_time: eventTime, staleness_ms: staleness };
    }
  });
  return out;
}
