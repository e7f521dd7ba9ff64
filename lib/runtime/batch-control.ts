import type { Logger } from "pino";
import { errorCode, errorMessage, isRetriable } from "../errors.ts";
import type { TopologyMetrics } from "../observability/metrics.ts";
import type { SourceBatch } from "./contracts.ts";

/** Thrown when a batch is abandoned because the topology stops; its offsets stay uncommitted. */
export class BatchAbandoned extends Error {
  constructor() {
    super("batch abandoned: topology is stopping");
  }
}

export interface BackoffPolicy {
  backoff_ms: number;
  max_backoff_ms: number;
}

/** Exponential back-off with full jitter, capped. */
export function backoffDelay(policy: BackoffPolicy, attempt: number): number {
  const ceiling = Math.min(policy.max_backoff_ms, policy.backoff_ms * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/**
 * Retries of one batch in one place: an outage (a retriable throw from a sink, a step or the
 * registry) pauses the partition, backs off with heartbeats, and tries again, until it works
 * or the topology stops. Nothing is skipped; a stop abandons the batch uncommitted.
 */
export class BatchControl {
  private readonly batch: SourceBatch;
  private readonly policy: BackoffPolicy;
  private readonly metrics: TopologyMetrics;
  private readonly logger: Logger;
  private readonly stopping: AbortSignal;
  private resume: (() => void) | undefined;

  constructor(batch: SourceBatch, policy: BackoffPolicy, metrics: TopologyMetrics, logger: Logger, stopping: AbortSignal) {
    this.batch = batch;
    this.policy = policy;
    this.metrics = metrics;
    this.logger = logger;
    this.stopping = stopping;
  }

  private get stopped(): boolean {
    return this.stopping.aborted || !this.batch.isRunning();
  }

  /** Sleeps (heartbeating) unless the topology stops first. */
  async sleep(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (this.stopped) throw new BatchAbandoned();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(1000, until - Date.now()));
        this.stopping.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      });
      await this.batch.heartbeat().catch(() => {});
    }
    if (this.stopped) throw new BatchAbandoned();
  }

  /** Runs fn until it succeeds; non-retriable errors are rethrown for the caller to dead-letter. */
  async untilDone<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await fn();
        this.release();
        return result;
      } catch (err) {
        if (err instanceof BatchAbandoned || !isRetriable(err)) {
          this.release();
          throw err;
        }
        if (this.stopped) {
          this.release();
          throw new BatchAbandoned();
        }
        if (!this.resume) {
          this.resume = this.batch.pause();
          this.metrics.pausedPartitions(1);
        }
        const delay = backoffDelay(this.policy, attempt);
        this.logger.warn(
          { topic: this.batch.topic, partition: this.batch.partition, offset: this.batch.messages[0]?.offset, code: errorCode(err), attempt, retryInMs: delay },
          `${what} failed, partition paused, retrying: ${errorMessage(err)}`,
        );
        await this.sleep(delay);
      }
    }
  }

  /** Resumes the partition if this batch paused it. */
  release(): void {
    if (this.resume) {
      this.resume();
      this.resume = undefined;
      this.metrics.pausedPartitions(-1);
    }
  }
}
