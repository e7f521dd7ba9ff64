/**
 * Example BullMQ receiver: a Worker that carries out the `notifications` jobs the `bullmq`
 * sink dispatches. "Sending" a notification appends it to a Redis list (observable by
 * tests and operators); a job that throws is retried by BullMQ with the attempts and
 * back-off the sink set, and one that exhausts them lands on a failed list.
 *
 * Run: `REDIS_URL=redis://127.0.0.1:6379 node workers/bullmq-receiver.ts`
 * (NOTIFICATIONS_QUEUE, BULLMQ_PREFIX, NOTIFICATIONS_CONCURRENCY optional).
 */
import { Worker } from "bullmq";
import type { Job } from "bullmq";
import { Redis } from "ioredis";
import { pathToFileURL } from "node:url";

/** A notification job's data, as a topology's `data` templates produce it. */
export interface Notification {
  to: string;
  message: string;
  channel?: string;
  [field: string]: unknown;
}

export interface NotificationWorkerOptions {
  redisUrl: string;
  queue?: string;
  /** BullMQ key prefix; must match the sink's `prefix`. */
  prefix?: string;
  concurrency?: number;
  /** Delivers one notification; throw to have BullMQ retry. Default: push to the sent list. */
  send?: (notification: Notification, job: Job) => Promise<void>;
  /** Redis list receiving each sent notification (default `<prefix>:<queue>:sent`). */
  sentList?: string;
  /** Redis list receiving jobs that exhausted their attempts (default `<prefix>:<queue>:failed-notifications`). */
  failedList?: string;
  log?: (line: Record<string, unknown>) => void;
}

export interface NotificationWorker {
  worker: Worker;
  sentList: string;
  failedList: string;
  close(): Promise<void>;
}

/** Starts the notifications worker; resolves once it is connected and taking jobs. */
export async function startNotificationWorker(options: NotificationWorkerOptions): Promise<NotificationWorker> {
  const queue = options.queue ?? "notifications";
  const prefix = options.prefix ?? "bull";
  const sentList = options.sentList ?? `${prefix}:${queue}:sent`;
  const failedList = options.failedList ?? `${prefix}:${queue}:failed-notifications`;
  const log = options.log ?? (() => {});
  // Workers block on Redis, so their connection must retry forever (maxRetriesPerRequest null).
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const store = new Redis(options.redisUrl);
  const send =
    options.send ??
    (async (n: Notification, job: Job) => {
      await store.rpush(sentList, JSON.stringify({ jobId: job.id, to: n.to, message: n.message, channel: n.channel ?? "email", sentAt: Date.now() }));
    });

  const worker = new Worker(
    queue,
    async (job: Job) => {
      const n = job.data as Notification;
      if (!n || typeof n.to !== "string" || typeof n.message !== "string") throw new Error(`job ${job.id} is not a notification (needs string \`to\` and \`message\`)`);
      await send(n, job);
      return { sent: true };
    },
    { connection: redis, prefix, concurrency: options.concurrency ?? 10, autorun: true },
  );
  worker.on("completed", (job) => log({ msg: "notification sent", jobId: job.id, attempts: job.attemptsMade }));
  worker.on("failed", (job, err) => {
    if (!job) return;
    const final = job.attemptsMade >= (job.opts.attempts ?? 1);
    log({ msg: final ? "notification failed for good" : "notification attempt failed, retrying", jobId: job.id, attempts: job.attemptsMade, error: err.message });
    if (final) void store.rpush(failedList, JSON.stringify({ jobId: job.id, data: job.data, error: err.message, attempts: job.attemptsMade }));
  });
  worker.on("error", (err) => log({ msg: "worker error", error: err.message }));
  await worker.waitUntilReady();
  return {
    worker,
    sentList,
    failedList,
    async close() {
      await worker.close();
      redis.disconnect();
      await store.quit().catch(() => store.disconnect());
    },
  };
}

async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const w = await startNotificationWorker({
    redisUrl,
    queue: process.env.NOTIFICATIONS_QUEUE ?? "notifications",
    prefix: process.env.BULLMQ_PREFIX ?? "bull",
    concurrency: Number(process.env.NOTIFICATIONS_CONCURRENCY ?? 10),
    log: (line) => console.log(JSON.stringify({ time: new Date().toISOString(), ...line })),
  });
  console.log(JSON.stringify({ msg: "notification worker started", queue: w.worker.name, sentList: w.sentList }));
  const stop = () => void w.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) void main();
