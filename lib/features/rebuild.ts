/**
 * `streamfleet features rebuild <topology> --view V --from <time>`: computes a new version of
 * a feature view from the source topic's history with the definition in the topology file,
 * then switches readers to it (docs/feature-store.md, "Rebuilding a view from history").
 *
 * 1. A new version n (one more than any the view had) with store `<view>@v<n>` is recorded as
 *    `building` in `sf:v1:view-versions`; readers keep reading the active version.
 * 2. A copy of the topology runs in this process: its own consumer group
 *    (`<group>.rebuild.<view>.v<n>`, offsets set to the first record at or after `--from` in
 *    every partition), the topology's steps, and only the `redis.features` sink of the view,
 *    pinned to the new store (Redis keys and offline log rows); its DLQ is
 *    `<topology>.rebuild.dlq`. The running topology is not touched.
 * 3. Once the group has consumed every partition up to its end offset as of the start, the
 *    registry entry is replaced by the new definition, version and store: one HSET, so a
 *    reader sees either the old entry or the new one (readers cache it up to 5 s).
 * 4. Then it goes on applying new records to the new version (so it does not go stale while the
 *    old topology still runs) until the topology runs the new definition — a worker of it
 *    opened on the new version after the rebuild started, and the topology's group has
 *    committed no offset beyond the rebuild's — or until SIGINT/SIGTERM; `follow: false` ends
 *    at the switch.
 */
import type { Logger } from "pino";
import { SfError } from "../errors.ts";
import { openGroupOffsets } from "../connectors/kafka/group-offsets.ts";
import { createRedisClient } from "../connectors/redis/client.ts";
import { compileView } from "../connectors/redis/feature-log.ts";
import type { FeaturesSinkConfig } from "../connectors/redis/config.ts";
import { Connections } from "../runtime/connections.ts";
import { defaultCatalogue, Fleet } from "../runtime/fleet.ts";
import { groupOf, loadTopologyFile } from "../topology/loader.ts";
import type { Topology } from "../topology/model.ts";
import { keys, versionStore } from "./layout.ts";
import { readActive, readVersions, stripVersion, writeVersions, writersKey } from "./versions.ts";
import type { VersionEntry } from "./versions.ts";

export interface RebuildOptions {
  file: string;
  view: string;
  /** Event-time start: the first record with a Kafka timestamp at or after it, per partition. */
  from: number;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Keep applying after the switch until the topology takes over (default true). */
  follow?: boolean;
  /** Ends the rebuild early (before the switch: nothing is switched). */
  signal?: AbortSignal;
  /** Progress lines. */
  report?: (line: string) => void;
  /** Called between the catch-up and the switch (tests look at what readers see then). */
  beforeSwitch?: () => Promise<void>;
  pollMs?: number;
}

export interface RebuildResult {
  version: number;
  store: string;
  switched: boolean;
  group: string;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

export async function rebuildView(o: RebuildOptions): Promise<RebuildResult> {
  const report = o.report ?? (() => undefined);
  const loaded = await loadTopologyFile(o.file, defaultCatalogue());
  const t = loaded.topology as Topology;
  const at = t.sinks.findIndex((s) => s.type === "redis.features" && (s.config as FeaturesSinkConfig).views.some((v) => v.name === o.view));
  if (at < 0) {
    const known = t.sinks.filter((s) => s.type === "redis.features").flatMap((s) => (s.config as FeaturesSinkConfig).views.map((v) => v.name));
    throw new SfError("SF_ERR_CLI_USAGE", `${o.file}: no redis.features sink has a view named "${o.view}" (views: ${known.join(", ") || "none"})`);
  }
  const topics = t.source.topics ? [...t.source.topics] : [];
  if (topics.length === 0) throw new SfError("SF_ERR_CLI_USAGE", `${o.file}: source.pattern is not supported by features rebuild; list the topics in source.topics`);
  const sinkDef = t.sinks[at]!;
  const sinkConfig = sinkDef.config as FeaturesSinkConfig;
  const viewConfig = sinkConfig.views.find((v) => v.name === o.view)!;
  const def = compileView(viewConfig).def;
  const prefix = sinkConfig.key_prefix;
  const connections = new Connections(o.env);
  const redis = createRedisClient(connections, sinkConfig.connection);
  const offsets = await openGroupOffsets(connections, t.source.connection, o.logger, "streamfleet-rebuild");
  let fleet: Fleet | undefined;
  const started = Date.now();
  try {
    // 1. the new version, recorded as building
    const active = await readActive(redis, prefix, o.view);
    const history = await readVersions(redis, prefix, o.view);
    const version = Math.max(1, active?.version ?? 1, ...history.map((h) => h.version)) + 1;
    const store = versionStore(o.view, version);
    if (active && !history.some((h) => h.version === (active.version ?? 1))) {
      history.push({ version: active.version ?? 1, store: active.store ?? o.view, definition: stripVersion(active), state: "active", created_at: started });
    }
    history.push({ version, store, definition: def, state: "building", created_at: started, from: o.from });
    await writeVersions(redis, prefix, o.view, history);
    report(`view ${o.view}: building version ${version} (store ${store}) from ${new Date(o.from).toISOString()}; readers stay on version ${active?.version ?? 1}`);

    // 2. its own group, starting at --from; the end offsets as of now are the target
    const group = `${groupOf(t)}.rebuild.${o.view}.v${version}`;
    const target = new Map<string, bigint>();
    for (const topic of topics) {
      for (const [partition, end] of await offsets.ends(topic)) target.set(`${topic}/${partition}`, end);
      await offsets.set(group, topic, await offsets.startsAt(topic, o.from));
    }
    const copy: Topology = {
      ...t,
      name: `${t.name}.rebuild.${o.view}.v${version}`,
      source: { ...t.source, group },
      sinks: [{ ...sinkDef, routedOnly: false, config: { ...sinkConfig, views: [viewConfig], __stores: { [o.view]: store } } }],
      errors: { ...t.errors, dlq: { ...t.errors.dlq, topic: `${t.name}.rebuild.dlq` } },
    };
    fleet = new Fleet([{ file: loaded.file, baseDir: loaded.baseDir, topology: copy }], { env: o.env, logger: o.logger });
    await fleet.start();

    // 3. caught up: every partition consumed to its end offset as of the start
    const pollMs = o.pollMs ?? 500;
    for (;;) {
      if (o.signal?.aborted) {
        report(`view ${o.view}: stopped before the switch; readers stay on version ${active?.version ?? 1} (version ${version} is left building: drop it with \`streamfleet features drop-version\`)`);
        return { version, store, switched: false, group };
      }
      const done = await offsets.committed(group, topics);
      const behind = [...target].filter(([k, end]) => (done.get(k) ?? -1n) < end && end > 0n);
      if (behind.length === 0) break;
      await sleep(pollMs, o.signal);
    }
    await o.beforeSwitch?.();

    // 4. the switch: one HSET of the registry entry
    const now = Date.now();
    const latest = await readVersions(redis, prefix, o.view);
    const next: VersionEntry[] = latest.map((h) => (h.version === version ? { ...h, state: "active", switched_at: now } : h.state === "active" ? { ...h, state: "retired" } : h));
    await writeVersions(redis, prefix, o.view, next);
    await redis.hset(keys.views(prefix), o.view, JSON.stringify({ ...def, version, store }));
    report(`view ${o.view}: readers switched to version ${version}`);

    // 5. follow until the topology writes the new version itself
    if (o.follow !== false) {
      report(`view ${o.view}: applying new records to version ${version} until the topology runs the new definition (or SIGINT/SIGTERM)`);
      while (!o.signal?.aborted) {
        const since = Number((await redis.hget(writersKey(prefix), store)) ?? 0);
        if (since >= started) {
          const mine = await offsets.committed(group, topics);
          const theirs = await offsets.committed(groupOf(t), topics);
          if ([...theirs].every(([k, off]) => (mine.get(k) ?? -1n) >= off)) {
            report(`view ${o.view}: the topology writes version ${version}; the rebuild is done`);
            break;
          }
        }
        await sleep(pollMs, o.signal);
      }
    }
    return { version, store, switched: true, group };
  } finally {
    await fleet?.stop(10_000);
    await offsets.close();
    redis.disconnect();
  }
}

/**
 * Deletes a version readers no longer read: its entity keys (SCAN + UNLINK) and its history
 * entry; with `offline`, its offline log rows are left (DELETE them, or DROP the partition).
 */
export async function dropVersion(redis: ReturnType<typeof createRedisClient>, prefix: string, view: string, version: number): Promise<number> {
  const active = await readActive(redis, prefix, view);
  if ((active?.version ?? 1) === version) throw new SfError("SF_ERR_CLI_USAGE", `version ${version} of view ${view} is the one readers read; rebuild another version first`);
  const history = await readVersions(redis, prefix, view);
  const entry = history.find((h) => h.version === version);
  const store = entry?.store ?? versionStore(view, version);
  const pattern = `${keys.entity(prefix, store, "*").replace(/[[\]?]/g, "\\$&")}`;
  const nodes = "nodes" in redis && typeof redis.nodes === "function" ? redis.nodes("master") : [redis];
  let deleted = 0;
  for (const node of nodes) {
    let cursor = "0";
    do {
      const [next, found] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      for (const k of found) deleted += await node.unlink(k);
    } while (cursor !== "0");
  }
  await writeVersions(redis, prefix, view, history.filter((h) => h.version !== version));
  await redis.hdel(writersKey(prefix), store);
  return deleted;
}
