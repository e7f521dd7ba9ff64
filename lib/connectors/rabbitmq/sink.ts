import type { ChannelModel, ConfirmChannel, ConsumeMessage, Message, Options } from "amqplib";
import { SfError, errorMessage } from "../../errors.ts";
import type { ComponentContext, RecordFailure, Sink, StreamRecord } from "../../runtime/contracts.ts";
import { compileTemplate, compileValue } from "../../topology/template.ts";
import type { RabbitmqSinkConfig } from "./config.ts";
import { amqpSecurityError, amqpTarget, connectAmqp } from "./connection.ts";
import type { AmqpTarget } from "./connection.ts";
import { declareTopology } from "./declare.ts";
import { refusedCounter } from "./metrics.ts";
import { buildMessage } from "./message.ts";
import type { Outgoing } from "./message.ts";

const MAX_RECONNECT_DELAY_MS = 5_000;

/** Tally of one batch's confirms. */
interface BatchState {
  pending: number;
  nacked: number;
  unroutable: number;
  failedSample: string[];
  done: () => void;
}

/**
 * The `rabbitmq` sink: persistent messages on a confirm channel, resolved only when the
 * broker confirmed every message of the batch. Nacked or returned (unroutable) messages
 * fail the batch with SF_ERR_SINK_REJECTED; a lost connection fails it with
 * SF_ERR_SINK_NOT_CONNECTED while the sink reconnects in the background with back-off.
 */
export class RabbitmqSink implements Sink {
  readonly name: string;
  private readonly config: RabbitmqSinkConfig;
  private readonly ctx: ComponentContext;
  private readonly target: AmqpTarget;
  private readonly build: (r: StreamRecord) => Outgoing;
  private readonly refused;
  private conn: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private closed = false;
  private lastError = "not connected yet";
  /** The last reconnect was refused for security (credentials, vhost, permissions, certificate). */
  private refusal: SfError | undefined;
  /** messageId -> how many returns are waiting for their confirm. */
  private readonly returned = new Map<string, number>();

  constructor(config: RabbitmqSinkConfig, ctx: ComponentContext) {
    this.name = ctx.component;
    this.config = config;
    this.ctx = ctx;
    this.target = amqpTarget(ctx.connections, config.connection);
    const routingKey = compileTemplate(config.routing_key);
    const messageId = compileTemplate(config.message_id);
    const type = config.message_type !== undefined ? compileTemplate(config.message_type) : undefined;
    const headers = Object.entries(config.headers).map(([k, v]) => [k, compileValue(v)] as const);
    const body = config.body ? Object.entries(config.body).map(([k, v]) => [k, compileValue(v)] as const) : undefined;
    this.build = (r) => buildMessage(r, { routingKey, messageId, type, headers, body, persistent: config.persistent, mandatory: config.mandatory });
    const counter = refusedCounter(ctx.metrics);
    this.refused = { nack: counter.labels(ctx.topology, this.name, "nack"), unroutable: counter.labels(ctx.topology, this.name, "unroutable") };
  }

  async open(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      // Refused credentials, vhost, permissions or certificate: the worker does not start, and no retry helps.
      const security = amqpSecurityError(err, this.target);
      if (security) throw new SfError(security.code, security.message, { cause: err, where: this.name });
      this.scheduleReconnect();
      throw this.notConnected(err);
    }
  }

  async write(records: StreamRecord[]): Promise<{ failed?: RecordFailure[] } | void> {
    const channel = this.channel;
    if (!channel) {
      if (!this.connecting && !this.reconnectTimer && !this.closed) this.scheduleReconnect(0);
      throw this.notConnected(new Error(this.lastError));
    }
    const failed: RecordFailure[] = [];
    const out: Outgoing[] = [];
    for (const r of records) {
      try {
        out.push(this.build(r));
      } catch (err) {
        failed.push({ record: r, error: new SfError("SF_ERR_SINK_RECORD_INVALID", `record ${r.id} cannot become a message: ${errorMessage(err)}`, { cause: err, where: this.name }) });
      }
    }
    if (out.length) await this.publishAll(channel, out);
    return failed.length ? { failed } : undefined;
  }

  private async publishAll(channel: ConfirmChannel, out: Outgoing[]): Promise<void> {
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const state: BatchState = { pending: out.length, nacked: 0, unroutable: 0, failedSample: [], done: resolveDone };
    for (const m of out) {
      if (this.channel !== channel) break;
      const ok = channel.publish(this.config.exchange, m.routingKey, m.content, m.options, (err) => this.confirmed(state, m.options, err));
      // Back-pressure: the socket buffer is full; wait until it drains (or the channel dies).
      if (!ok && this.channel === channel) await this.drained(channel);
    }
    if (this.channel !== channel && state.pending > 0) throw this.notConnected(new Error(this.lastError));
    // Whatever happens to the channel, stop waiting: amqplib fails pending confirms on close,
    // and the timeout guards against a broker that never answers.
    const timer = setTimeout(() => {
      this.lost(channel, new Error(`no confirms within ${this.config.confirm_timeout_ms} ms`));
      resolveDone();
    }, this.config.confirm_timeout_ms);
    channel.once("close", resolveDone);
    try {
      await done;
    } finally {
      clearTimeout(timer);
      channel.off("close", resolveDone);
    }
    if (this.channel !== channel) throw this.notConnected(new Error(this.lastError));
    if (state.nacked || state.unroutable) {
      this.refused.nack.inc(state.nacked);
      this.refused.unroutable.inc(state.unroutable);
      const what = `${state.nacked} refused by the broker (nack: queue full with reject-publish?) and ${state.unroutable} unroutable (no queue bound to exchange "${this.config.exchange}" for the routing key)`;
      this.ctx.logger.warn({ sink: this.name, nacked: state.nacked, unroutable: state.unroutable, sample: state.failedSample }, "rabbitmq refused messages; the batch will be retried");
      throw new SfError("SF_ERR_SINK_REJECTED", `RabbitMQ did not take ${state.nacked + state.unroutable} of ${out.length} messages: ${what}; e.g. ${state.failedSample.join(", ")}. The batch is retried`, { where: this.name });
    }
  }

  private confirmed(state: BatchState, options: Options.Publish, err: unknown): void {
    const id = options.messageId ?? "";
    const returns = this.returned.get(id);
    if (err) {
      state.nacked++;
      if (state.failedSample.length < 3) state.failedSample.push(`${id} (nack)`);
    } else if (returns) {
      // The broker sends basic.return before the basic.ack of the same message.
      if (returns === 1) this.returned.delete(id);
      else this.returned.set(id, returns - 1);
      state.unroutable++;
      if (state.failedSample.length < 3) state.failedSample.push(`${id} (unroutable)`);
    }
    if (--state.pending === 0) state.done();
  }

  private onReturn(msg: Message | ConsumeMessage): void {
    const id = String(msg.properties.messageId ?? "");
    this.returned.set(id, (this.returned.get(id) ?? 0) + 1);
  }

  private drained(channel: ConfirmChannel): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        channel.off("drain", finish);
        channel.off("close", finish);
        resolve();
      };
      channel.once("drain", finish);
      channel.once("close", finish);
    });
  }

  private connect(): Promise<void> {
    this.connecting ??= (async () => {
      const conn = await connectAmqp(this.target, `streamfleet ${this.ctx.topology} ${this.name}`);
      try {
        // A mismatched declaration closes its channel, so declare on a throw-away one.
        const declaring = await conn.createChannel();
        await declareTopology(declaring, this.config.declare);
        await declaring.close();
        const channel = await conn.createConfirmChannel();
        channel.on("return", (msg: Message) => this.onReturn(msg));
        channel.on("error", (err: Error) => (this.lastError = err.message));
        channel.on("close", () => this.lost(channel, new Error("the channel closed (broker stopped, connection lost or channel error)")));
        conn.on("error", (err: Error) => (this.lastError = err.message));
        conn.on("close", () => this.lost(channel, new Error("the connection closed")));
        this.conn = conn;
        this.channel = channel;
        this.attempts = 0;
        this.ctx.logger.info({ sink: this.name, broker: this.target.display }, "rabbitmq connected");
      } catch (err) {
        await conn.close().catch(() => {});
        throw err;
      }
    })().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** The channel or its connection died: forget them and reconnect with back-off. */
  private lost(channel: ConfirmChannel, err: Error): void {
    if (this.channel !== channel) return;
    this.channel = undefined;
    this.lastError = err.message;
    const conn = this.conn;
    this.conn = undefined;
    this.returned.clear();
    void conn?.close().catch(() => {});
    if (!this.closed) {
      this.ctx.logger.warn({ sink: this.name, broker: this.target.display, reason: err.message }, "rabbitmq connection lost; reconnecting");
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(delay?: number): void {
    if (this.closed || this.reconnectTimer) return;
    const wait = delay ?? Math.min(100 * 2 ** this.attempts++, MAX_RECONNECT_DELAY_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().then(
        () => (this.refusal = undefined),
        (e: unknown) => {
          this.refusal = amqpSecurityError(e, this.target);
          this.lastError = this.refusal?.message ?? errorMessage(e);
          this.scheduleReconnect();
        },
      );
    }, wait);
    this.reconnectTimer.unref();
  }

  async health(): Promise<void> {
    if (!this.channel) throw this.notConnected(new Error(this.lastError));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    await this.connecting?.catch(() => {});
    const conn = this.conn;
    this.channel = undefined;
    this.conn = undefined;
    await conn?.close().catch(() => {});
  }

  private notConnected(err: unknown): SfError {
    // After a successful start, a refused reconnect keeps its code and says what to check; the
    // partition stays paused and retries (no record is dead-lettered for a credential problem).
    if (this.refusal) return new SfError(this.refusal.code, `${this.refusal.message}; the sink reconnects and the batch is retried`, { cause: err, where: this.name, retriable: true });
    return new SfError("SF_ERR_SINK_NOT_CONNECTED", `RabbitMQ at ${this.target.display} (connection "${this.config.connection}") is unreachable: ${errorMessage(err)}; the sink reconnects and the batch is retried`, { cause: err, where: this.name });
  }
}

/** Creates a `rabbitmq` sink (its spec, in index.ts, loads this file the first time a topology needs one). */
export function createRabbitmqSink(config: RabbitmqSinkConfig, ctx: ComponentContext): Sink {
  return new RabbitmqSink(config, ctx);
}
