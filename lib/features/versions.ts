/**
 * Feature view versions (docs/feature-store.md, "Rebuilding a view from history"). The
 * registry entry of a view (`sf:v1:views`) names the version readers use and its store —
 * the `<view>` part of entity keys and the offline log's `view` column (`<view>` for
 * version 1, `<view>@v<n>` after). Every version a rebuild made is kept in
 * `sf:v1:view-versions` (field = view name, value = a JSON array of `VersionEntry`), so a
 * sink finds which version its definition is: the active one, one being rebuilt (a topology
 * deployed with the new definition writes it too), or an old one (a topology still running
 * the old definition keeps writing the old version, never the registry entry).
 */
import type { Logger } from "pino";
import type { RedisClient } from "../connectors/redis/cluster.ts";
import { keys, storeOf } from "./layout.ts";
import type { ViewDef } from "./layout.ts";

export interface VersionEntry {
  version: number;
  store: string;
  /** The view definition of this version (no version/store fields). */
  definition: ViewDef;
  /** building: a rebuild writes it, readers do not read it yet; active: readers read it; retired: replaced by a newer one. */
  state: "building" | "active" | "retired";
  created_at: number;
  /** building/active via a rebuild: the event time (epoch ms) the rebuild read the source from. */
  from?: number;
  switched_at?: number;
}

/** A definition as text without its version fields: what "the same definition" compares. */
export function definitionText(def: ViewDef): string {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { version, store, ...rest } = def;
  return JSON.stringify(rest);
}

export function stripVersion(def: ViewDef): ViewDef {
  return JSON.parse(definitionText(def)) as ViewDef;
}

function parse<T>(json: string | null | undefined): T | undefined {
  if (!json) return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}

export async function readActive(redis: RedisClient, prefix: string, view: string): Promise<ViewDef | undefined> {
  return parse<ViewDef>(await redis.hget(keys.views(prefix), view));
}

export async function readVersions(redis: RedisClient, prefix: string, view: string): Promise<VersionEntry[]> {
  return parse<VersionEntry[]>(await redis.hget(keys.versions(prefix), view)) ?? [];
}

export async function writeVersions(redis: RedisClient, prefix: string, view: string, list: readonly VersionEntry[]): Promise<void> {
  await redis.hset(keys.versions(prefix), view, JSON.stringify(list));
}

/** HASH: field = store, value = epoch ms a sink last opened on it unpinned (a topology's worker, not a rebuild). */
export const writersKey = (prefix: string) => `${keys.versions(prefix)}:writers`;

/**
 * The store a sink writes a view to, registering the view when needed:
 * - `pinned` (a rebuild's own sink): that store, the registry untouched;
 * - no registry entry: the definition is registered as version 1 (store = the view name);
 * - the entry has the same definition: its store;
 * - a version in the history has it (being rebuilt, or an old one): the newest such version's store, the entry untouched;
 * - otherwise the definition replaces the entry in place (same version and store, as before versions existed), with a warning.
 */
export async function resolveStore(redis: RedisClient, prefix: string, def: ViewDef, pinned: string | undefined, logger?: Logger): Promise<string> {
  if (pinned !== undefined) return pinned;
  const mine = definitionText(def);
  const active = await readActive(redis, prefix, def.name);
  let store: string;
  if (!active) {
    await redis.hset(keys.views(prefix), def.name, JSON.stringify(def));
    store = def.name;
  } else if (definitionText(active) === mine) {
    store = storeOf(active);
  } else {
    const match = (await readVersions(redis, prefix, def.name)).filter((v) => definitionText(v.definition) === mine).sort((a, b) => b.version - a.version)[0];
    if (match) {
      store = match.store;
      logger?.info({ view: def.name, writes: match.version, readers: active.version ?? 1 }, "feature view: this definition is a version readers do not read (being rebuilt, or replaced); writing that version");
    } else {
      const entry: ViewDef = { ...def, ...(active.version !== undefined ? { version: active.version } : {}), ...(active.store !== undefined ? { store: active.store } : {}) };
      await redis.hset(keys.views(prefix), def.name, JSON.stringify(entry));
      store = storeOf(active);
      logger?.warn({ view: def.name }, "feature view: the definition changed in place (its history was computed by the previous one); `streamfleet features rebuild` computes a new version from history instead");
    }
  }
  await redis.hset(writersKey(prefix), store, String(Date.now()));
  return store;
}
