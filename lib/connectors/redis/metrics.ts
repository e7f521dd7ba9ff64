import client from "prom-client";
import type { EngineMetrics } from "../../observability/metrics.ts";

/**
 * Redis-only series (the engine already counts sink writes, records and latency for every
 * sink): pipeline round-trip time per operation, what the scripts decided per record, and
 * the freshness of each feature view (its SLO, the apply lag).
 */
export interface RedisMetrics {
  /** Seconds one batch pipeline takes, by operation (features, cache, publish, enrich, dedupe, rate_limit). */
  pipelineSeconds: client.Histogram<"topology" | "operation">;
  /** Per-record script results: applied, duplicate (replay skipped), passed, dropped, limited. */
  scriptResults: client.Counter<"topology" | "script" | "result">;
  /** Per feature view: seconds since the event time of the newest update applied (set at scrape, see viewFreshness). */
  freshness: client.Gauge<"topology" | "view">;
  /** Per feature view: its declared freshness_slo_seconds. */
  freshnessSlo: client.Gauge<"topology" | "view">;
  /** Per feature view: event time to applied in Redis, once per applied entity update. */
  applyLag: client.Histogram<"topology" | "view">;
}

const PIPELINE = "streamfleet_redis_pipeline_seconds";
const RESULTS = "streamfleet_redis_script_results_total";
const FRESHNESS = "streamfleet_feature_freshness_seconds";
const FRESHNESS_SLO = "streamfleet_feature_freshness_slo_seconds";
const APPLY_LAG = "streamfleet_feature_apply_lag_seconds";
/** Apply lag: the commit interval (1 s by default) in the middle; replays and backfills in the top buckets. */
const APPLY_LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** What the freshness gauge reads at scrape time, per (topology, view): the newest event time applied. */
interface FreshnessEntry {
  labels: { topology: string; view: string };
  /** Epoch ms; -Infinity until this process applied an update to the view. */
  newest: number;
  now: () => number;
}

/** Per registry (one per process; tests make their own): every view's entry, by topology and view. */
const freshnessEntries = new WeakMap<client.Registry, Map<string, FreshnessEntry>>();

function entriesOf(registry: client.Registry): Map<string, FreshnessEntry> {
  let entries = freshnessEntries.get(registry);
  if (!entries) freshnessEntries.set(registry, (entries = new Map()));
  return entries;
}

/** The connector's series on the engine's registry; registered once per registry however many sinks ask. */
export function redisMetrics(metrics: EngineMetrics): RedisMetrics {
  const registry = metrics.registry;
  const pipelineSeconds =
    (registry.getSingleMetric(PIPELINE) as client.Histogram<"topology" | "operation"> | undefined) ??
    new client.Histogram({
      name: PIPELINE,
      help: "Time one batch's Redis pipeline takes (script latency included), by operation",
      labelNames: ["topology", "operation"],
      buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    });
  const scriptResults =
    (registry.getSingleMetric(RESULTS) as client.Counter<"topology" | "script" | "result"> | undefined) ??
    new client.Counter({
      name: RESULTS,
      help: "Per-record results of the Redis scripts (features: applied/duplicate; dedupe: passed/dropped; rate_limit: passed/limited)",
      labelNames: ["topology", "script", "result"],
      registers: [registry],
    });
  const entries = entriesOf(registry);
  const freshness =
    (registry.getSingleMetric(FRESHNESS) as client.Gauge<"topology" | "view"> | undefined) ??
    new client.Gauge({
      name: FRESHNESS,
      help: "Now minus the event time of the newest update applied to the feature view (computed at scrape, so it grows while nothing arrives; never negative); absent until the worker applied an update to the view",
      labelNames: ["topology", "view"],
      registers: [registry],
      collect() {
        for (const e of entries.values()) if (e.newest > -Infinity) this.set(e.labels, Math.max(0, (e.now() - e.newest) / 1000));
      },
    });
  const freshnessSlo =
    (registry.getSingleMetric(FRESHNESS_SLO) as client.Gauge<"topology" | "view"> | undefined) ??
    new client.Gauge({ name: FRESHNESS_SLO, help: "The feature view's declared freshness_slo_seconds (only views that declare one)", labelNames: ["topology", "view"], registers: [registry] });
  const applyLag =
    (registry.getSingleMetric(APPLY_LAG) as client.Histogram<"topology" | "view"> | undefined) ??
    new client.Histogram({
      name: APPLY_LAG,
      help: "Seconds from the newest event time of a feature view's entity update to its write in Redis, once per applied entity update (replays and backfills land in the top buckets)",
      labelNames: ["topology", "view"],
      buckets: APPLY_LAG_BUCKETS,
      registers: [registry],
    });
  return { pipelineSeconds, scriptResults, freshness, freshnessSlo, applyLag };
}

/** One feature view's freshness series: fed once per applied entity update, never per record. */
export interface ViewFreshness {
  /** An entity update was applied to the view at `at`; `newest` is its newest event time (both epoch ms). */
  applied(newest: number, at: number): void;
}

/**
 * The freshness series of one feature view of one topology: the freshness gauge (read at
 * scrape time, by `now`, from the newest event time applied, so it grows while nothing arrives), the
 * apply lag histogram and, when the view declares one, its SLO. Event times in the past
 * (replays, backfills) count in the lag but never make the view look older than the newest
 * event it already has; event times in the future (clock skew) count as 0.
 */
export function viewFreshness(metrics: EngineMetrics, topology: string, view: string, sloSeconds: number | undefined, now: () => number): ViewFreshness {
  const m = redisMetrics(metrics);
  const entries = entriesOf(metrics.registry);
  const key = `${topology}\u0000${view}`;
  let entry = entries.get(key);
  if (!entry) entries.set(key, (entry = { labels: { topology, view }, newest: -Infinity, now }));
  if (sloSeconds !== undefined) m.freshnessSlo.labels(topology, view).set(sloSeconds);
  const observe = seriesObserver(m.applyLag, { topology, view }, APPLY_LAG_BUCKETS);
  const e = entry;
  return {
    applied(newest, at) {
      if (!Number.isFinite(newest)) return;
      if (newest > e.newest) e.newest = newest;
      observe(Math.max(0, (at - newest) / 1000));
    },
  };
}

/** One label set's state inside a prom-client Histogram: what its observe() updates (buckets not cumulative). */
interface HistogramSeries {
  labels: Record<string, unknown>;
  sum: number;
  count: number;
  bucketValues: Record<number, number>;
}

/**
 * observe() of one label set of a histogram, without prom-client's label validation and
 * hashing per call (about 1 µs, which is once per entity update here): the series is found
 * once, after a first observe() (again after a reset), and updated as observe() would. If
 * prom-client's internals are not what this expects, every call goes through observe().
 */
function seriesObserver(h: client.Histogram<"topology" | "view">, labels: Record<"topology" | "view", string>, bounds: readonly number[]): (v: number) => void {
  const child = h.labels(labels);
  const internals = h as unknown as { hashMap?: Record<string, HistogramSeries | undefined> };
  let key: string | undefined;
  let broken = internals.hashMap === undefined;
  const usable = (s: HistogramSeries): boolean => typeof s.sum === "number" && typeof s.count === "number" && bounds.every((b) => typeof s.bucketValues?.[b] === "number");
  const find = (): boolean => {
    const map = internals.hashMap ?? {};
    for (const k of Object.keys(map)) {
      const s = map[k];
      if (s?.labels?.topology === labels.topology && s.labels.view === labels.view && Object.keys(s.labels).length === 2) {
        key = k;
        return usable(s);
      }
    }
    return false;
  };
  return (v) => {
    // looked up per call: a reset replaces the map
    const series = broken || key === undefined ? undefined : internals.hashMap?.[key];
    if (series === undefined) {
      child.observe(v);
      if (!broken && !find()) broken = true;
      return;
    }
    let b = 0;
    while (b < bounds.length && v > bounds[b]!) b++;
    series.sum += v;
    series.count++;
    // above the last bound only count and sum move (+Inf is the count), as in prom-client
    if (b < bounds.length) series.bucketValues[bounds[b]!]!++;
  };
}

/** Times `fn` into the pipeline histogram. */
export async function timed<T>(m: RedisMetrics, topology: string, operation: string, fn: () => Promise<T>): Promise<T> {
  const end = m.pipelineSeconds.startTimer({ topology, operation });
  try {
    return await fn();
  } finally {
    end();
  }
}
