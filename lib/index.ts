/**
 * streamfleet's public API: `import { defineTopology, Fleet, ... } from "streamfleet"`.
 */
import type { z } from "zod";
import type { CodecConfig } from "./codecs/index.ts";
import type { connectors } from "./connectors/index.ts";
import type { ComponentSpec } from "./runtime/contracts.ts";
import type { errorPolicySchema, sourceSchema } from "./topology/model.ts";

export { Fleet, defaultCatalogue } from "./runtime/fleet.ts";
export type { ComponentHealth, FleetOptions } from "./runtime/fleet.ts";
export { output } from "./runtime/steps/transform.ts";
export type { TransformFn, TransformOutput } from "./runtime/steps/transform.ts";
export { SfError, CATALOGUE } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
export { loadTopologies, TopologyValidationError } from "./topology/loader.ts";
export { fleetGraph, toMermaid } from "./topology/graph.ts";
/** For connector authors: mark a config field as a template, checked by `validate` like every other. */
export { fieldPath, template, valueTemplate } from "./topology/template-fields.ts";
export type { ValueShape } from "./topology/shape.ts";
export { EngineMetrics } from "./observability/metrics.ts";
export { startAdminServer } from "./observability/admin-server.ts";
export { createLogger } from "./observability/logger.ts";
export { Connections } from "./runtime/connections.ts";
export type * from "./runtime/contracts.ts";
/** For ML jobs: read online features back (docs/feature-store.md). */
export { FeatureClient } from "./features/client.ts";
export type { EntityFeatures, FeatureClientOptions, FeatureValue, GetFeaturesOptions, ViewDef } from "./features/client.ts";

type Registered = (typeof connectors)[number];
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type SpecsOf<K extends "sinks" | "steps"> = UnionToIntersection<Registered extends infer R ? (R extends Record<K, infer S> ? S : never) : never>;
type ConfigOf<S> = S extends ComponentSpec<infer C, unknown> ? C : never;
type SinkSpecs = SpecsOf<"sinks">;
type StepSpecs = SpecsOf<"steps">;

/** A sink as written in a topology: its `type`, routing fields, and that type's config (defaults optional). */
export type SinkDefinition = {
  [T in keyof SinkSpecs & string]: { type: T; name?: string; routed_only?: boolean } & Partial<ConfigOf<SinkSpecs[T]>>;
}[keyof SinkSpecs & string];

/** A step as written in a topology: `{ <kind>: config }`, optionally named. */
export type StepDefinition = {
  [K in keyof StepSpecs & string]: { [P in K]: Partial<ConfigOf<StepSpecs[K]>> } & { name?: string };
}[keyof StepSpecs & string];

/** A topology written in TypeScript, typed by every registered connector's config schema. */
export interface TopologyDefinition {
  name: string;
  description?: string;
  source: z.input<typeof sourceSchema>;
  codec?: { key?: CodecConfig; value?: CodecConfig };
  steps?: StepDefinition[];
  sinks: [SinkDefinition, ...SinkDefinition[]];
  errors?: z.input<typeof errorPolicySchema>;
  log_level?: "trace" | "debug" | "info" | "warn" | "error" | "silent";
}

/**
 * Declares a topology in TypeScript (a `*.topology.ts` file's default export). Types come
 * from the connectors' schemas; the loader still validates it like a YAML file.
 */
export function defineTopology(topology: TopologyDefinition): TopologyDefinition {
  return topology;
}
