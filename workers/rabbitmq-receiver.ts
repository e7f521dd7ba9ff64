/**
 * Example RabbitMQ receiver: consumes training-job requests that the `rabbitmq` sink
 * dispatched, runs a training-job stand-in, and reports a `model_training_completed` event
 * through the `report` function it is given (the fleet plugs a Kafka producer in there;
 * this file stays free of Kafka). A request that fails is re-queued with a retry count in
 * the `x-sf-retries` header; after `maxRetries` it is rejected without requeue, so the
 * queue's dead-letter exchange receives it.
 *
 * Run: `AMQP_URL=amqp://guest:guest@127.0.0.1:5672 TRAINING_QUEUE=training.requests node workers/rabbitmq-receiver.ts`
 * (reports are printed as JSON lines).
 */
import amqp from "amqplib";
import type { Channel, ConsumeMessage } from "amqplib";
import crypto from "node:crypto";
import { pathToFileURL } from "node:url";

/** A training request, as a topology's body templates produce it. */
export interface TrainingRequest {
  model: string;
  dataset?: string;
  epochs?: number;
  [field: string]: unknown;
}

/** The event reported back when a training job finished. */
export interface ModelTrainingCompleted {
  type: "model_training_completed";
  request_id: string;
  model: string;
  dataset: string | null;
  metrics: { accuracy: number; loss: number };
  duration_ms: number;
  completed_at: number;
}

export interface TrainingReceiverOptions {
  amqpUrl: string;
  /** amqplib socket options: the TLS CA (and client certificate) of an amqps:// broker. */
  socketOptions?: Record<string, unknown>;
  queue: string;
  /** Reports the completed event (e.g. produces it to Kafka); a throw retries the request. */
  report: (event: ModelTrainingCompleted) => Promise<void> | void;
  /** The training job; default: a stand-in that waits a little and scores the model. */
  train?: (request: TrainingRequest) => Promise<{ accuracy: number; loss: number }>;
  maxRetries?: number;
  prefetch?: number;
  log?: (line: Record<string, unknown>) => void;
}

export interface TrainingReceiver {
  close(): Promise<void>;
}

/** Stand-in for a real training job: deterministic scores from the request, a short wait. */
export async function trainStandIn(request: TrainingRequest): Promise<{ accuracy: number; loss: number }> {
  if (typeof request.model !== "string" || request.model === "") throw new Error("training request has no model");
  await new Promise((r) => setTimeout(r, Math.min(5 * (request.epochs ?? 1), 200)));
  const h = crypto.createHash("sha256").update(`${request.model}/${request.dataset ?? ""}`).digest();
  const accuracy = 0.7 + (h[0]! / 255) * 0.29;
  return { accuracy: Number(accuracy.toFixed(4)), loss: Number((1 - accuracy).toFixed(4)) };
}

/** Starts consuming `queue`; resolves once the consumer is registered. */
export async function startTrainingReceiver(options: TrainingReceiverOptions): Promise<TrainingReceiver> {
  const maxRetries = options.maxRetries ?? 3;
  const train = options.train ?? trainStandIn;
  const log = options.log ?? (() => {});
  const conn = await amqp.connect(options.amqpUrl, { ...options.socketOptions, clientProperties: { connection_name: "streamfleet training receiver" } });
  // Unacked requests return to the queue when the connection drops; a supervisor restarts us.
  conn.on("error", (err: Error) => log({ msg: "amqp connection error", error: err.message }));
  const channel: Channel = await conn.createChannel();
  await channel.prefetch(options.prefetch ?? 5);

  async function handle(msg: ConsumeMessage): Promise<void> {
    const requestId = String(msg.properties.messageId ?? msg.fields.deliveryTag);
    const started = Date.now();
    try {
      const request = JSON.parse(msg.content.toString("utf8")) as TrainingRequest;
      const metrics = await train(request);
      await options.report({
        type: "model_training_completed",
        request_id: requestId,
        model: request.model,
        dataset: request.dataset ?? null,
        metrics,
        duration_ms: Date.now() - started,
        completed_at: Date.now(),
      });
      channel.ack(msg);
      log({ msg: "training completed", requestId, model: request.model });
    } catch (err) {
      const retries = Number(msg.properties.headers?.["x-sf-retries"] ?? 0);
      const reason = err instanceof Error ? err.message : String(err);
      if (retries < maxRetries) {
        // Re-queue at the back with the count, so a poison request cannot spin forever.
        channel.sendToQueue(options.queue, msg.content, { ...msg.properties, headers: { ...msg.properties.headers, "x-sf-retries": retries + 1, "x-sf-last-error": reason } });
        channel.ack(msg);
        log({ msg: "training failed, retrying", requestId, retries: retries + 1, error: reason });
      } else {
        channel.nack(msg, false, false); // -> the queue's dead-letter exchange
        log({ msg: "training failed for good, dead-lettered", requestId, retries, error: reason });
      }
    }
  }

  const { consumerTag } = await channel.consume(options.queue, (msg) => {
    if (msg) void handle(msg);
  });
  return {
    async close() {
      await channel.cancel(consumerTag).catch(() => {});
      await conn.close().catch(() => {});
    },
  };
}

async function main(): Promise<void> {
  const receiver = await startTrainingReceiver({
    amqpUrl: process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672",
    queue: process.env.TRAINING_QUEUE ?? "training.requests",
    report: (event) => console.log(JSON.stringify(event)),
    log: (line) => console.error(JSON.stringify({ time: new Date().toISOString(), ...line })),
  });
  const stop = () => void receiver.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) void main();
