import type { Consumer, Kafka, KafkaMessage } from "kafkajs";
import type { Logger } from "pino";
import type { Source, SourceBatch, SourceMessage } from "../../runtime/contracts.ts";
import type { FetchingSourceOptions } from "../../runtime/source-fetch.ts";
import { FETCH_DEFAULTS } from "../../topology/model.ts";
import type { TopologyMetrics } from "../../observability/metrics.ts";
import { clusterTag } from "./cluster.ts";
import { findCoordinatorError } from "./group-access.ts";

/** A topology's consumer group: eachBatch, manual resolve, commits only what the runner resolves. */
export class KafkaSource implements Source {
  private readonly consumer: Consumer;
  private readonly kafka: Kafka;
  private readonly options: FetchingSourceOptions;
  private readonly logger: Logger;
  private readonly metrics: TopologyMetrics;
  private joined = false;
  private crashed: string | undefined;
  /** The error of the last crash (what `run` looks at when the first join failed). */
  private crashError: Error | undefined;
  /** Topics of the last assignment (what `stop` pauses). */
  private assigned: string[] = [];
  /** Batches being handled: `stop` waits for them before leaving the group. */
  private readonly inflight = new Set<Promise<void>>();
  private draining = false;
  /** Counts group joins: fetching starts again from the committed offsets after each. */
  private generation = 0;

  constructor(kafka: Kafka, options: FetchingSourceOptions, logger: Logger, metrics: TopologyMetrics) {
    this.kafka = kafka;
    this.options = options;
    this.logger = logger;
    this.metrics = metrics;
    this.consumer = kafka.consumer({
      groupId: options.group,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: 3_000,
      // What a fetch brings bounds what is held at once: one fetch per broker in flight, its batches
      // taken before the next (see `source.max_bytes_per_partition` in lib/topology/model.ts).
      maxBytesPerPartition: options.maxBytesPerPartition ?? FETCH_DEFAULTS.maxBytesPerPartition,
      maxBytes: options.maxBytesPerFetch ?? FETCH_DEFAULTS.maxBytesPerFetch,
      // An idle fetch waits at most 1 s (kafkajs default 5 s), so a stop drains within about a second.
      maxWaitTimeInMs: 1000,
      // Refresh metadata every 30 s (kafkajs default 5 min): new partitions and pattern topics are seen soon.
      metadataMaxAge: 30_000,
      retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
    });
    const { GROUP_JOIN, CRASH, STOP, DISCONNECT } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (e) => {
      this.generation++;
      this.joined = true;
      this.crashed = undefined;
      this.metrics.rebalanced();
      this.metrics.setReady(true);
      this.assigned = Object.keys(e.payload.memberAssignment);
      this.logger.info({ assignment: e.payload.memberAssignment }, "joined consumer group");
    });
    this.consumer.on(CRASH, (e) => {
      this.joined = false;
      this.crashed = e.payload.error.message;
      this.crashError = e.payload.error;
      this.metrics.setReady(false);
      this.logger.error({ err: e.payload.error, restart: e.payload.restart }, "consumer crashed");
    });
    for (const ev of [STOP, DISCONNECT]) {
      this.consumer.on(ev, () => {
        this.joined = false;
        this.metrics.setReady(false);
      });
    }
  }

  ready(): boolean {
    return this.joined && !this.crashed;
  }

  async run(handler: (batch: SourceBatch) => Promise<void>): Promise<void> {
    const cluster = await clusterTag(this.kafka);
    await this.consumer.connect();
    const fromBeginning = this.options.fromBeginning;
    if (this.options.pattern) await this.consumer.subscribe({ topics: [new RegExp(this.options.pattern)], fromBeginning });
    else await this.consumer.subscribe({ topics: this.options.topics ?? [], fromBeginning });
    await this.consumer.run({
      // The runner commits explicitly (SourceBatch.commitThrough) once sinks acknowledged; a
      // resolved offset only moves the fetch position (kafkajs would commit it on its own).
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.concurrency,
      eachBatch: async (p) => {
        // Draining: take no new batch (its offsets stay uncommitted; the next owner reads it).
        if (this.draining) return;
        const { batch } = p;
        const work = handler({
          cluster,
          topic: batch.topic,
          partition: batch.partition,
          highWatermark: batch.highWatermark,
          messages: toSourceMessages(cluster, batch.topic, batch.partition, batch.messages),
          resolveOffset: (o) => p.resolveOffset(o),
          commitThrough: (o) => p.commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: String(BigInt(o) + 1n) }] }] }),
          seek: (o) => this.consumer.seek({ topic: batch.topic, partition: batch.partition, offset: o }),
          generation: this.generation,
          currentGeneration: () => this.generation,
          heartbeat: () => p.heartbeat(),
          isRunning: () => p.isRunning(),
          isStale: () => p.isStale(),
          pause: () => p.pause(),
        });
        this.inflight.add(work);
        try {
          await work;
        } finally {
          this.inflight.delete(work);
        }
      },
    });
    // kafkajs's run returns once the first join is over, its crash (if any) reported. A group
    // whose coordinator it could not find may be one the ACLs deny: the broker says which.
    if (this.crashError?.name === "KafkaJSGroupCoordinatorNotFound") await this.failIfGroupRefused();
  }

  /**
   * kafkajs keeps the broker's answer out of "Failed to find group coordinator"; ask the broker
   * once (group-access.ts) and, when it refuses the group for good (an ACL denial, an invalid
   * group id), stop with its reason, which the platform's security classifier reads
   * (group-access.ts `classifySourceFailures`): the group is a setting to fix, not an outage.
   */
  private async failIfGroupRefused(): Promise<void> {
    const refused = await findCoordinatorError(this.kafka, this.options.group);
    if (!refused || (refused as { retriable?: boolean }).retriable !== false) return;
    await this.consumer.disconnect().catch(() => {});
    throw new Error(`consumer group ${this.options.group}: the broker refused it: ${refused.message}`, { cause: refused });
  }

  /**
   * Drains, then leaves: kafkajs's own stop does not wait for batches already handed to
   * eachBatch, so a batch finishing after the group was left could not commit and would be
   * read again. Pause, let in-flight batches finish and commit, then stop.
   */
  async stop(beforeLeave?: () => Promise<void>): Promise<void> {
    this.draining = true;
    if (this.assigned.length) {
      try {
        this.consumer.pause(this.assigned.map((topic) => ({ topic })));
      } catch {
        /* not running: nothing to pause */
      }
    }
    await Promise.allSettled([...this.inflight]);
    await beforeLeave?.().catch((err: unknown) => this.logger.warn({ err }, "last commits before leaving the group failed; what they cover is read again"));
    await this.consumer.stop();
    await this.consumer.disconnect();
  }

  /** Lag per partition: high watermark minus the group's committed offset. */
  async lag(): Promise<Array<{ topic: string; partition: number; lag: number }>> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      // A pattern source: the topics the group has committed offsets for.
      const committed = this.options.topics
        ? await admin.fetchOffsets({ groupId: this.options.group, topics: this.options.topics })
        : await admin.fetchOffsets({ groupId: this.options.group });
      const out: Array<{ topic: string; partition: number; lag: number }> = [];
      for (const t of committed) {
        const ends = await admin.fetchTopicOffsets(t.topic);
        for (const p of t.partitions) {
          const end = ends.find((e) => e.partition === p.partition);
          if (!end) continue;
          const high = Number(end.high);
          const low = Number(end.low);
          const at = Number(p.offset) >= 0 ? Number(p.offset) : low;
          out.push({ topic: t.topic, partition: p.partition, lag: Math.max(0, high - at) });
        }
      }
      return out;
    } finally {
      await admin.disconnect();
    }
  }
}

/** One object per message, each of the same shape: it is also the origin of the records derived from it. */
function toSourceMessages(cluster: string, topic: string, partition: number, messages: KafkaMessage[]): SourceMessage[] {
  const out = new Array<SourceMessage>(messages.length);
  // Neighbouring records mostly share their millisecond: parse each distinct timestamp once.
  let ts = "";
  let timestamp = NaN;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.timestamp !== ts) {
      ts = m.timestamp;
      timestamp = Number(ts);
    }
    out[i] = { cluster, topic, partition, offset: m.offset, timestamp, rawKey: m.key, rawValue: m.value, rawHeaders: headersToStrings(m.headers) };
  }
  return out;
}

/** Shared by every message without headers (most): one object fewer per record. Frozen: read-only. */
const NO_HEADERS: Record<string, string> = Object.freeze({});

function headersToStrings(headers: Record<string, unknown> | undefined): Record<string, string> {
  if (!headers) return NO_HEADERS;
  let out: Record<string, string> | undefined;
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    (out ??= {})[k] = Array.isArray(v) ? String(v[v.length - 1]) : Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
  }
  return out ?? NO_HEADERS;
}
