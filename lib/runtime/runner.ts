import type { Logger } from "pino";
import type { Decoder } from "../codecs/index.ts";
import { createDecoder } from "../codecs/index.ts";
import type { SchemaCodecs } from "../codecs/registry.ts";
import { errorCode, errorMessage, isRetriable } from "../errors.ts";
import type { EngineMetrics, TopologyMetrics } from "../observability/metrics.ts";
import type { LoadedTopology } from "../topology/loader.ts";
import { groupOf } from "../topology/loader.ts";
import type { Catalogue, SinkDef, StepDef, Topology } from "../topology/model.ts";
import { BatchAbandoned, BatchControl } from "./batch-control.ts";
import type { Connections } from "./connections.ts";
import type { ComponentContext, DeadLetter, DeadLetterWriter, RecordOrigin, Sink, Source, SourceBatch, SourceMessage, Step, StreamPlatform, StreamRecord } from "./contracts.ts";
import { runStep } from "./step-runner.ts";

export interface RunnerDeps {
  platform: StreamPlatform;
  catalogue: Catalogue;
  connections: Connections;
  codecs: SchemaCodecs;
  metrics: EngineMetrics;
  logger: Logger;
  now?: () => number;
}

/**
 * One topology: its consumer group, decoders, steps and sinks. A batch's offsets are
 * committed only after every sink acknowledged it and every poison record is in the DLQ.
 */
export class TopologyRunner {
  readonly name: string;
  readonly topology: Readonly<Topology>;
  readonly dlqTopic: string;
  private readonly loaded: LoadedTopology;
  private readonly deps: RunnerDeps;
  private readonly logger: Logger;
  private readonly tm: TopologyMetrics;
  private readonly stopping = new AbortController();
  private readonly now: () => number;
  private steps: { def: StepDef; step: Step }[] = [];
  private sinks: { def: SinkDef; sink: Sink }[] = [];
  private keyDecoder!: Decoder;
  private valueDecoder!: Decoder;
  private dlq!: DeadLetterWriter;
  private source: Source | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private readonly lastTimestamp = new Map<string, number>();

  constructor(loaded: LoadedTopology, deps: RunnerDeps) {
    this.loaded = loaded;
    this.topology = loaded.topology;
    this.name = loaded.topology.name;
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.logger = deps.logger.child({ topology: this.name }, this.topology.log_level ? { level: this.topology.log_level } : {});
    this.tm = deps.metrics.forTopology(this.name);
    this.dlqTopic = this.topology.errors.dlq.topic ?? `${this.name}.dlq`;
  }

  private context(component: string): ComponentContext {
    return {
      topology: this.name,
      component,
      logger: this.logger.child({ component }),
      metrics: this.deps.metrics,
      connections: this.deps.connections,
      codecs: this.deps.codecs,
      baseDir: this.loaded.baseDir,
      signal: this.stopping.signal,
      now: this.now,
    };
  }

  /** Builds decoders, steps and sinks (connecting them), then joins the consumer group. */
  async start(): Promise<void> {
    const t = this.topology;
    const firstTopic = t.source.topics?.[0] ?? this.name;
    const opts = { codecs: this.deps.codecs, baseDir: this.loaded.baseDir };
    this.keyDecoder = await createDecoder(t.codec.key, { ...opts, defaultSubject: `${firstTopic}-key` });
    this.valueDecoder = await createDecoder(t.codec.value, { ...opts, defaultSubject: `${firstTopic}-value` });
    for (const def of t.steps) {
      const step = await this.deps.catalogue.steps.get(def.kind)!.create(def.config, this.context(def.path));
      await step.open?.();
      this.steps.push({ def, step });
    }
    for (const def of t.sinks) {
      const sink = await this.deps.catalogue.sinks.get(def.type)!.create(def.config, this.context(def.name));
      await sink.open?.();
      this.sinks.push({ def, sink });
    }
    this.dlq = this.deps.platform.deadLetters(this.context("dlq"));
    await this.deps.platform.ensureTopics([this.dlqTopic, ...(t.source.topics ?? [])]);
    this.source = this.deps.platform.source(
      {
        topology: this.name,
        connection: t.source.connection,
        topics: t.source.topics ? [...t.source.topics] : undefined,
        pattern: t.source.pattern,
        group: groupOf(t),
        fromBeginning: t.source.start === "earliest",
        concurrency: t.source.concurrency,
        sessionTimeoutMs: t.source.session_timeout_ms,
      },
      this.context("source"),
    );
    await this.source.run((batch) => this.handleBatch(batch));
    this.lagTimer = setInterval(() => void this.pollLag(), 10_000).unref();
    this.logger.info({ group: groupOf(t), topics: t.source.topics ?? t.source.pattern, sinks: t.sinks.map((s) => s.name) }, "topology started");
  }

  ready(): boolean {
    return this.source?.ready() ?? false;
  }

  /** Drains in-flight batches and commits; past the deadline, abandons them uncommitted. */
  async stop(deadlineMs = 30_000): Promise<void> {
    clearInterval(this.lagTimer);
    const timer = setTimeout(() => {
      this.logger.warn({ code: "SF_ERR_SHUTDOWN_TIMEOUT" }, "in-flight batches did not drain in time; abandoning them uncommitted");
      this.stopping.abort();
    }, deadlineMs);
    try {
      await this.source?.stop();
    } finally {
      clearTimeout(timer);
      this.stopping.abort();
    }
    for (const { step } of this.steps) await step.close?.();
    for (const { sink } of this.sinks) await sink.close().catch((err) => this.logger.warn({ err: errorMessage(err) }, "sink close failed"));
    await this.dlq?.close();
    this.logger.info("topology stopped");
  }

  private decode(batch: SourceBatch, messages: readonly SourceMessage[], dead: DeadLetter[]): StreamRecord[] {
    const records: StreamRecord[] = [];
    const idPrefix = `${batch.topic}/${batch.partition}/`;
    const idSuffix = `@${batch.cluster}`;
    const keyDecoder = this.keyDecoder;
    const valueDecoder = this.valueDecoder;
    for (const m of messages) {
      try {
        const key = keyDecoder.decode(m.rawKey);
        const value = valueDecoder.decode(m.rawValue);
        records.push({ key, value, headers: m.rawHeaders, origin: m, id: idPrefix + m.offset + idSuffix, targets: undefined });
      } catch (err) {
        dead.push(this.letter(m, err, "codec", 1));
      }
    }
    return records;
  }

  private letter(origin: RecordOrigin, err: unknown, step: string, attempts: number): DeadLetter {
    return { origin, code: errorCode(err), message: errorMessage(err), step, topology: this.name, attempts };
  }

  private async handleBatch(batch: SourceBatch): Promise<void> {
    if (batch.messages.length === 0 || !batch.isRunning() || batch.isStale()) return;
    const started = performance.now();
    this.tm.consumed(batch.topic, batch.messages.length);
    const ctl = new BatchControl(batch, this.topology.errors, this.tm, this.logger, this.stopping.signal);
    try {
      await this.process(batch, ctl);
    } catch (err) {
      if (err instanceof BatchAbandoned) return;
      throw err;
    } finally {
      ctl.release();
    }
    this.tm.batchDone((performance.now() - started) / 1000);
  }

  /**
   * A batch goes through decode, steps and sinks in slices of at most `max_batch_records`, one
   * after the other (per-partition order holds); its dead letters are written and its offset
   * committed once, after the last slice. Slicing keeps a large fetch's records short-lived:
   * a slice's records are garbage once its sinks acknowledged it, not at the batch's commit.
   */
  private async process(batch: SourceBatch, ctl: BatchControl): Promise<void> {
    const dead: DeadLetter[] = [];
    const size = this.topology.source.max_batch_records;
    const all = batch.messages;
    const reached: Reached[] = [];
    for (let from = 0; from < all.length; from += size) {
      if (from > 0) {
        // Past the stop deadline, seeked or stopped: leave the rest uncommitted for the next read.
        if (this.stopping.signal.aborted || !batch.isRunning() || batch.isStale()) throw new BatchAbandoned();
        // A long batch keeps the group membership alive; a rebalance surfaces here as kafkajs's
        // error, which its runner answers by rejoining (this batch stays uncommitted).
        await batch.heartbeat();
      }
      const messages = from === 0 && all.length <= size ? all : all.slice(from, from + size);
      const deadBefore = dead.length;
      const records = await this.processSlice(batch, messages, ctl, dead);
      reached.push(reachedSinks(messages, records, dead, deadBefore));
    }
    if (dead.length) {
      await ctl.untilDone("dead-letter write", () => this.dlq.send(this.dlqTopic, dead));
      for (const d of dead) {
        this.tm.deadLettered(d.code);
        this.logger.warn({ topic: d.origin.topic, partition: d.origin.partition, offset: d.origin.offset, code: d.code, step: d.step, dlq: this.dlqTopic }, `record sent to the DLQ: ${d.message}`);
      }
    }
    const last = all[all.length - 1]!;
    batch.resolveOffset(last.offset);
    await ctl.untilDone("offset commit", () => batch.commit());
    // Counted once committed: a batch abandoned by a stop is counted when it is read again.
    const now = this.now();
    for (const r of reached) {
      this.tm.outcome("ok", r.ok.length);
      this.tm.outcome("filtered", r.filtered);
      this.tm.endToEnd(r.ok, now);
    }
    this.trackLag(batch, last);
  }

  /** Decode, steps and sinks for one slice of a batch; returns the records the sinks took. */
  private async processSlice(batch: SourceBatch, messages: readonly SourceMessage[], ctl: BatchControl, dead: DeadLetter[]): Promise<StreamRecord[]> {
    const { keyDecoder, valueDecoder } = this;
    if (keyDecoder.prepare || valueDecoder.prepare) {
      await ctl.untilDone("schema lookup", () => Promise.all([keyDecoder.prepare?.(messages, "rawKey"), valueDecoder.prepare?.(messages, "rawValue")]));
    }
    let records = this.decode(batch, messages, dead);
    for (const { def, step } of this.steps) {
      if (records.length === 0) break;
      records = await runStep(step, def.path, records, { ctl, policy: this.topology.errors, metrics: this.tm, dead, letter: (o, e, s, a) => this.letter(o, e, s, a) });
    }
    const routed = records.some((r) => r.targets !== undefined);
    await Promise.all(this.sinks.map((s) => this.writeSink(s, records, routed, ctl, dead)));
    return records;
  }

  private async writeSink({ def, sink }: { def: SinkDef; sink: Sink }, records: StreamRecord[], routed: boolean, ctl: BatchControl, dead: DeadLetter[]): Promise<void> {
    // No record routed: every sink that is not routed_only takes the whole batch, no copy.
    const mine = routed ? records.filter((r) => (r.targets ? r.targets.includes(def.name) : !def.routedOnly)) : def.routedOnly ? [] : records;
    if (mine.length === 0) return;
    let t0 = performance.now();
    try {
      const result = await ctl.untilDone(`sink ${def.name}`, async () => {
        t0 = performance.now();
        try {
          return await sink.write(mine);
        } catch (err) {
          this.tm.sink(def.name, mine.length, 0, false);
          throw err;
        }
      });
      const failed = result?.failed ?? [];
      this.tm.sink(def.name, mine.length - failed.length, (performance.now() - t0) / 1000, true);
      for (const f of failed) dead.push(this.letter(f.record.origin, f.error, def.path, 1));
    } catch (err) {
      if (err instanceof BatchAbandoned || isRetriable(err)) throw err;
      for (const r of mine) dead.push(this.letter(r.origin, err, def.path, 1));
    }
  }

  private trackLag(batch: SourceBatch, last: SourceMessage): void {
    const now = this.now();
    const lag = Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1);
    this.lastTimestamp.set(`${batch.topic}/${batch.partition}`, last.timestamp);
    this.tm.setLag(batch.topic, batch.partition, lag, lag > 0 ? Math.max(0, (now - last.timestamp) / 1000) : 0);
  }

  private async pollLag(): Promise<void> {
    try {
      const lags = (await this.source?.lag?.()) ?? [];
      const now = this.now();
      for (const l of lags) {
        const ts = this.lastTimestamp.get(`${l.topic}/${l.partition}`);
        this.tm.setLag(l.topic, l.partition, l.lag, l.lag > 0 && ts !== undefined ? Math.max(0, (now - ts) / 1000) : 0);
      }
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, "lag poll failed");
    }
  }
}

/** Of a slice's messages: those that reached the sinks, and how many a step filtered out (the rest went to the DLQ). */
interface Reached {
  ok: readonly SourceMessage[];
  filtered: number;
}

function reachedSinks(messages: readonly SourceMessage[], records: readonly StreamRecord[], dead: readonly DeadLetter[], deadBefore: number): Reached {
  // The common slice: every message reached the sinks as exactly one record.
  if (dead.length === deadBefore && oneToOne(messages, records)) return { ok: messages, filtered: 0 };
  const dlq = new Set<string>();
  for (let i = deadBefore; i < dead.length; i++) dlq.add(dead[i]!.origin.offset);
  const took = new Set(records.map((r) => r.origin.offset));
  const ok: SourceMessage[] = [];
  let filtered = 0;
  for (const m of messages) {
    if (dlq.has(m.offset)) continue;
    if (took.has(m.offset)) ok.push(m);
    else filtered++;
  }
  return { ok, filtered };
}

/** True when records are the batch's messages one for one, in order (none filtered, none fanned out). */
function oneToOne(messages: readonly SourceMessage[], records: readonly StreamRecord[]): boolean {
  if (records.length !== messages.length) return false;
  for (let i = 0; i < records.length; i++) if (records[i]!.origin !== messages[i]) return false;
  return true;
}
