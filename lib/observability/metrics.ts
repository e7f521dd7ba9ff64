import client from "prom-client";

/** Outcomes a consumed record can have; the label values of records_processed_total. */
export type Outcome = "ok" | "filtered" | "retried" | "dlq";

const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** The feature server answers in about a millisecond: fine buckets around its 2 ms p99 objective. */
const FEATURE_BUCKETS = [0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const E2E_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

/**
 * Every series the engine exports (prefix `streamfleet_`), one registry per process. The
 * engine records the common series for every component; a connector's metrics.ts adds
 * only its own through `registry`. Labels are bounded: topology, topic, partition, sink,
 * outcome, error code — never record keys.
 */
export class EngineMetrics {
  readonly registry: client.Registry;
  readonly consumed: client.Counter<"topology" | "topic">;
  readonly processed: client.Counter<"topology" | "outcome">;
  readonly sinkWrites: client.Counter<"topology" | "sink" | "result">;
  readonly sinkRecords: client.Counter<"topology" | "sink">;
  readonly sinkSeconds: client.Histogram<"topology" | "sink">;
  readonly batchSeconds: client.Histogram<"topology">;
  readonly endToEndSeconds: client.Histogram<"topology">;
  readonly lag: client.Gauge<"topology" | "topic" | "partition">;
  readonly lagSeconds: client.Gauge<"topology" | "topic" | "partition">;
  readonly dlq: client.Counter<"topology" | "reason">;
  readonly rebalances: client.Counter<"topology">;
  readonly paused: client.Gauge<"topology">;
  readonly ready: client.Gauge<"topology">;
  readonly reloads: client.Counter<"topology" | "outcome">;
  readonly featureRequests: client.Counter<"route" | "status">;
  readonly featureSeconds: client.Histogram<"route">;
  readonly featureInFlight: client.Gauge;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [(this.registry = new client.Registry())];
    if (options.processMetrics !== false) client.collectDefaultMetrics({ register: this.registry, prefix: "streamfleet_" });
    this.consumed = new client.Counter({ name: "streamfleet_records_consumed_total", help: "Records read from Kafka", labelNames: ["topology", "topic"], registers });
    this.processed = new client.Counter({ name: "streamfleet_records_processed_total", help: "Records finished, by outcome: ok (every sink acknowledged), filtered, retried (an attempt that failed and was retried), dlq", labelNames: ["topology", "outcome"], registers });
    this.sinkWrites = new client.Counter({ name: "streamfleet_sink_writes_total", help: "Batch writes per sink, by result (ok, error)", labelNames: ["topology", "sink", "result"], registers });
    this.sinkRecords = new client.Counter({ name: "streamfleet_sink_records_total", help: "Records acknowledged by each sink", labelNames: ["topology", "sink"], registers });
    this.sinkSeconds = new client.Histogram({ name: "streamfleet_sink_write_seconds", help: "Time one sink takes to acknowledge one batch", labelNames: ["topology", "sink"], buckets: SECONDS_BUCKETS, registers });
    this.batchSeconds = new client.Histogram({ name: "streamfleet_batch_seconds", help: "Time from a batch's arrival to its commit", labelNames: ["topology"], buckets: SECONDS_BUCKETS, registers });
    this.endToEndSeconds = new client.Histogram({ name: "streamfleet_end_to_end_seconds", help: "Now minus the record's Kafka timestamp, when every sink acknowledged it", labelNames: ["topology"], buckets: E2E_BUCKETS, registers });
    this.lag = new client.Gauge({ name: "streamfleet_consumer_lag", help: "High watermark minus committed offset, per partition", labelNames: ["topology", "topic", "partition"], registers });
    this.lagSeconds = new client.Gauge({ name: "streamfleet_consumer_lag_seconds", help: "While a partition lags: seconds since the timestamp of its last processed record, an upper bound of the oldest unprocessed record's age; 0 when caught up", labelNames: ["topology", "topic", "partition"], registers });
    this.dlq = new client.Counter({ name: "streamfleet_dlq_records_total", help: "Records sent to the dead-letter topic, by error code", labelNames: ["topology", "reason"], registers });
    this.rebalances = new client.Counter({ name: "streamfleet_rebalances_total", help: "Consumer group rebalances (partition assignments received)", labelNames: ["topology"], registers });
    this.paused = new client.Gauge({ name: "streamfleet_paused_partitions", help: "Partitions paused because a sink pushes back or is down", labelNames: ["topology"], registers });
    this.ready = new client.Gauge({ name: "streamfleet_topology_ready", help: "1 when the topology's consumer joined its group", labelNames: ["topology"], registers });
    this.reloads = new client.Counter({ name: "streamfleet_topology_reloads_total", help: "Hot reloads of a changed topology (`run --watch`), by outcome: ok (the new version runs), failed (refused or did not start; the running version is kept)", labelNames: ["topology", "outcome"], registers });
    this.featureRequests = new client.Counter({ name: "streamfleet_feature_server_requests_total", help: "Feature server requests by route and HTTP status", labelNames: ["route", "status"], registers });
    this.featureSeconds = new client.Histogram({ name: "streamfleet_feature_server_request_seconds", help: "Feature server request latency", labelNames: ["route"], buckets: FEATURE_BUCKETS, registers });
    this.featureInFlight = new client.Gauge({ name: "streamfleet_feature_server_in_flight", help: "Feature reads (/v1) the feature server is answering now; at its limit it answers 503", registers });
  }

  /** Pre-labelled handles for one topology, built once so the hot path does no lookups. */
  forTopology(topology: string): TopologyMetrics {
    return new TopologyMetrics(this, topology);
  }
}

export class TopologyMetrics {
  readonly topology: string;
  private readonly m: EngineMetrics;
  private readonly outcomes: Record<Outcome, client.Counter.Internal>;
  private readonly batch: client.Histogram.Internal<"topology">;
  private readonly e2e: client.Histogram.Internal<"topology">;
  private readonly e2eBounds: readonly number[];
  private readonly e2eCounts: Float64Array;
  private e2eKey: string | undefined;
  private e2eBroken = false;

  constructor(m: EngineMetrics, topology: string) {
    this.m = m;
    this.topology = topology;
    this.outcomes = {
      ok: m.processed.labels(topology, "ok"),
      filtered: m.processed.labels(topology, "filtered"),
      retried: m.processed.labels(topology, "retried"),
      dlq: m.processed.labels(topology, "dlq"),
    };
    for (const o of Object.values(this.outcomes)) o.inc(0);
    this.batch = m.batchSeconds.labels(topology);
    this.e2e = m.endToEndSeconds.labels(topology);
    this.e2eBounds = E2E_BUCKETS;
    this.e2eCounts = new Float64Array(E2E_BUCKETS.length + 1);
    m.paused.labels(topology).set(0);
    m.ready.labels(topology).set(0);
    m.rebalances.labels(topology).inc(0);
  }

  consumed(topic: string, n: number): void {
    this.m.consumed.labels(this.topology, topic).inc(n);
  }
  outcome(outcome: Outcome, n: number): void {
    if (n > 0) this.outcomes[outcome].inc(n);
  }
  sink(sink: string, records: number, seconds: number, ok: boolean): void {
    this.m.sinkWrites.labels(this.topology, sink, ok ? "ok" : "error").inc();
    if (ok) {
      this.m.sinkRecords.labels(this.topology, sink).inc(records);
      this.m.sinkSeconds.labels(this.topology, sink).observe(seconds);
    }
  }
  batchDone(seconds: number): void {
    this.batch.observe(seconds);
  }
  /**
   * Observes now minus each record's timestamp, every record counted. prom-client's observe()
   * hashes the label set per call, which dominated the hot path; so a batch is bucketed here
   * and added to the histogram's series once. Same sum, count and buckets as observe() per
   * record; if prom-client's internals are not what this expects, it falls back to observe().
   */
  endToEnd(timestamps: readonly number[], now: number): void {
    const n = timestamps.length;
    if (n === 0) return;
    const series = this.e2eSeries(Math.max(0, (now - timestamps[0]!) / 1000));
    if (!series) {
      for (let i = 1; i < n; i++) this.e2e.observe(Math.max(0, (now - timestamps[i]!) / 1000));
      return;
    }
    const bounds = this.e2eBounds;
    const counts = this.e2eCounts.fill(0);
    let sum = 0;
    let ts = NaN;
    let v = 0;
    let b = 0;
    for (let i = 1; i < n; i++) {
      const t = timestamps[i]!;
      if (t !== ts) {
        // Neighbouring records mostly share their millisecond: find each distinct bucket once.
        ts = t;
        v = Math.max(0, (now - t) / 1000);
        b = 0;
        while (b < bounds.length && v > bounds[b]!) b++;
      }
      sum += v;
      counts[b]!++;
    }
    series.sum += sum;
    series.count += n - 1;
    // Above the last bound only count and sum move (+Inf is the count), as in prom-client.
    for (let b = 0; b < bounds.length; b++) if (counts[b]) series.bucketValues[bounds[b]!]! += counts[b]!;
  }

  /** Observes one value the public way (creating the series), then returns that series' state. */
  private e2eSeries(first: number): HistogramSeries | undefined {
    this.e2e.observe(first);
    if (this.e2eBroken) return undefined;
    const map = (this.m.endToEndSeconds as unknown as { hashMap?: Record<string, unknown> }).hashMap;
    let series = this.e2eKey !== undefined ? map?.[this.e2eKey] : undefined;
    if (series === undefined && map) {
      // Found once (and again after a registry reset): the one series whose labels are ours.
      for (const key of Object.keys(map)) {
        const labels = (map[key] as { labels?: Record<string, unknown> } | undefined)?.labels;
        if (labels && labels.topology === this.topology && Object.keys(labels).length === 1) {
          this.e2eKey = key;
          series = map[key];
          break;
        }
      }
    }
    if (isSeries(series, this.e2eBounds)) return series;
    this.e2eBroken = true;
    return undefined;
  }
  deadLettered(reason: string, n = 1): void {
    this.m.dlq.labels(this.topology, reason).inc(n);
    this.outcome("dlq", n);
  }
  rebalanced(): void {
    this.m.rebalances.labels(this.topology).inc();
  }
  pausedPartitions(delta: number): void {
    this.m.paused.labels(this.topology).inc(delta);
  }
  setReady(ready: boolean): void {
    this.m.ready.labels(this.topology).set(ready ? 1 : 0);
  }
  setLag(topic: string, partition: number, offsets: number, seconds: number): void {
    this.m.lag.labels(this.topology, topic, String(partition)).set(offsets);
    this.m.lagSeconds.labels(this.topology, topic, String(partition)).set(seconds);
  }
}

/** One label set's state inside a prom-client Histogram (what its observe() updates). */
interface HistogramSeries {
  sum: number;
  count: number;
  bucketValues: Record<number, number>;
}

function isSeries(x: unknown, bounds: readonly number[]): x is HistogramSeries {
  const s = x as HistogramSeries | undefined;
  return (
    typeof s?.sum === "number" &&
    typeof s.count === "number" &&
    typeof s.bucketValues === "object" &&
    s.bucketValues !== null &&
    bounds.every((b) => typeof s.bucketValues[b] === "number")
  );
}
