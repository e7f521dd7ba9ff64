import type { Logger } from "pino";
import { connectors as registered } from "../connectors/index.ts";
import { SchemaCodecs } from "../codecs/registry.ts";
import { errorMessage, SfError } from "../errors.ts";
import { EngineMetrics } from "../observability/metrics.ts";
import type { LoadedTopology } from "../topology/loader.ts";
import { loadTopologies } from "../topology/loader.ts";
import type { Catalogue } from "../topology/model.ts";
import { buildCatalogue } from "../topology/model.ts";
import { Connections } from "./connections.ts";
import type { ConnectorDescriptor, StreamPlatform } from "./contracts.ts";
import { TopologyRunner } from "./runner.ts";
import { withFetchLimits } from "./source-fetch.ts";

/** One dependency's health (the admin server's /health entries). */
export interface ComponentHealth {
  component: string;
  status: "up" | "down";
  latencyMs: number;
  lastError?: string;
  checkedAt: string;
}

export interface FleetOptions {
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  metrics?: EngineMetrics;
  connectors?: readonly ConnectorDescriptor[];
}

/** The catalogue of every registered connector (what topologies may use). */
export function defaultCatalogue(): Catalogue {
  return buildCatalogue(registered);
}

/**
 * Several topologies in one process, sharing clients, the schema cache and metrics. A
 * topology can be stopped and another version of it started while the others run (hot
 * reload, lib/cli/watch.ts).
 */
export class Fleet {
  /** The running topologies (a topology being swapped is absent until its new version started). */
  readonly runners: TopologyRunner[];
  readonly metrics: EngineMetrics;
  readonly connections: Connections;
  readonly codecs: SchemaCodecs;
  readonly catalogue: Catalogue;
  private readonly platform: StreamPlatform;
  private readonly logger: Logger;
  private readonly lastHealth = new Map<string, ComponentHealth>();
  private readonly loadedOf = new WeakMap<TopologyRunner, LoadedTopology>();
  /** Topologies stopped for a swap whose next version has not started (yet, or at all). */
  private readonly absent = new Set<string>();

  constructor(topologies: LoadedTopology[], options: FleetOptions) {
    this.catalogue = buildCatalogue(options.connectors ?? registered);
    this.metrics = options.metrics ?? new EngineMetrics();
    this.connections = new Connections(options.env);
    this.logger = options.logger;
    this.codecs = SchemaCodecs.fromConnections(this.connections);
    const provider = this.catalogue.connectors.find((c) => c.platform);
    if (!provider?.platform) throw new Error("no registered connector provides the stream platform");
    this.platform = provider.platform(this.connections, this.logger);
    this.runners = topologies.map((t) => this.runnerFor(t));
  }

  private runnerFor(loaded: LoadedTopology): TopologyRunner {
    const deps = { platform: withFetchLimits(this.platform, [loaded]), catalogue: this.catalogue, connections: this.connections, codecs: this.codecs, metrics: this.metrics, logger: this.logger };
    const runner = new TopologyRunner(loaded, deps);
    this.loadedOf.set(runner, loaded);
    return runner;
  }

  /** The loaded topology (file, frozen model) each running topology was started from. */
  loaded(): LoadedTopology[] {
    return this.runners.map((r) => this.loadedOf.get(r)!);
  }

  /** Loads topology files/dirs with the registered connectors and builds a fleet. */
  static async load(inputs: string[], options: FleetOptions): Promise<Fleet> {
    const cat = buildCatalogue(options.connectors ?? registered);
    return new Fleet(await loadTopologies(inputs, cat), options);
  }

  async start(): Promise<void> {
    for (const r of this.runners) await r.start();
  }

  /** Stops every topology (draining within the deadline), then the shared clients. */
  async stop(deadlineMs = 30_000): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop(deadlineMs).catch((err) => this.logger.error({ topology: r.name, err: errorMessage(err) }, "stop failed"))));
    await this.platform.close();
  }

  /** Replays one topology's DLQ into its source topics (group streamfleet.<name>.dlq-replay). */
  async replayDeadLetters(topology: string, options: { dryRun?: boolean } = {}) {
    const runner = this.runners.find((r) => r.name === topology);
    if (!runner) throw new SfError("SF_ERR_TOPOLOGY_LOAD", `no topology named ${topology} (known: ${this.runners.map((r) => r.name).join(", ")})`);
    return this.platform.replayDeadLetters(runner.dlqTopic, `streamfleet.${topology}.dlq-replay`, options);
  }

  /**
   * Stops one topology (draining and committing within the deadline, leaving its group) and
   * takes it out of the fleet; it counts as not ready until `startTopology` starts a version.
   */
  async stopTopology(name: string, deadlineMs = 30_000): Promise<void> {
    const at = this.runners.findIndex((r) => r.name === name);
    if (at < 0) throw new SfError("SF_ERR_TOPOLOGY_LOAD", `no topology named ${name} is running`);
    const [runner] = this.runners.splice(at, 1);
    this.absent.add(name);
    await runner!.stop(deadlineMs);
  }

  /**
   * Starts a topology in the running fleet: it joins its group and reads on from the group's
   * committed offsets. When it cannot start, what it opened is closed and the error thrown.
   * `replaces` names the topology it stands in for, when its name changed.
   */
  async startTopology(loaded: LoadedTopology, options: { replaces?: string; deadlineMs?: number } = {}): Promise<void> {
    const name = loaded.topology.name;
    if (this.runners.some((r) => r.name === name)) throw new SfError("SF_ERR_TOPOLOGY_DUPLICATE", `topology ${name} is already running`);
    const runner = this.runnerFor(loaded);
    try {
      await runner.start();
    } catch (err) {
      await runner.stop(options.deadlineMs).catch((e: unknown) => this.logger.warn({ topology: name, err: errorMessage(e) }, "closing a topology that did not start failed"));
      throw err;
    }
    this.runners.push(runner);
    this.absent.delete(name);
    if (options.replaces !== undefined) this.absent.delete(options.replaces);
  }

  /** Every topology joined its group, and none is stopped for a swap. */
  ready(): boolean {
    return this.absent.size === 0 && this.runners.every((r) => r.ready());
  }

  /** Checks each connector's server and the schema registry; one entry per component. */
  async health(signal: AbortSignal = AbortSignal.timeout(5000)): Promise<ComponentHealth[]> {
    const checks: [string, () => Promise<void>][] = [
      ["schema-registry", () => this.codecs.ping()],
      ...this.catalogue.connectors.filter((c) => c.health).map((c): [string, () => Promise<void>] => [c.name, () => c.health!(this.connections, signal)]),
    ];
    return Promise.all(
      checks.map(async ([component, check]) => {
        const t0 = performance.now();
        let entry: ComponentHealth;
        try {
          await check();
          entry = { component, status: "up", latencyMs: Math.round(performance.now() - t0), checkedAt: new Date().toISOString() };
        } catch (err) {
          entry = { component, status: "down", latencyMs: Math.round(performance.now() - t0), lastError: errorMessage(err), checkedAt: new Date().toISOString() };
        }
        const prev = this.lastHealth.get(component);
        if (entry.status === "up" && prev?.lastError) entry.lastError = undefined;
        this.lastHealth.set(component, entry);
        return entry;
      }),
    );
  }
}
