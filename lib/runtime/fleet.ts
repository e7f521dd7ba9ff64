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

/** Several topologies in one process, sharing clients, the schema cache and metrics. */
export class Fleet {
  readonly runners: TopologyRunner[];
  readonly metrics: EngineMetrics;
  readonly connections: Connections;
  readonly codecs: SchemaCodecs;
  private readonly platform: StreamPlatform;
  private readonly catalogue: Catalogue;
  private readonly logger: Logger;
  private readonly lastHealth = new Map<string, ComponentHealth>();

  constructor(topologies: LoadedTopology[], options: FleetOptions) {
    this.catalogue = buildCatalogue(options.connectors ?? registered);
    this.metrics = options.metrics ?? new EngineMetrics();
    this.connections = new Connections(options.env);
    this.logger = options.logger;
    const registryUrl = this.connections.require("SCHEMA_REGISTRY_URL");
    const user = this.connections.get("SCHEMA_REGISTRY_USERNAME");
    this.codecs = new SchemaCodecs(registryUrl, user ? { username: user, password: this.connections.require("SCHEMA_REGISTRY_PASSWORD") } : undefined);
    const provider = this.catalogue.connectors.find((c) => c.platform);
    if (!provider?.platform) throw new Error("no registered connector provides the stream platform");
    this.platform = provider.platform(this.connections, this.logger);
    const deps = { platform: withFetchLimits(this.platform, topologies), catalogue: this.catalogue, connections: this.connections, codecs: this.codecs, metrics: this.metrics, logger: this.logger };
    this.runners = topologies.map((t) => new TopologyRunner(t, deps));
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

  ready(): boolean {
    return this.runners.every((r) => r.ready());
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
