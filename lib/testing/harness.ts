/**
 * Runs one test case through a topology as a worker would, without Kafka and without
 * writing to any sink: the inputs are encoded and decoded by the topology's codecs, the
 * steps run for real through the runner's step executor (retries and dead-letter decisions
 * included), records are routed to sinks as the runner routes them, and each sink renders
 * the effect it would have (`ComponentSpec.effect`). Redis-backed steps run against Redis
 * in a scratch key space, or the case is reported as not run.
 */
import path from "node:path";
import type { Logger } from "pino";
import type { Decoder } from "../codecs/index.ts";
import { createDecoder } from "../codecs/index.ts";
import { SchemaCodecs } from "../codecs/registry.ts";
import { errorCode, errorMessage, SfError } from "../errors.ts";
import { EngineMetrics } from "../observability/metrics.ts";
import type { TopologyMetrics } from "../observability/metrics.ts";
import { BatchAbandoned, BatchControl } from "../runtime/batch-control.ts";
import { Connections } from "../runtime/connections.ts";
import type { ComponentContext, DeadLetter, RecordOrigin, SourceBatch, SourceMessage, Step, StreamRecord } from "../runtime/contracts.ts";
import { runStep } from "../runtime/step-runner.ts";
import { reachedSinks } from "../runtime/units.ts";
import type { LoadedTopology } from "../topology/loader.ts";
import type { Catalogue, SinkDef } from "../topology/model.ts";
import { BadInput, InputEncoder, NotRunnable } from "./encode.ts";
import type { LocalRegistry } from "./local-registry.ts";
import type { Scratch } from "./scratch.ts";
import { openScratch } from "./scratch.ts";
import type { TestCase } from "./spec.ts";

/** The cluster id of test records: ids read `topic/0/<offset>@test`. */
export const TEST_CLUSTER = "test";
/** A case that takes longer (a step retrying an outage) is stopped and reported. */
const CASE_DEADLINE_MS = 30_000;

/** What a case produced, in the shape of a test file's `expect`. */
export interface Observed {
  sinks: Record<string, unknown[]>;
  filtered: number;
  dlq: { offset: number; code: string; step: string; message: string }[];
}

export type CaseOutcome = { status: "ran"; observed: Observed } | { status: "not run"; reason: string } | { status: "error"; reason: string };

export interface HarnessOptions {
  catalogue: Catalogue;
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  registry: LocalRegistry;
  testDir: string;
}

/** One topology, loaded, with its decoders; runs cases one after the other. */
export class TopologyHarness {
  private readonly loaded: LoadedTopology;
  private readonly o: HarnessOptions;
  private readonly connections: Connections;
  private readonly codecs: SchemaCodecs;
  private readonly metrics = new EngineMetrics();
  private readonly tm: TopologyMetrics;
  readonly encoder: InputEncoder;
  private keyDecoder!: Decoder;
  private valueDecoder!: Decoder;
  /** Per connector that backs a step: undefined when its server answers, else why not. */
  private readonly servers = new Map<string, Promise<string | undefined>>();

  constructor(loaded: LoadedTopology, o: HarnessOptions) {
    this.loaded = loaded;
    this.o = o;
    this.connections = new Connections(o.env);
    this.codecs = new SchemaCodecs(o.registry.url);
    this.encoder = new InputEncoder(o.registry, o.env);
    this.tm = this.metrics.forTopology(loaded.topology.name);
  }

  get name(): string {
    return this.loaded.topology.name;
  }

  private get topics(): readonly string[] {
    const t = this.loaded.topology;
    return t.source.topics ?? [t.name];
  }

  /** Builds the decoders as the runner does (a local reader schema is checked against its subject, here in the local registry). */
  async open(): Promise<void> {
    const t = this.loaded.topology;
    const opts = { codecs: this.codecs, baseDir: this.loaded.baseDir };
    this.keyDecoder = await createDecoder(t.codec.key, { ...opts, defaultSubject: `${this.topics[0]}-key` });
    this.valueDecoder = await createDecoder(t.codec.value, { ...opts, defaultSubject: `${this.topics[0]}-value` });
  }

  async run(c: TestCase, now: number): Promise<CaseOutcome> {
    let messages: SourceMessage[];
    try {
      messages = await this.messages(c, now);
    } catch (err) {
      if (err instanceof NotRunnable) return { status: "not run", reason: err.message };
      if (err instanceof BadInput) return { status: "error", reason: err.message };
      throw err;
    }
    const needs = await this.unavailableServers();
    if (needs) return { status: "not run", reason: needs };
    const stopping = new AbortController();
    const deadline = setTimeout(() => stopping.abort(), CASE_DEADLINE_MS);
    let scratch: Scratch | undefined;
    const steps: { path: string; step: Step }[] = [];
    try {
      if (c.redis || this.redisBacked().length) {
        try {
          scratch = await openScratch(this.connections);
          if (c.redis) await scratch.seed(c.redis);
        } catch (err) {
          return { status: "not run", reason: `the case needs Redis, which does not answer: ${errorMessage(err)}` };
        }
      }
      for (const def of this.loaded.topology.steps) {
        const config = scratch && hasKeyPrefix(def.config) ? { ...def.config, key_prefix: scratch.prefix + def.config.key_prefix } : def.config;
        const step = await this.o.catalogue.steps.get(def.kind)!.create(config, this.context(def.path, stopping.signal, now));
        steps.push({ path: def.path, step });
        await step.open?.();
      }
      return { status: "ran", observed: await this.process(messages, steps, stopping.signal) };
    } catch (err) {
      if (err instanceof BatchAbandoned) return { status: "error", reason: `a step or sink kept failing with a retriable error for ${CASE_DEADLINE_MS / 1000} s (a server down?)` };
      return { status: "error", reason: errorMessage(err) };
    } finally {
      clearTimeout(deadline);
      for (const { step } of steps) await step.close?.().catch(() => {});
      await scratch?.close().catch(() => {});
    }
  }

  /** The inputs as consumed messages: offset = position in the case, partition 0 of their topic. */
  private async messages(c: TestCase, now: number): Promise<SourceMessage[]> {
    const t = this.loaded.topology;
    const where = { baseDir: this.loaded.baseDir, testDir: this.o.testDir };
    const out: SourceMessage[] = [];
    for (const [i, input] of c.input.entries()) {
      const topic = input.topic ?? this.topics[0]!;
      try {
        const rawKey = await this.encoder.encode(t.codec.key, "key", topic, input.key, where);
        const rawValue = input.raw_value !== undefined ? Buffer.from(input.raw_value, "utf8") : await this.encoder.encode(t.codec.value, "value", topic, input.value, { ...where, local: input.schema });
        out.push({ cluster: TEST_CLUSTER, topic, partition: 0, offset: String(i), timestamp: input.timestamp ?? now, rawKey, rawValue, rawHeaders: input.headers });
      } catch (err) {
        if (err instanceof BadInput) throw new BadInput(`input[${i}]: ${err.message}`);
        throw err;
      }
    }
    return out;
  }

  /** Steps whose connector has a server (Redis): they need it to run. */
  private redisBacked(): string[] {
    return this.loaded.topology.steps.filter((d) => this.connectorOf(d.kind)?.health).map((d) => d.path);
  }

  private connectorOf(kind: string) {
    return this.o.catalogue.connectors.find((c) => c.steps && Object.hasOwn(c.steps, kind));
  }

  /** Why a step's server cannot be used (checked once per connector), or undefined. */
  private async unavailableServers(): Promise<string | undefined> {
    for (const def of this.loaded.topology.steps) {
      const connector = this.connectorOf(def.kind);
      if (!connector?.health) continue;
      let check = this.servers.get(connector.name);
      if (!check) {
        check = connector.health(this.connections, AbortSignal.timeout(3000)).then(
          () => undefined,
          (err: unknown) => errorMessage(err),
        );
        this.servers.set(connector.name, check);
      }
      const down = await check;
      if (down !== undefined) return `${def.path} needs ${connector.name}, which does not answer: ${down}`;
    }
    return undefined;
  }

  private context(component: string, signal: AbortSignal, now: number): ComponentContext {
    return {
      topology: this.loaded.topology.name,
      component,
      logger: this.o.logger.child({ component }),
      metrics: this.metrics,
      connections: this.connections,
      codecs: this.codecs,
      baseDir: this.loaded.baseDir,
      signal,
      now: () => now,
    };
  }

  /** Decode, steps and sink effects, per source partition as a worker takes them. */
  private async process(messages: SourceMessage[], steps: { path: string; step: Step }[], signal: AbortSignal): Promise<Observed> {
    const t = this.loaded.topology;
    const dead: DeadLetter[] = [];
    const records: StreamRecord[] = [];
    let filtered = 0;
    // a worker's retry policy and DLQ decisions, with back-off shortened: a test waits for nothing
    const policy = { ...t.errors, backoff_ms: Math.min(t.errors.backoff_ms, 5), max_backoff_ms: Math.min(t.errors.max_backoff_ms, 20) };
    const letter = (origin: RecordOrigin, err: unknown, step: string, attempts: number): DeadLetter => ({ origin, code: errorCode(err), message: errorMessage(err), step, topology: t.name, attempts });
    for (const topic of new Set(messages.map((m) => m.topic))) {
      const batch = messages.filter((m) => m.topic === topic);
      const ctl = new BatchControl(offlineBatch(topic, batch), policy, this.tm, this.o.logger, signal);
      const sliceDead: DeadLetter[] = [];
      await ctl.untilDone("schema lookup", () => Promise.all([this.keyDecoder.prepare?.(batch, "rawKey"), this.valueDecoder.prepare?.(batch, "rawValue")]));
      let slice: StreamRecord[] = [];
      for (const m of batch) {
        try {
          slice.push({ key: this.keyDecoder.decode(m.rawKey), value: this.valueDecoder.decode(m.rawValue), headers: m.rawHeaders, origin: m, id: `${m.topic}/${m.partition}/${m.offset}@${m.cluster}`, targets: undefined });
        } catch (err) {
          sliceDead.push(letter(m, err, "codec", 1));
        }
      }
      for (const { path: at, step } of steps) {
        if (slice.length === 0) break;
        slice = await runStep(step, at, slice, { ctl, policy, metrics: this.tm, dead: sliceDead, letter });
      }
      filtered += reachedSinks(batch, slice, sliceDead).filtered;
      records.push(...slice);
      dead.push(...sliceDead);
    }
    const sinks: Record<string, unknown[]> = {};
    for (const def of t.sinks) {
      // as the runner delivers: routed records to their targets, the rest to every sink not `routed_only`
      const mine = records.filter((r) => (r.targets ? r.targets.includes(def.name) : !def.routedOnly));
      if (mine.length === 0) continue;
      const rendered = await this.render(def, mine);
      for (const f of rendered.failed ?? []) dead.push(letter(f.record.origin, f.error, def.path, 1));
      if (rendered.effects.length) sinks[def.name] = plain(rendered.effects) as unknown[];
    }
    const dlq = dead
      .map((d) => ({ offset: Number(d.origin.offset), code: d.code, step: d.step, message: d.message }))
      .sort((a, b) => a.offset - b.offset);
    return { sinks, filtered, dlq };
  }

  private async render(def: SinkDef, records: StreamRecord[]) {
    const spec = this.o.catalogue.sinks.get(def.type)!;
    if (!spec.effect) throw new SfError("SF_ERR_TEST_INVALID", `sink ${def.name} (${def.type}) cannot render its effect, so it cannot be tested offline`);
    return spec.effect(def.config, records, { component: def.name, baseDir: this.loaded.baseDir });
  }
}

function hasKeyPrefix(config: unknown): config is { key_prefix: string } {
  return typeof config === "object" && config !== null && typeof (config as { key_prefix?: unknown }).key_prefix === "string";
}

/** Effects as JSON: what a test file can state (no undefined fields, bigints as text). */
function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x))) as unknown;
}

/** The source side of a test batch: nothing to fetch, commit, pause or leave. */
function offlineBatch(topic: string, messages: SourceMessage[]): SourceBatch {
  return {
    cluster: TEST_CLUSTER,
    topic,
    partition: 0,
    messages,
    highWatermark: String(messages.length),
    resolveOffset() {},
    async commitThrough() {},
    seek() {},
    generation: 0,
    currentGeneration: () => 0,
    async heartbeat() {},
    isRunning: () => true,
    isStale: () => false,
    pause: () => () => {},
  };
}

/** The directory test inputs' writer schemas resolve from. */
export function testDirOf(file: string): string {
  return path.dirname(file);
}
