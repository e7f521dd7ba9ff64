import type { Logger } from "pino";
import type { Decoder } from "../codecs/index.ts";
import { createDecoder } from "../codecs/index.ts";
import type { SchemaCodecs } from "../codecs/registry.ts";
import { errorCode, errorMessage, isRetriable, SfError } from "../errors.ts";
import type { EngineMetrics, TopologyMetrics } from "../observability/metrics.ts";
import type { LoadedTopology } from "../topology/loader.ts";
import { groupOf, TopologyValidationError } from "../topology/loader.ts";
import type { Catalogue, SinkDef, StepDef, Topology } from "../topology/model.ts";
import { BatchAbandoned, BatchControl, backoffDelay } from "./batch-control.ts";
import type { Connections } from "./connections.ts";
import type { ComponentContext, DeadLetter, DeadLetterWriter, RecordOrigin, Sink, SinkFailure, Source, SourceBatch, SourceMessage, Step, StreamPlatform, StreamRecord, Transaction, TransactionalOutput } from "./contracts.ts";
import { runStep } from "./step-runner.ts";
import { CommitUnits, partitionOf, reachedSinks } from "./units.ts";
import type { CombiningSink, OpenUnit } from "./units.ts";

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
  private unitTimer: NodeJS.Timeout | undefined;
  private readonly units: CommitUnits;
  private readonly lastTimestamp = new Map<string, number>();
  /** Exactly-once delivery: the transactions of the output (undefined: at-least-once). */
  private txns: TransactionalOutput | undefined;
  /** Exactly-once: failed units in a row per partition (their back-off grows). */
  private readonly txnFailures = new Map<string, number>();

  constructor(loaded: LoadedTopology, deps: RunnerDeps) {
    this.loaded = loaded;
    this.topology = loaded.topology;
    this.name = loaded.topology.name;
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.logger = deps.logger.child({ topology: this.name }, this.topology.log_level ? { level: this.topology.log_level } : {});
    this.tm = deps.metrics.forTopology(this.name);
    this.dlqTopic = this.topology.errors.dlq.topic ?? `${this.name}.dlq`;
    const source = this.topology.source;
    this.units = new CommitUnits({ intervalMs: source.commit_interval_ms, maxRecords: source.commit_max_records }, () => performance.now());
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
    if (t.delivery === "exactly_once") this.txns = this.openTransactions(this.source);
    await this.source.run((batch) => this.handleBatch(batch));
    this.lagTimer = setInterval(() => void this.pollLag(), 10_000).unref();
    // a partition that went quiet still closes its unit on time
    const every = Math.max(50, Math.round(t.source.commit_interval_ms / 2));
    this.unitTimer = setInterval(() => void this.closeIdle(), every).unref();
    this.logger.info({ group: groupOf(t), topics: t.source.topics ?? t.source.pattern, sinks: t.sinks.map((s) => s.name) }, "topology started");
  }

  ready(): boolean {
    return this.source?.ready() ?? false;
  }

  /** The platform's transactions for `delivery: exactly_once`; a client that has none fails the start, naming the setting. */
  private openTransactions(source: Source): TransactionalOutput {
    const t = this.topology;
    try {
      if (!this.deps.platform.transactions) throw new Error("the stream platform offers no transactions");
      // Long enough for a unit (commit_interval_ms, slow steps); a zombie's open transaction is aborted sooner, when the partition's next owner fences it.
      const timeoutMs = Math.max(30_000, t.source.commit_interval_ms * 4);
      return this.deps.platform.transactions({ topology: this.name, source, group: groupOf(t), connection: t.source.connection, timeoutMs });
    } catch (err) {
      throw new TopologyValidationError([{ file: this.loaded.file, line: this.loaded.lineOf?.(["delivery"]), path: "delivery", message: `exactly_once cannot run: ${errorMessage(err)}` }]);
    }
  }

  /** Drains in-flight batches and commits; past the deadline, abandons them uncommitted. */
  async stop(deadlineMs = 30_000): Promise<void> {
    clearInterval(this.lagTimer);
    clearInterval(this.unitTimer);
    const timer = setTimeout(() => {
      this.logger.warn({ code: "SF_ERR_SHUTDOWN_TIMEOUT" }, "in-flight batches did not drain in time; abandoning them uncommitted");
      this.stopping.abort();
    }, deadlineMs);
    try {
      // in-flight batches drain, then every open unit closes (commits) before the group is left
      await this.source?.stop(() => this.closeIdle(true));
    } finally {
      clearTimeout(timer);
      this.stopping.abort();
    }
    await this.txns?.close().catch((err: unknown) => this.logger.warn({ err: errorMessage(err) }, "closing the transactional producers failed"));
    for (const { step } of this.steps) await step.close?.();
    for (const { sink } of this.sinks) await sink.close().catch((err) => this.logger.warn({ err: errorMessage(err) }, "sink close failed"));
    await this.dlq?.close();
    this.logger.info("topology stopped");
  }

  private decode(first: SourceMessage, messages: readonly SourceMessage[], dead: DeadLetter[]): StreamRecord[] {
    const records: StreamRecord[] = [];
    const idPrefix = `${first.topic}/${first.partition}/`;
    const idSuffix = `@${first.cluster}`;
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
    await this.units.serial(partitionOf(batch), async () => {
      const ctl = new BatchControl(batch, this.topology.errors, this.tm, this.logger, this.stopping.signal);
      try {
        await this.take(batch, ctl);
      } catch (err) {
        if (err instanceof BatchAbandoned) return;
        throw err;
      } finally {
        ctl.release();
      }
    });
    this.tm.batchDone((performance.now() - started) / 1000);
  }

  /**
   * A fetched batch goes into its partition's open unit: decode, steps and sinks in slices of
   * at most `max_batch_records`, one after the other. Slicing keeps a large fetch's records
   * short-lived: a slice's records are garbage once its sinks took them. A slice is decoded
   * and stepped while the previous slice's sink writes are in flight; its own writes start
   * only when those are acknowledged, so each sink sees the partition in order. Combining
   * sinks (`Sink.batch`) take every slice without I/O. The batch's offset is then resolved
   * (the next fetch goes on from there) but not committed: the unit is closed — combining
   * sinks flushed, dead letters written, the offset committed — once it is due
   * (`commit_interval_ms`, `commit_max_records`), so a combining sink merges many fetched
   * batches into one write while each fetch stays small.
   */
  private async take(batch: SourceBatch, ctl: BatchControl): Promise<void> {
    const unit = this.units.open(batch, (exact) => this.sinks.filter((s) => s.sink.batch).map((s) => ({ ...s, open: s.sink.batch!({ exact }), taken: 0, started: 0 })));
    if (this.txns && !unit.txn) await this.beginTransaction(unit, batch, ctl);
    const size = this.topology.source.max_batch_records;
    const all = batch.messages;
    let delivering: Promise<void> = Promise.resolve();
    // Exactly-once: any failure drops the unit with its transaction; otherwise only a stop does.
    const fail = async (err: unknown): Promise<never> => {
      if (this.txns) throw await this.failUnit(unit, ctl, err);
      throw err instanceof BatchAbandoned ? this.units.abandon(unit) : err;
    };
    for (let from = 0; from < all.length; from += size) {
      if (from > 0) {
        // Past the stop deadline, seeked or stopped: leave the rest uncommitted for the next read.
        if (this.stopping.signal.aborted || !batch.isRunning() || batch.isStale()) throw this.units.abandon(unit);
        // A long batch keeps the group membership alive; a rebalance surfaces here as kafkajs's
        // error, which its runner answers by rejoining (this batch stays uncommitted).
        await batch.heartbeat();
      }
      const messages = from === 0 && all.length <= size ? all : all.slice(from, from + size);
      const sliceDead: DeadLetter[] = [];
      const records = await this.prepareSlice(messages, ctl, sliceDead).catch(fail);
      await (this.txns ? delivering.catch(fail) : delivering);
      delivering = this.deliver(records, unit.combining, ctl, sliceDead, unit.txn).then(() => {
        for (const d of sliceDead) unit.dead.push(d);
        unit.reached.push(reachedSinks(messages, records, sliceDead));
      });
      delivering.catch(() => {}); // observed by the next await
    }
    await delivering.catch(fail);
    this.units.took(unit, batch);
    if (this.units.due(unit)) await this.close(unit, ctl);
  }

  /**
   * Closes a unit: combining sinks flush, dead letters are written, the unit's last offset is
   * committed, outcomes are counted. A combining sink that folded records away and finds a
   * replay overlapping an earlier write in part gets the unit again, record by record: the
   * partition is sought back to the unit's first offset and read in exact mode up to its last.
   */
  private async close(unit: OpenUnit, ctl: BatchControl): Promise<void> {
    let lost = 0;
    try {
      if (unit.combining.length) lost = Math.max(0, ...(await Promise.all(unit.combining.map((c) => this.flushSink(c, ctl, unit.dead, unit.exact)))));
    } catch (err) {
      if (errorCode(err) !== "SF_ERR_SINK_REPLAY_OVERLAP") throw err;
      this.logger.info({ topic: unit.batch.topic, partition: unit.batch.partition, from: unit.first, to: unit.last.offset }, "replayed records overlap an earlier write in part; reading them again record by record");
      this.units.redoExact(unit);
      return;
    }
    const dead = unit.dead;
    if (this.txns) {
      if (!unit.txn) throw this.units.abandon(unit);
      await this.commitTransaction(unit, unit.txn, ctl);
    } else if (dead.length) await ctl.untilDone("dead-letter write", () => this.dlq.send(this.dlqTopic, dead));
    if (dead.length) {
      for (const d of dead) {
        this.tm.deadLettered(d.code);
        this.logger.warn({ topic: d.origin.topic, partition: d.origin.partition, offset: d.origin.offset, code: d.code, step: d.step, dlq: this.dlqTopic }, `record sent to the DLQ: ${d.message}`);
      }
    }
    if (!this.txns) {
      await ctl.untilDone("offset commit", async () => {
        // The group rebalanced since the unit opened: its partition may be another worker's now,
        // and this worker reads from the committed offset again. Commit nothing.
        if (unit.batch.currentGeneration() !== unit.generation) throw this.units.abandon(unit);
        await unit.batch.commitThrough(unit.last.offset);
      });
    }
    this.units.closed(unit);
    // Counted once committed: a unit abandoned by a stop is counted when it is read again.
    const now = this.now();
    for (const r of unit.reached) {
      const ok = Math.max(0, r.ok - lost);
      lost -= r.ok - ok;
      this.tm.outcome("ok", ok);
      this.tm.outcome("filtered", r.filtered);
      this.tm.endToEnd(r.times, now);
    }
    this.trackLag(unit.batch, unit.last);
  }

  /**
   * Exactly-once: opens the unit's transaction. The first of a generation fences the partition's
   * earlier writers; if one of them committed after this worker read its position, the unit is
   * dropped and the partition read again from the committed offset.
   */
  private async beginTransaction(unit: OpenUnit, batch: SourceBatch, ctl: BatchControl): Promise<void> {
    let start;
    try {
      // One attempt: a failure (Kafka away, a rebalance since the fetch) drops the unit and reads it again after the back-off.
      start = await this.txns!.begin(batch);
    } catch (err) {
      throw await this.failUnit(unit, ctl, err);
    }
    if ("resumeAt" in start) {
      this.logger.info({ topic: batch.topic, partition: batch.partition, from: unit.first, resumeAt: start.resumeAt }, "an earlier owner of the partition committed after this worker read its position; reading on from its commit");
      throw this.units.abandon(unit, start.resumeAt);
    }
    unit.txn = start.transaction;
  }

  /** Exactly-once: dead letters in the unit's transaction, then its commit with the offsets; a failure drops the unit. */
  private async commitTransaction(unit: OpenUnit, txn: Transaction, ctl: BatchControl): Promise<void> {
    try {
      if (unit.dead.length) await this.dlq.send(this.dlqTopic, unit.dead, txn);
      // Rebalanced since the unit opened: commit nothing (the broker would refuse the old generation anyway).
      if (unit.batch.currentGeneration() !== unit.generation) throw this.units.abandon(unit);
      await txn.commit(unit.last.offset);
      unit.txn = undefined;
      this.txnFailures.delete(unit.key);
    } catch (err) {
      throw await this.failUnit(unit, ctl, err);
    }
  }

  /**
   * Exactly-once: a write, a dead letter or the commit of a unit failed. Nothing of it is
   * retried inside its transaction (a retried send could write twice): the transaction is
   * aborted, the unit dropped, and its records read again after a back-off.
   */
  private async failUnit(unit: OpenUnit, ctl: BatchControl, err: unknown): Promise<BatchAbandoned> {
    const abandoned = this.units.abandon(unit);
    if (err instanceof BatchAbandoned) return abandoned;
    const attempt = (this.txnFailures.get(unit.key) ?? 0) + 1;
    this.txnFailures.set(unit.key, attempt);
    const delay = backoffDelay(this.topology.errors, attempt);
    this.logger.warn(
      { topic: unit.batch.topic, partition: unit.batch.partition, from: unit.first, code: errorCode(err), attempt, retryInMs: delay },
      `exactly-once unit failed; its transaction is aborted and its records are read again: ${errorMessage(err)}`,
    );
    await ctl.sleep(delay).catch(() => {});
    return abandoned;
  }

  /** Closes every open unit that is due by age (a partition that went quiet); called by a timer. */
  private closeIdle(all = false): Promise<void> {
    return this.units.forEachDue(all, (unit) => {
      const ctl = new BatchControl(unit.batch, this.topology.errors, this.tm, this.logger, this.stopping.signal);
      return this.close(unit, ctl)
        .catch((err: unknown) => {
          if (err instanceof BatchAbandoned) this.units.abandon(unit);
          else this.logger.warn({ err: errorMessage(err), code: errorCode(err), topic: unit.batch.topic, partition: unit.batch.partition }, "closing an idle unit failed; it is read again");
        })
        .finally(() => ctl.release());
    });
  }

  /** Decode and steps for one slice of a batch; returns the records for the sinks. */
  private async prepareSlice(messages: readonly SourceMessage[], ctl: BatchControl, dead: DeadLetter[]): Promise<StreamRecord[]> {
    const { keyDecoder, valueDecoder } = this;
    if (keyDecoder.prepare || valueDecoder.prepare) {
      await ctl.untilDone("schema lookup", () => Promise.all([keyDecoder.prepare?.(messages, "rawKey"), valueDecoder.prepare?.(messages, "rawValue")]));
    }
    let records = this.decode(messages[0]!, messages, dead);
    for (const { def, step } of this.steps) {
      if (records.length === 0) break;
      records = await runStep(step, def.path, records, { ctl, policy: this.topology.errors, metrics: this.tm, dead, letter: (o, e, s, a) => this.letter(o, e, s, a) });
    }
    return records;
  }

  /** Hands a slice's records to every sink: combining sinks take them at once, the others write. */
  private async deliver(records: StreamRecord[], combining: CombiningSink[], ctl: BatchControl, dead: DeadLetter[], txn?: Transaction): Promise<void> {
    if (records.length === 0) return;
    const routed = records.some((r) => r.targets !== undefined);
    const writes: Promise<void>[] = [];
    for (const s of this.sinks) {
      const mine = routed ? records.filter((r) => (r.targets ? r.targets.includes(s.def.name) : !s.def.routedOnly)) : s.def.routedOnly ? [] : records;
      if (mine.length === 0) continue;
      const c = s.sink.batch ? combining.find((x) => x.sink === s.sink) : undefined;
      if (!c) {
        writes.push(txn ? this.writeInTransaction(s, mine, txn, dead) : this.writeSink(s, mine, ctl, dead));
        continue;
      }
      const t0 = performance.now();
      c.taken += mine.length;
      for (const f of c.open.add(mine)) dead.push(this.letter(f.origin, f.error, s.def.path, 1));
      c.started += performance.now() - t0;
    }
    await Promise.all(writes);
  }

  /** Exactly-once: one attempt, in the unit's transaction; a failure fails the unit (see `failUnit`). */
  private async writeInTransaction({ def, sink }: { def: SinkDef; sink: Sink }, mine: StreamRecord[], transaction: Transaction, dead: DeadLetter[]): Promise<void> {
    const t0 = performance.now();
    this.counted(def, mine, await this.timedWrite(def, sink, mine, { transaction }), t0, dead);
  }

  /** One sink write; a failure is counted as one (the caller decides whether to retry). */
  private async timedWrite(def: SinkDef, sink: Sink, mine: StreamRecord[], options?: Parameters<Sink["write"]>[1]): Promise<Awaited<ReturnType<Sink["write"]>>> {
    try {
      return await sink.write(mine, options);
    } catch (err) {
      this.tm.sink(def.name, mine.length, 0, false);
      throw err;
    }
  }

  /** Counts an acknowledged write since `t0` and dead-letters the records the sink refused. */
  private counted(def: SinkDef, mine: StreamRecord[], result: Awaited<ReturnType<Sink["write"]>>, t0: number, dead: DeadLetter[]): void {
    const failed = result?.failed ?? [];
    this.tm.sink(def.name, mine.length - failed.length, (performance.now() - t0) / 1000, true);
    for (const f of failed) dead.push(this.letter(f.record.origin, f.error, def.path, 1));
  }

  private async writeSink({ def, sink }: { def: SinkDef; sink: Sink }, mine: StreamRecord[], ctl: BatchControl, dead: DeadLetter[]): Promise<void> {
    let t0 = performance.now();
    try {
      const result = await ctl.untilDone(`sink ${def.name}`, () => {
        t0 = performance.now();
        return this.timedWrite(def, sink, mine);
      });
      this.counted(def, mine, result, t0, dead);
    } catch (err) {
      if (err instanceof BatchAbandoned || isRetriable(err)) throw err;
      for (const r of mine) dead.push(this.letter(r.origin, err, def.path, 1));
    }
  }

  /**
   * Writes what a combining sink took from every slice; returns how many records it could not
   * write (dead-lettered, no longer `ok`). A folded batch that fails as a whole is read again
   * in exact mode, where the sink names the records it refuses.
   */
  private async flushSink(c: CombiningSink, ctl: BatchControl, dead: DeadLetter[], exact: boolean): Promise<number> {
    if (c.taken === 0) return 0;
    const { def } = c;
    let t0 = performance.now();
    let failed: SinkFailure[];
    try {
      const result = await ctl.untilDone(`sink ${def.name}`, async () => {
        t0 = performance.now();
        try {
          return await c.open.flush();
        } catch (err) {
          this.tm.sink(def.name, c.taken, 0, false);
          throw err;
        }
      });
      failed = result?.failed ?? [];
      this.tm.sink(def.name, c.taken - failed.length, (performance.now() - t0 + c.started) / 1000, true);
    } catch (err) {
      if (err instanceof BatchAbandoned || isRetriable(err) || errorCode(err) === "SF_ERR_SINK_REPLAY_OVERLAP" || exact) throw err;
      throw new SfError("SF_ERR_SINK_REPLAY_OVERLAP", `sink ${def.name} failed a whole batch (${errorMessage(err)}); reading it again record by record`, { cause: err });
    }
    if (failed.length === 0) return 0;
    const gone = new Set<RecordOrigin>();
    for (const f of failed) {
      if (gone.has(f.origin)) continue;
      gone.add(f.origin);
      dead.push(this.letter(f.origin, f.error, def.path, 1));
    }
    return gone.size;
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
