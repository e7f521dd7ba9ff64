import type { Redis } from "ioredis";
import { SfError } from "../errors.ts";
import { decodeFeatures, fieldsToRead, keys } from "./layout.ts";
import type { FeatureValue, ViewDef } from "./layout.ts";

export type { FeatureValue, ViewDef } from "./layout.ts";

/** One entity's features as read. */
export interface EntityFeatures {
  id: string;
  /** False when none of the asked features has ever been written for this entity (or it expired). */
  found: boolean;
  features: Record<string, FeatureValue>;
}

export interface FeatureClientOptions {
  /** A connected (or lazily connecting) ioredis client; the caller owns it. */
  redis: Redis;
  /** The key_prefix the redis.features sink was given; default "". */
  keyPrefix?: string;
  /** Fixed view definitions; default: read the `sf:v1:views` registry the sink writes. */
  views?: readonly ViewDef[];
  /** How long the registry is cached; an unknown view name always refreshes it. Default 5 s. */
  viewsRefreshMs?: number;
  now?: () => number;
}

export interface GetFeaturesOptions {
  /** Read time (epoch ms) for windows and staleness; default now. */
  asOf?: number;
}

/**
 * The TS read path of the feature store: `getFeatures(view, ids, names?)` sends one
 * pipeline (one HMGET per entity) and returns values, event times and staleness.
 */
export class FeatureClient {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly fixed: Map<string, ViewDef> | undefined;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private cached: Map<string, ViewDef> = new Map();
  private loadedAt = -Infinity;

  constructor(options: FeatureClientOptions) {
    this.redis = options.redis;
    this.prefix = options.keyPrefix ?? "";
    this.fixed = options.views ? new Map(options.views.map((v) => [v.name, v])) : undefined;
    this.refreshMs = options.viewsRefreshMs ?? 5_000;
    this.now = options.now ?? Date.now;
  }

  /** Every known view, from the fixed list or the registry. */
  async views(force = false): Promise<Map<string, ViewDef>> {
    if (this.fixed) return this.fixed;
    if (force || this.now() - this.loadedAt > this.refreshMs) {
      const raw = await this.redis.hgetall(keys.views(this.prefix));
      const next = new Map<string, ViewDef>();
      for (const [name, json] of Object.entries(raw)) {
        try {
          next.set(name, JSON.parse(json) as ViewDef);
        } catch {
          // a registry entry that is not JSON was not written by the sink; leave it out
        }
      }
      this.cached = next;
      this.loadedAt = this.now();
    }
    return this.cached;
  }

  /** One view's definition; undefined when no sink registered it. */
  async view(name: string): Promise<ViewDef | undefined> {
    return (await this.views()).get(name) ?? (this.fixed ? undefined : (await this.views(true)).get(name));
  }

  /** Checks a request against the view; throws SF_ERR_FEATURES_BAD_REQUEST with the reason. */
  async resolve(viewName: string, ids: readonly string[], names?: readonly string[]): Promise<{ view: ViewDef; names: string[] }> {
    const view = await this.view(viewName);
    if (!view) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `unknown feature view "${viewName}"`, { where: "view" });
    if (ids.length === 0) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", "expected at least one entity id", { where: "ids" });
    const bad = ids.find((id) => typeof id !== "string" || id === "");
    if (bad !== undefined) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `expected entity ids to be non-empty strings, got ${JSON.stringify(bad)}`, { where: "ids" });
    const all = view.features.map((f) => f.name);
    const chosen = names && names.length > 0 ? [...names] : all;
    const unknown = chosen.filter((n) => !all.includes(n));
    if (unknown.length) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `view "${viewName}" has no feature ${unknown.map((n) => JSON.stringify(n)).join(", ")} (it has ${all.join(", ")})`, { where: "names" });
    return { view, names: chosen };
  }

  /** Features of `ids` in `viewName` (all features unless `names`), in the order of `ids`. */
  async getFeatures(viewName: string, ids: readonly string[], names?: readonly string[], options: GetFeaturesOptions = {}): Promise<EntityFeatures[]> {
    const { view, names: chosen } = await this.resolve(viewName, ids, names);
    const asOf = options.asOf ?? this.now();
    const wanted = fieldsToRead(view, chosen, asOf);
    if (ids.length === 1) {
      // one entity: a plain HMGET skips the pipeline's bookkeeping (the server's hot path)
      const values = await this.redis.hmget(keys.entity(this.prefix, view.name, ids[0]!), ...wanted);
      return [{ id: ids[0]!, found: values.some((v) => v !== null), features: decodeFeatures(view, chosen, values, asOf) }];
    }
    const p = this.redis.pipeline();
    for (const id of ids) p.hmget(keys.entity(this.prefix, view.name, id), ...wanted);
    const results = await p.exec();
    if (!results) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", "Redis dropped the feature read pipeline");
    return ids.map((id, i) => {
      const [err, reply] = results[i]!;
      if (err) throw err;
      const values = reply as (string | null)[];
      return { id, found: values.some((v) => v !== null), features: decodeFeatures(view, chosen, values, asOf) };
    });
  }
}
