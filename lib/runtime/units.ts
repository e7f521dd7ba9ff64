/**
 * Commit units: what a partition has taken since its last commit. A unit spans one or more
 * fetched batches; their offsets are resolved as they are taken (the next fetch goes on) and
 * committed together when the unit closes, after every sink acknowledged them. Small
 * fetches keep memory bounded; while a partition has a backlog, a unit spanning many of
 * them lets a combining sink merge a lot into one write (Kafka Streams' commit interval,
 * with the same guarantee: nothing is committed that a sink has not acknowledged); once
 * the partition is caught up, every fetch commits at once.
 */
import { BatchAbandoned } from "./batch-control.ts";
import type { DeadLetter, Sink, SinkBatch, SourceBatch, SourceMessage, StreamRecord, Transaction } from "./contracts.ts";
import type { SinkDef } from "../topology/model.ts";

/**
 * Of a slice's messages: how many reached the sinks (with their Kafka timestamps, for the
 * end-to-end latency) and how many a step filtered out (the rest went to the DLQ). Counts
 * and numbers only: a unit must not keep its messages (and their fetched bytes) alive.
 */
export interface Reached {
  ok: number;
  times: number[];
  filtered: number;
  /** Offsets that reached the sinks, kept only for a slice that dead-lettered or filtered some. */
  offsets?: Set<string>;
}

/** A combining sink during one unit: how many records it took and the time `add` spent. */
export interface CombiningSink {
  def: SinkDef;
  sink: Sink;
  open: SinkBatch;
  taken: number;
  started: number;
}

/** What one partition has taken since its last commit. */
export interface OpenUnit {
  readonly key: string;
  /** The source's group generation it was opened in: a rebalance makes it void (its records are fetched again). */
  readonly generation: number;
  /** Every record kept (after a replay overlapped an earlier write in part): closed after each batch. */
  readonly exact: boolean;
  /** The partition's first unit since it was assigned: closed after its first batch, so output and the first commit come at once. */
  readonly firstOfGeneration: boolean;
  readonly combining: CombiningSink[];
  readonly dead: DeadLetter[];
  readonly reached: Reached[];
  /**
   * Offset of the unit's first record; the last record taken (its position only, once taken);
   * the latest batch (commit, seek, heartbeat; once taken, its handle without its messages).
   */
  readonly first: string;
  last: SourceMessage;
  batch: SourceBatch;
  records: number;
  readonly opened: number;
  /** The last batch reached the partition's end as fetched (nothing more to take right now). */
  caughtUp: boolean;
  /** Exactly-once: the transaction its writes and its commit go in (aborted if the unit is dropped). */
  txn?: Transaction;
}

export interface UnitLimits {
  /** Close a unit this long after it opened. */
  intervalMs: number;
  /** Close a unit once it holds this many records. */
  maxRecords: number;
}

export function partitionOf(b: { topic: string; partition: number }): string {
  return `${b.topic}/${b.partition}`;
}

export class CommitUnits {
  private readonly limits: UnitLimits;
  private readonly now: () => number;
  private readonly units = new Map<string, OpenUnit>();
  private readonly chains = new Map<string, Promise<void>>();
  /** Per partition: read in exact mode up to this offset (a replay overlapped an earlier write in part). */
  private readonly exactUntil = new Map<string, bigint>();
  /** Per partition: the generation of its last closed unit. */
  private readonly closedIn = new Map<string, number>();

  constructor(limits: UnitLimits, now: () => number) {
    this.limits = limits;
    this.now = now;
  }

  /** Runs fn after everything queued for the partition: batches and idle closes never interleave. */
  serial(key: string, fn: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(key) ?? Promise.resolve()).then(fn);
    const settled = next.catch(() => {});
    this.chains.set(key, settled);
    void settled.then(() => {
      if (this.chains.get(key) === settled) this.chains.delete(key);
    });
    return next;
  }

  /** The partition's open unit for this batch, opened if there is none (or the group rebalanced since). */
  open(batch: SourceBatch, combining: (exact: boolean) => CombiningSink[]): OpenUnit {
    const key = partitionOf(batch);
    const current = this.units.get(key);
    if (current && current.generation === batch.generation) return current;
    if (current) dropTransaction(current);
    const first = batch.messages[0]!;
    const until = this.exactUntil.get(key);
    const exact = until !== undefined && BigInt(first.offset) <= until;
    if (until !== undefined && !exact) this.exactUntil.delete(key);
    const fresh = this.closedIn.get(key) !== batch.generation;
    const unit: OpenUnit = { key, generation: batch.generation, exact, firstOfGeneration: fresh, combining: combining(exact), dead: [], reached: [], first: first.offset, last: first, batch, records: 0, opened: this.now(), caughtUp: false };
    this.units.set(key, unit);
    return unit;
  }

  /** The batch is in the unit: its offset is resolved, so the next fetch goes on after it. */
  took(unit: OpenUnit, batch: SourceBatch): void {
    const last = batch.messages[batch.messages.length - 1]!;
    batch.resolveOffset(last.offset);
    // The unit outlives the batch (until its commit): it keeps the batch's handle and the last
    // record's position, not the messages, whose bytes are views of the whole fetch response.
    unit.last = positionOf(last);
    unit.batch = batch.messages.length ? { ...batch, messages: [] } : batch;
    unit.records += batch.messages.length;
    unit.caughtUp = BigInt(last.offset) + 1n >= BigInt(batch.highWatermark);
  }

  /**
   * A unit closes after its first batch since assignment, in exact mode after each batch,
   * once the partition is caught up (waiting would only delay what is there: a stream that
   * keeps up commits every fetch, a backlog fills units), and otherwise by records or age.
   */
  due(unit: OpenUnit): boolean {
    return unit.exact || unit.firstOfGeneration || unit.caughtUp || unit.records >= this.limits.maxRecords || this.now() - unit.opened >= this.limits.intervalMs;
  }

  /** Drops a unit uncommitted (its transaction aborted); its records are fetched again from its first offset, or `from`. */
  abandon(unit: OpenUnit, from = unit.first): BatchAbandoned {
    if (this.units.get(unit.key) === unit) this.units.delete(unit.key);
    dropTransaction(unit);
    unit.batch.seek(from);
    return new BatchAbandoned();
  }

  /** Drops a unit uncommitted and reads its records again, every record kept. */
  redoExact(unit: OpenUnit): void {
    this.exactUntil.set(unit.key, BigInt(unit.last.offset));
    this.abandon(unit);
  }

  closed(unit: OpenUnit): void {
    if (this.units.get(unit.key) === unit) this.units.delete(unit.key);
    this.closedIn.set(unit.key, unit.generation);
  }

  /** Runs fn on every open unit that is due by age (every one when `all`), each in its partition's turn. */
  async forEachDue(all: boolean, fn: (unit: OpenUnit) => Promise<void>): Promise<void> {
    const due = [...this.units.values()].filter((u) => all || this.now() - u.opened >= this.limits.intervalMs);
    await Promise.all(
      due.map((u) =>
        this.serial(u.key, async () => {
          if (this.units.get(u.key) === u) await fn(u);
        }),
      ),
    );
  }
}

/**
 * A record's place in its partition without its bytes: kept alive, a message (or a Buffer view
 * of its key or value) keeps the whole fetched response it was sliced from.
 */
function positionOf(m: SourceMessage): SourceMessage {
  return { cluster: m.cluster, topic: m.topic, partition: m.partition, offset: m.offset, timestamp: m.timestamp, rawKey: null, rawValue: null, rawHeaders: NO_HEADERS };
}

const NO_HEADERS: Record<string, string> = Object.freeze({});

/** Aborts a dropped unit's transaction (the platform orders it before the partition's next one). */
function dropTransaction(unit: OpenUnit): void {
  const txn = unit.txn;
  unit.txn = undefined;
  void txn?.abort().catch(() => {});
}

export function reachedSinks(messages: readonly SourceMessage[], records: readonly StreamRecord[], dead: readonly DeadLetter[]): Reached {
  // The common slice: every message reached the sinks as exactly one record.
  if (dead.length === 0 && oneToOne(messages, records)) return { ok: messages.length, times: messages.map((m) => m.timestamp), filtered: 0 };
  const dlq = new Set<string>();
  for (const d of dead) dlq.add(d.origin.offset);
  const took = new Set(records.map((r) => r.origin.offset));
  const times: number[] = [];
  const offsets = new Set<string>();
  let filtered = 0;
  for (const m of messages) {
    if (dlq.has(m.offset)) continue;
    if (took.has(m.offset)) {
      times.push(m.timestamp);
      offsets.add(m.offset);
    } else filtered++;
  }
  return { ok: times.length, times, filtered, offsets };
}

/** True when records are the batch's messages one for one, in order (none filtered, none fanned out). */
function oneToOne(messages: readonly SourceMessage[], records: readonly StreamRecord[]): boolean {
  if (records.length !== messages.length) return false;
  for (let i = 0; i < records.length; i++) if (records[i]!.origin !== messages[i]) return false;
  return true;
}
