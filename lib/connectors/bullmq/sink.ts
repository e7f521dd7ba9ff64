import { Queue } from "bullmq";
import type { JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import { SfError, errorMessage } from "../../errors.ts";
import type { ComponentContext, RecordFailure, Sink, StreamRecord } from "../../runtime/contracts.ts";
import { compileTemplate, compileValue } from "../../topology/template.ts";
import type { BullmqSinkConfig } from "./config.ts";
import { clientSecurityError } from "../redis/client.ts";
import { redisClient } from "./connection.ts";

/**
 * Makes any string a valid BullMQ custom job id, injectively: BullMQ rejects ids holding
 * ':' (its key separator) and ids that parse as integers (they clash with its own counter).
 * '%' and ':' are percent-escaped and an all-digit id gets an `id-` prefix.
 */
export function sanitizeJobId(id: string): string {
  const escaped = id.replace(/%/g, "%25").replace(/:/g, "%3A");
  return /^-?\d+$/.test(escaped) || `${parseInt(escaped, 10)}` === escaped ? `id-${escaped}` : escaped;
}

function jobOptions(o: BullmqSinkConfig["options"]): JobsOptions {
  const out: JobsOptions = {};
  if (o.attempts !== undefined) out.attempts = o.attempts;
  if (o.backoff) out.backoff = { type: o.backoff.type, delay: o.backoff.delay };
  if (o.priority !== undefined) out.priority = o.priority;
  if (o.delay !== undefined) out.delay = o.delay;
  if (o.remove_on_complete !== undefined) out.removeOnComplete = o.remove_on_complete as JobsOptions["removeOnComplete"];
  if (o.remove_on_fail !== undefined) out.removeOnFail = o.remove_on_fail as JobsOptions["removeOnFail"];
  return out;
}

/** Errors that mean "Redis is not there" rather than "Redis refused this batch". */
const CONNECTION_ERROR = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Connection is closed|Stream isn't writeable|enableOfflineQueue|MaxRetriesPerRequest|LOADING|READONLY/i;

type Job = { name: string; data: unknown; opts: JobsOptions };

/** The `bullmq` sink: one `Queue.addBulk` per batch, job ids derived from the record. */
export class BullmqSink implements Sink {
  readonly name: string;
  private readonly config: BullmqSinkConfig;
  private readonly client: Redis;
  private readonly queue: Queue;
  private readonly jobName: (r: StreamRecord) => string;
  private readonly jobId: (r: StreamRecord) => string;
  private readonly data: (r: StreamRecord) => unknown;
  private readonly opts: JobsOptions;

  constructor(config: BullmqSinkConfig, name: string, client: Redis) {
    this.name = name;
    this.config = config;
    this.client = client;
    this.queue = new Queue(config.queue, { connection: client, ...(config.prefix ? { prefix: config.prefix } : {}) });
    // The queue's own error events are connection noise already reported by write().
    this.queue.on("error", () => {});
    this.jobName = compileTemplate(config.job_name);
    this.jobId = compileTemplate(config.job_id);
    this.opts = jobOptions(config.options);
    if (config.data) {
      const fields = Object.entries(config.data).map(([k, v]) => [k, compileValue(v)] as const);
      this.data = (r) => {
        const out: Record<string, unknown> = {};
        for (const [k, get] of fields) out[k] = get(r);
        return out;
      };
    } else this.data = (r) => r.value;
  }

  async open(): Promise<void> {
    // A refused login never makes the queue ready (the client retries forever): watch the
    // client's errors too, and stop at the first one that no retry can fix.
    let onError: ((e: Error) => void) | undefined;
    try {
      if (this.client.status === "wait") await this.client.connect();
      await new Promise<void>((resolve, reject) => {
        onError = (e: Error) => void (clientSecurityError(e, this.client) && reject(e));
        this.client.on("error", onError);
        this.queue.waitUntilReady().then(() => resolve(), reject);
      });
    } catch (err) {
      const error = this.outage(err, true);
      if (!error.retriable) await this.close();
      throw error;
    } finally {
      if (onError) this.client.off("error", onError);
    }
  }

  async write(records: StreamRecord[]): Promise<{ failed?: RecordFailure[] } | void> {
    const jobs: Job[] = [];
    const failed: RecordFailure[] = [];
    for (const r of records) {
      try {
        const data = this.data(r);
        // Fail here, per record, rather than inside addBulk for the whole batch.
        JSON.stringify(data);
        jobs.push({ name: this.jobName(r), data, opts: { ...this.opts, jobId: sanitizeJobId(this.jobId(r)) } });
      } catch (err) {
        failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `record ${r.id} cannot become a job of queue ${this.config.queue}: ${errorMessage(err)}`, { cause: err, where: this.name }) });
      }
    }
    if (jobs.length > 0) {
      if (this.client.status !== "ready") throw this.outage(new Error(`Redis connection is ${this.client.status}`));
      try {
        // An existing job id is returned, not added again: a replay enqueues nothing new.
        await this.queue.addBulk(jobs);
      } catch (err) {
        if (this.client.status !== "ready" || CONNECTION_ERROR.test(errorMessage(err)) || clientSecurityError(err, this.client)) throw this.outage(err);
        throw new SfError("SF_ERR_SINK_REJECTED", `Redis refused ${jobs.length} jobs for queue ${this.config.queue}: ${errorMessage(err)}; the batch is retried`, { cause: err, where: this.name });
      }
    }
    return failed.length ? { failed } : undefined;
  }

  async health(): Promise<void> {
    await this.client.ping();
  }

  async close(): Promise<void> {
    await this.queue.close().catch(() => {});
    this.client.disconnect();
  }

  /**
   * A refused login, an ACL denial or a refused certificate keeps its code: at start it stops the
   * worker; later (a password or ACL changed on the server) the batch is retried, partition
   * paused, rather than dead-lettered. Anything else is an outage.
   */
  private outage(err: unknown, atStart = false): SfError {
    const security = clientSecurityError(err, this.client);
    if (security) return new SfError(security.code, atStart ? security.message : `${security.message}; the batch is retried`, { cause: err, where: this.name, retriable: !atStart });
    return new SfError("SF_ERR_SINK_NOT_CONNECTED", `BullMQ queue ${this.config.queue}: Redis (connection "${this.config.connection}") is unreachable (${errorMessage(err)}); the batch is retried when it is back`, { cause: err, where: this.name });
  }
}

/** Creates a `bullmq` sink (its spec, in index.ts, loads this file the first time a topology needs one). */
export function createBullmqSink(config: BullmqSinkConfig, ctx: ComponentContext): Sink {
  return new BullmqSink(config, ctx.component, redisClient(ctx.connections, config.connection, true));
}
