import type pg from "pg";
import { SfError } from "../errors.ts";
import { isCluster, perNodePipelines } from "../connectors/redis/cluster.ts";
import type { RedisClient } from "../connectors/redis/cluster.ts";
import type { HistoricalAsk, LoggedViewDef } from "./historical.ts";
import { decodeFeatures, fieldsToRead, keys, storeOf } from "./layout.ts";
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
  /** A connected (or lazily connecting) ioredis client, or a Redis Cluster client (entity keys in their cluster form); the caller owns it. */
  redis: RedisClient;
  /** The key_prefix the redis.features sink was given; default "". */
  keyPrefix?: string;
  /** Fixed view definitions; default: read the `sf:v1:views` registry the sink writes. */
  views?: readonly ViewDef[];
  /** How long the registry is cached; an unknown view name always refreshes it. Default 5 s. */
  viewsRefreshMs?: number;
  now?: () => number;
  /** A pg pool on the database of the views' offline feature log, for `historical`; the caller owns it. */
  offline?: pg.Pool;
}

/** An asked row with the values of the requested features as of its time (`t`). */
export type HistoricalRow<R extends HistoricalAsk> = R & { features: Record<string, unknown> };

export interface GetFeaturesOptions {
  /** Read time (epoch ms) for windows and staleness; default now. */
  asOf?: number;
}

/** The asked feature names (default: all), checked against the view. */
export function chosenNames(view: ViewDef, names?: readonly string[]): string[] {
  const all = view.features.map((f) => f.name);
  const chosen = names && names.length > 0 ? [...names] : all;
  const unknown = chosen.filter((n) => !all.includes(n));
  if (unknown.length) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `view "${view.name}" has no feature ${unknown.map((n) => JSON.stringify(n)).join(", ")} (it has ${all.join(", ")})`, { where: "names" });
  return chosen;
}

/**
 * The TS read path of the feature store: `getFeatures(view, ids, names?)` sends one
 * pipeline (one HMGET per entity) and returns values, event times and staleness.
 */
export class FeatureClient {
  private readonly redis: RedisClient;
  private readonly prefix: string;
  private readonly cluster: boolean;
  private readonly fixed: Map<string, ViewDef> | undefined;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private readonly offline: pg.Pool | undefined;
  private cached: Map<string, ViewDef> = new Map();
  private loadedAt = -Infinity;

  constructor(options: FeatureClientOptions) {
    this.redis = options.redis;
    this.prefix = options.keyPrefix ?? "";
    this.cluster = isCluster(options.redis);
    this.fixed = options.views ? new Map(options.views.map((v) => [v.name, v])) : undefined;
    this.refreshMs = options.viewsRefreshMs ?? 5_000;
    this.now = options.now ?? Date.now;
    this.offline = options.offline;
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
    const view = await this.known(viewName);
    if (ids.length === 0) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", "expected at least one entity id", { where: "ids" });
    const bad = ids.find((id) => typeof id !== "string" || id === "");
    if (bad !== undefined) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `expected entity ids to be non-empty strings, got ${JSON.stringify(bad)}`, { where: "ids" });
    return { view, names: chosenNames(view, names) };
  }

  /** A registered view; SF_ERR_FEATURES_BAD_REQUEST when there is none by that name. */
  async known(viewName: string): Promise<ViewDef> {
    const view = await this.view(viewName);
    if (!view) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", `unknown feature view "${viewName}"`, { where: "view" });
    return view;
  }

  /** Features of `ids` in `viewName` (all features unless `names`), in the order of `ids`. */
  async getFeatures(viewName: string, ids: readonly string[], names?: readonly string[], options: GetFeaturesOptions = {}): Promise<EntityFeatures[]> {
    const { view, names: chosen } = await this.resolve(viewName, ids, names);
    const asOf = options.asOf ?? this.now();
    const wanted = fieldsToRead(view, chosen, asOf);
    if (ids.length === 1) {
      // one entity: a plain HMGET skips the pipeline's bookkeeping (the server's hot path)
      const values = await this.redis.hmget(this.entityKey(storeOf(view), ids[0]!), ...wanted);
      return [{ id: ids[0]!, found: values.some((v) => v !== null), features: decodeFeatures(view, chosen, values, asOf) }];
    }
    // one pipeline; on a Redis Cluster one per node, sent at once
    const entityKeys = ids.map((id) => this.entityKey(storeOf(view), id));
    const results = await perNodePipelines(
      this.redis,
      ids.length,
      (i) => entityKeys[i]!,
      (p, i) => p.hmget(entityKeys[i]!, ...wanted),
      async (p) => {
        const r = await p.exec();
        if (!r) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", "Redis dropped the feature read pipeline");
        return r;
      },
    );
    return ids.map((id, i) => {
      const [err, reply] = results[i]!;
      if (err) throw err;
      const values = reply as (string | null)[];
      return { id, found: values.some((v) => v !== null), features: decodeFeatures(view, chosen, values, asOf) };
    });
  }

  /** The hash of entity `id` in `view` — a store name (`storeOf` of the registry entry; the view name for version 1): the key the sink writes on this kind of Redis (single or cluster). */
  entityKey(view: string, id: string): string {
    return keys.entity(this.prefix, view, id, this.cluster);
  }

  /**
   * Point-in-time features for training sets: each row (entity id, `t` epoch ms, and any
   * other fields, e.g. labels, passed through) with every requested feature as of `t`, from
   * the view's offline feature log — the value the online store held once every record with
   * event time ≤ t had been applied, and nothing later (docs/feature-store.md). Same rows,
   * same order. Needs the `offline` pool.
   */
  async historical<R extends HistoricalAsk>(viewName: string, rows: readonly R[], names?: readonly string[]): Promise<HistoricalRow<R>[]> {
    if (!this.offline) throw new SfError("SF_ERR_FEATURES_BAD_REQUEST", "historical retrieval needs the `offline` pg pool in FeatureClient's options", { where: "offline" });
    const view = await this.known(viewName);
    const chosen = chosenNames(view, names);
    // Loaded on first use: online readers (the enrich step, the feature server) never load pg.
    const { checkAsks, historicalChunks } = await import("./historical.ts");
    checkAsks(rows);
    const out: HistoricalRow<R>[] = [];
    for await (const chunk of historicalChunks(this.offline, view as LoggedViewDef, rows, { names: chosen })) {
      for (const values of chunk) {
        const r = rows[out.length]!;
        const features: Record<string, unknown> = {};
        chosen.forEach((n, f) => (features[n] = values[f]));
        out.push({ ...r, features });
      }
    }
    return out;
  }
}
