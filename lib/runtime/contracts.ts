/**
 * The contracts between the core and the connectors. A connector implements these and is
 * listed once in lib/connectors/index.ts; the core never imports a connector's client.
 */
import type { Logger } from "pino";
import type { z } from "zod";
import type { Connections } from "./connections.ts";
import type { EngineMetrics } from "../observability/metrics.ts";
import type { SchemaCodecs } from "../codecs/registry.ts";
import type { ValueShape } from "../topology/shape.ts";

/** Where a record came from; shared by every record a step derives from it. */
export interface RecordOrigin {
  /**
   * Short id of the Kafka cluster the record came from. Offsets start again at 0 in a new
   * cluster, so idempotency keys (record ids, feature watermarks) carry it.
   */
  cluster: string;
  topic: string;
  partition: number;
  offset: string;
  /** Kafka record timestamp, epoch ms. */
  timestamp: number;
  rawKey: Buffer | null;
  rawValue: Buffer | null;
  rawHeaders: Record<string, string>;
}

/** A decoded record flowing through steps into sinks. */
export interface StreamRecord {
  key: unknown;
  value: unknown;
  headers: Record<string, string>;
  origin: RecordOrigin;
  /**
   * Stable id of this record for idempotent sinks: `topic/partition/offset@cluster`, with
   * `#n` appended for the n-th record a step derived from one input.
   */
  id: string;
  /** Set by `route` (and rate-limit overflow): only these sinks receive it. */
  targets?: readonly string[];
}

/** What every component factory receives besides its own config. */
export interface ComponentContext {
  topology: string;
  /** The component's name, e.g. "sinks[0]:redis.cache" — used in logs and metric labels. */
  component: string;
  logger: Logger;
  metrics: EngineMetrics;
  connections: Connections;
  codecs: SchemaCodecs;
  /** Directory of the topology file: relative module and schema paths resolve from here. */
  baseDir: string;
  signal: AbortSignal;
  now: () => number;
}

export interface RecordFailure {
  record: StreamRecord;
  error: unknown;
}

/** A sink writes one batch. A retriable throw (SfError, retriable) means "nothing was
 * durably written that matters; try the whole batch again"; per-record rejects that a retry
 * cannot fix are returned in `failed` and go to the DLQ. */
export interface Sink {
  readonly name: string;
  open?(): Promise<void>;
  /**
   * `scope.transaction`: exactly-once delivery — write inside the platform's transaction of the
   * records' commit unit (only sinks whose spec is `transactional` receive one).
   */
  write(records: StreamRecord[], scope?: WriteScope): Promise<{ failed?: RecordFailure[] } | void>;
  /**
   * A sink that combines a batch before writing (the feature store aggregates per entity, a
   * cache keeps the last write per key) offers this: the runner adds each slice of a batch
   * as it comes and flushes once, before the commit, instead of calling `write` per slice.
   */
  batch?(options?: { exact?: boolean }): SinkBatch;
  close(): Promise<void>;
  health?(): Promise<void>;
}

/** What a write belongs to, besides its records. */
export interface WriteScope {
  transaction?: Transaction;
}

/**
 * Exactly-once delivery (`delivery: exactly_once`): the platform's transaction of one
 * partition's commit unit. What transactional sinks and the DLQ write in it becomes visible
 * to read_committed readers together with the source offsets, at `commit`, or never. Opaque
 * to the core: the sinks that can write in it belong to the platform's connector.
 */
export interface Transaction {
  /** Commits what was written in it and the source offsets through `offset` (inclusive), at once. */
  commit(offset: string): Promise<void>;
  /** Drops what was written in it; nothing of it is ever read (read_committed). */
  abort(): Promise<void>;
}

/** How a unit's transaction starts: a transaction, or the offset the partition must be read from instead. */
export type TransactionStart = { transaction: Transaction } | { resumeAt: string };

/** The transactions of one topology's output (see `StreamPlatform.transactions`). */
export interface TransactionalOutput {
  /**
   * Opens the transaction of a unit starting with `batch`. The first in a group generation
   * fences every earlier writer of the partition (a zombie can no longer commit), then checks
   * the partition's committed offset: a zombie that committed after this worker read its
   * position means the batch is stale, and `resumeAt` says where to read from.
   */
  begin(batch: SourceBatch): Promise<TransactionStart>;
  close(): Promise<void>;
}

/** A record a sink could not write, named by its origin (a combining sink keeps no records). */
export interface SinkFailure {
  origin: RecordOrigin;
  error: unknown;
}

/**
 * One batch of a combining sink. `flush` may be called again after a retriable throw: it must
 * be idempotent. A sink that folds records away may throw SF_ERR_SINK_REPLAY_OVERLAP from
 * `flush` when it needs the batch again with every record kept (`batch({ exact: true })`):
 * the runner then processes the batch once more in that mode.
 */
export interface SinkBatch {
  /** Takes a slice's records (no I/O); returns the records it rejects at once (e.g. a missing key). */
  add(records: readonly StreamRecord[]): SinkFailure[];
  /** Writes what was added. A retriable throw: nothing that matters was lost, flush again. */
  flush(): Promise<{ failed?: SinkFailure[] } | void>;
}

export interface StepOutcome {
  /** Records that go on to the next step. */
  records: StreamRecord[];
  /** How many inputs the step dropped on purpose (filter, dedupe, rate-limit drop). */
  filtered?: number;
  /** Inputs that failed; retried by the policy, then sent to the DLQ. */
  failed?: RecordFailure[];
}

/** A step works on a whole batch (so Redis-backed steps can pipeline). */
export interface Step {
  readonly name: string;
  open?(): Promise<void>;
  process(records: StreamRecord[]): Promise<StepOutcome>;
  close?(): Promise<void>;
}

export interface ComponentSpec<C, T> {
  /** The config schema: the spec from which types, validation, JSON Schema and docs come. */
  schema: z.ZodType<C>;
  description: string;
  create(config: C, ctx: ComponentContext): T | Promise<T>;
  /**
   * Checks that need more than the schema (a module exports the function, a route names an
   * existing sink); returns problems with their path inside the component's config.
   */
  verify?(config: C, ctx: VerifyContext): Promise<VerifyIssue[]> | VerifyIssue[];
  /**
   * A step's effect on the record value, for `validate`'s field checks: from what is known of
   * its input (undefined: nothing), what is known of its output. Absent: nothing after it.
   */
  shape?(config: C, input: ValueShape | undefined, ctx: VerifyContext): ValueShape | undefined;
  /**
   * Sinks: the effect a batch would have (a key and value, a job, a row, a message), as plain
   * JSON, with no I/O — what `streamfleet test` compares. Records the sink would refuse come
   * back in `failed`, as `write` would return them.
   */
  effect?(config: C, records: readonly StreamRecord[], ctx: EffectContext): SinkEffects | Promise<SinkEffects>;
  /**
   * Sinks: writes inside the stream platform's transaction (`WriteScope.transaction`), so a
   * topology whose sinks all are may declare `delivery: exactly_once`.
   */
  transactional?: boolean;
}

/** What a sink's `effect` receives besides its config. */
export interface EffectContext {
  /** The sink's name, as in its errors. */
  component: string;
  /** Directory of the topology file (schemas resolve from here). */
  baseDir: string;
}

/** A batch's rendered effect: JSON-able entries in write order, and the records the sink would refuse. */
export interface SinkEffects {
  effects: unknown[];
  failed?: RecordFailure[];
}

export interface VerifyContext {
  baseDir: string;
  sinkNames: readonly string[];
}
export interface VerifyIssue {
  path: (string | number)[];
  message: string;
}

/** A connector's single export: what it offers, its health check, and nothing else. */
export interface ConnectorDescriptor {
  name: string;
  /** Sink types by name, e.g. "redis.cache". */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  sinks?: Record<string, ComponentSpec<any, Sink>>;
  /** Step kinds by name, e.g. "enrich". */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  steps?: Record<string, ComponentSpec<any, Step>>;
  /** Checks that the connector's default server answers; throws with the reason. */
  health?(connections: Connections, signal: AbortSignal): Promise<void>;
  /** The stream platform (sources, dead letters); exactly one connector provides it. */
  platform?(connections: Connections, logger: Logger): StreamPlatform;
}

/* ---- The source side, implemented by the Kafka connector. ---- */

/**
 * A consumed message as the source hands it over. It is also the origin of every record
 * derived from it (one object per message, not two).
 */
export type SourceMessage = RecordOrigin;

export interface SourceBatch {
  /** Short id of the source's Kafka cluster (see RecordOrigin.cluster). */
  cluster: string;
  topic: string;
  partition: number;
  messages: SourceMessage[];
  highWatermark: string;
  /** The next fetch of this partition goes on after offset (nothing is committed). */
  resolveOffset(offset: string): void;
  /** Commits this partition up to and including offset; usable after the batch handler returned. */
  commitThrough(offset: string): Promise<void>;
  /** The next fetch of this partition starts at offset (taking back what was resolved). */
  seek(offset: string): void;
  /**
   * Changes whenever the group rebalances: fetching then starts again from the committed
   * offsets, so whatever was taken but not committed in an earlier generation is read again.
   */
  generation: number;
  /** The group generation now (a batch's own `generation` is the one it was fetched in). */
  currentGeneration(): number;
  heartbeat(): Promise<void>;
  isRunning(): boolean;
  isStale(): boolean;
  /** Pauses fetching this partition; returns the function that resumes it. */
  pause(): () => void;
}

export interface SourceOptions {
  topology: string;
  /** Named connection of the source. */
  connection: string;
  topics?: string[];
  pattern?: string;
  group: string;
  fromBeginning: boolean;
  /** Partitions processed at once (bounded in-flight work). */
  concurrency: number;
  maxBytesPerPartition?: number;
  sessionTimeoutMs: number;
}

export interface Source {
  run(handler: (batch: SourceBatch) => Promise<void>): Promise<void>;
  /** Stops fetching, waits for in-flight batches, runs `beforeLeave` (the runner's last commits), leaves the group. */
  stop(beforeLeave?: () => Promise<void>): Promise<void>;
  /** Joined the group and assigned (or waiting for an assignment) without errors. */
  ready(): boolean;
  /** Lag per topic/partition in offsets and the timestamp of the last processed record. */
  lag?(): Promise<Array<{ topic: string; partition: number; lag: number }>>;
}

export interface DeadLetter {
  origin: RecordOrigin;
  code: string;
  message: string;
  step: string;
  topology: string;
  attempts: number;
}

export interface DeadLetterWriter {
  /** With `transaction`: written in it (exactly-once), visible only once it commits. */
  send(topic: string, letters: DeadLetter[], transaction?: Transaction): Promise<void>;
  close(): Promise<void>;
}

/** The platform the runtime needs from the Kafka connector: sources, the DLQ, producers. */
export interface StreamPlatform {
  source(options: SourceOptions, ctx: ComponentContext): Source;
  deadLetters(ctx: ComponentContext): DeadLetterWriter;
  ensureTopics(topics: string[], partitions?: number): Promise<void>;
  /** Sends a DLQ topic's records back to their source topics (see `streamfleet dlq replay`). */
  replayDeadLetters(dlqTopic: string, group: string, options?: { dryRun?: boolean }): Promise<ReplayResult>;
  /**
   * Exactly-once output of a topology reading `source` (its output records, dead letters and
   * consumed offsets commit in one transaction per commit unit). Throws, saying why, where the
   * connection's client cannot.
   */
  transactions?(options: TransactionOptions): TransactionalOutput;
  close(): Promise<void>;
}

export interface TransactionOptions {
  topology: string;
  /** The topology's source (the transactions commit its group's offsets). */
  source: Source;
  group: string;
  /** The source's named connection: the sinks must write through the same cluster. */
  connection: string;
  /** How long a transaction may stay open before the broker aborts it. */
  timeoutMs: number;
}

export interface ReplayResult {
  replayed: number;
  byTopic: Record<string, number>;
}
