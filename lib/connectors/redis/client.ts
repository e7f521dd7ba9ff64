import { Cluster, Redis } from "ioredis";
import type { ChainableCommander, RedisOptions } from "ioredis";
import { SfError } from "../../errors.ts";
import { authDenied, authFailed, redactUrl, tlsError } from "../../runtime/connections.ts";
import type { Connections, SecuredConnection } from "../../runtime/connections.ts";
import { isClusterRedirect, perNodePipelines } from "./cluster.ts";
import type { RedisClient } from "./cluster.ts";

export type { RedisClient } from "./cluster.ts";

/**
 * Builds an ioredis client for a named connection. Settings come from the environment
 * (through Connections), never from topology files:
 * REDIS_URL[__NAME], REDIS_USERNAME[__NAME], REDIS_PASSWORD[__NAME] (or *_FILE),
 * REDIS_TLS_CA_FILE[__NAME]; a `rediss://` URL or a CA file turns TLS on.
 */
export function createRedis(connections: Connections, name = "default", extra: RedisOptions = {}): Redis {
  const url = connections.require("REDIS_URL", name);
  const username = connections.get("REDIS_USERNAME", name);
  const password = connections.get("REDIS_PASSWORD", name);
  const ca = connections.file("REDIS_TLS_CA_FILE", name);
  const tls = ca || url.startsWith("rediss://") ? { ...(ca ? { ca } : {}) } : undefined;
  const options: RedisOptions = {
    lazyConnect: true,
    connectTimeout: 5_000,
    // fail a command after two reconnect attempts: the core retries whole batches with back-off
    maxRetriesPerRequest: 2,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(tls ? { tls } : {}),
    ...extra,
  };
  const client = new Redis(url, options);
  // ioredis emits "error" on every failed reconnect; without a listener Node would throw. The
  // last one is kept: a refused login (WRONGPASS in HELLO) reaches connect() only as "Connection is closed".
  client.on("error", (err: Error) => Object.defineProperty(client, "sfLastError", { value: err, configurable: true, enumerable: false }));
  Object.defineProperty(client, "sfTarget", { value: redactUrl(url), enumerable: false });
  Object.defineProperty(client, "sfSecured", { value: redisSecured(connections, name, url, username), enumerable: false });
  return client;
}

/**
 * The client of connection `name` for the feature store, caches, publish and the Redis steps:
 * a Redis Cluster client (ioredis `Cluster`) when REDIS_CLUSTER_NODES[__NAME] names its seed
 * nodes (`host:port,host:port`; any node answers with the slot map), else `createRedis`'s.
 * Credentials and TLS come from the same variables (REDIS_USERNAME, REDIS_PASSWORD(_FILE),
 * REDIS_TLS_CA_FILE, which turns TLS on), for every node.
 */
export function createRedisClient(connections: Connections, name = "default", extra: RedisOptions = {}): RedisClient {
  const nodes = connections.get("REDIS_CLUSTER_NODES", name);
  if (nodes === undefined) return createRedis(connections, name, extra);
  const variable = connections.variable("REDIS_CLUSTER_NODES", name);
  const seeds = nodes.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(s);
    if (!m) throw new SfError("SF_ERR_CONFIG_MISSING", `${variable} is a comma-separated list of host:port, got an entry ${JSON.stringify(s.replace(/\/\/.*@/, "//***@"))}`);
    return { host: m[1]!, port: Number(m[2]) };
  });
  if (seeds.length === 0) throw new SfError("SF_ERR_CONFIG_MISSING", `${variable} names no node (expected host:port,host:port)`);
  const username = connections.get("REDIS_USERNAME", name);
  const password = connections.get("REDIS_PASSWORD", name);
  const ca = connections.file("REDIS_TLS_CA_FILE", name);
  const { enableAutoPipelining, retryStrategy, ...nodeOptions } = extra;
  const client = new Cluster(seeds, {
    lazyConnect: true,
    // give up on a start-up or reconnect as a single client does: the core retries whole batches
    clusterRetryStrategy: retryStrategy === undefined ? (times) => Math.min(times * 200, 2_000) : (times) => retryStrategy?.(times) ?? null,
    // a failover or resharding: commands wait for the new slot map rather than fail at once
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: 2_000,
    // a master that died without a MOVED to say so: its replica's promotion is seen within 2 s
    slotsRefreshInterval: 2_000,
    ...(enableAutoPipelining ? { enableAutoPipelining } : {}),
    redisOptions: {
      connectTimeout: 5_000,
      maxRetriesPerRequest: 2,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      ...(ca ? { tls: { ca } } : {}),
      ...nodeOptions,
    },
  });
  const target = `redis cluster ${seeds.map((s) => `${s.host}:${s.port}`).join(",")}`;
  // kept for clientSecurityError: a node's own answer (WRONGPASS, NOPERM), not the cluster's wrapper around it
  const keep = (err: Error) => Object.defineProperty(client, "sfLastError", { value: (err as Error & { lastNodeError?: Error }).lastNodeError ?? err, configurable: true, enumerable: false });
  client.on("error", keep);
  client.on("node error", keep);
  Object.defineProperty(client, "sfTarget", { value: target, enumerable: false });
  Object.defineProperty(client, "sfSecured", { value: { ...redisSecured(connections, name, "redis://cluster", username), target }, enumerable: false });
  return client;
}

/** How connection `name` is secured, for error messages (variable names, never values). */
export function redisSecured(connections: Connections, name: string, url: string, username: string | undefined): SecuredConnection & { user: string } {
  const v = (variable: string) => connections.variable(variable, name);
  return {
    what: `Redis connection "${name}"`,
    target: redactUrl(url),
    credentials: `${v("REDIS_USERNAME")} and ${v("REDIS_PASSWORD")} (or ${v("REDIS_PASSWORD")}_FILE)`,
    ca: v("REDIS_TLS_CA_FILE"),
    user: username ?? "default",
  };
}

/**
 * Credentials refused (WRONGPASS, NOAUTH), an ACL denial (NOPERM) or a refused certificate, as
 * one non-retriable SfError naming the connection and what to check; undefined otherwise.
 */
export function redisSecurityError(err: unknown, secured: (SecuredConnection & { user: string }) | undefined): SfError | undefined {
  if (!secured) return undefined;
  const message = err instanceof Error ? err.message : "";
  if (/^(WRONGPASS|NOAUTH)\b/.test(message)) return authFailed(err, secured, `Redis refused user ${secured.user} (${message.split(" ")[0]})`);
  // NOPERM texts name the command or say "a key"; they never carry a value
  if (/^NOPERM\b/.test(message)) return authDenied(err, secured, `user ${secured.user}`, `a command or key (${message}); check the user's key patterns (~) and commands (+@) in the Redis ACL`);
  return tlsError(err, secured);
}

function securedOf(client: RedisClient): (SecuredConnection & { user: string }) | undefined {
  return (client as unknown as { sfSecured?: SecuredConnection & { user: string } }).sfSecured;
}

/**
 * The security error behind a failure of a client made by `createRedis`: the error itself
 * (WRONGPASS, NOPERM, a refused certificate) or, when it only says the connection is closed or
 * not ready, the client's last error event (a refused login reaches callers only that way).
 */
export function clientSecurityError(err: unknown, client: RedisClient): SfError | undefined {
  const lastError = (client as unknown as { sfLastError?: Error }).sfLastError;
  // a Cluster client says only that no seed node answered, or that the slot map could not be read
  const closed = /Connection is closed|Redis connection is |None of startup nodes is available|Failed to refresh slots cache/.test(err instanceof Error ? err.message : "");
  return redisSecurityError(err, securedOf(client)) ?? (closed ? redisSecurityError(lastError, securedOf(client)) : undefined);
}

/** A NOPERM reply: the ACL denies it, so no retry and no dead-lettering record by record helps. */
function isDenied(err: Error): boolean {
  return /^NOPERM\b/.test(err.message);
}

/** The URL of a client without its password, for logs and error messages. */
export function describeTarget(client: RedisClient): string {
  return (client as unknown as { sfTarget?: string }).sfTarget ?? "redis";
}

/** A reply error (WRONGTYPE, script error): the server answered; retrying the batch will not help. */
export function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === "ReplyError";
}

/**
 * Maps an ioredis failure to the error catalogue, once for the whole connector: anything
 * that is not the server's answer (refused, reset, timeout, closed, max retries) is
 * SF_ERR_SINK_NOT_CONNECTED (retriable), so the core backs off and retries the batch.
 */
export function toSfError(err: unknown, client: RedisClient, where: string): SfError {
  if (err instanceof SfError) return err;
  const security = clientSecurityError(err, client);
  if (security) return security;
  if (isReplyError(err) && !isClusterRedirect(err)) {
    return new SfError("SF_ERR_SINK_REJECTED", `Redis at ${describeTarget(client)} refused a command: ${(err as Error).message}`, { cause: err, where });
  }
  const reason = err instanceof Error ? err.message : String(err);
  if (isClusterRedirect(err)) {
    // a failover or resharding: the slot map is read again at once, the batch retried after it
    if ((client as Cluster).isCluster) (client as Cluster).refreshSlotsCache();
    return new SfError("SF_ERR_SINK_NOT_CONNECTED", `the Redis Cluster at ${describeTarget(client)} is failing over or moving a slot (${reason}); the batch will be retried`, { cause: err, where });
  }
  return new SfError("SF_ERR_SINK_NOT_CONNECTED", `Redis at ${describeTarget(client)} is unreachable (${reason}); the batch will be retried`, { cause: err, where });
}

/** Connects a lazy client (once); maps a failure to SF_ERR_SINK_NOT_CONNECTED. */
export async function ensureConnected(client: RedisClient, where: string): Promise<void> {
  if (client.status === "ready" || client.status === "connect" || client.status === "connecting" || client.status === "reconnecting") return;
  try {
    await client.connect();
  } catch (err) {
    throw toSfError(err, client, where);
  }
}

/** A pipeline's results: throws once for a connection failure; returns per-command errors. */
export async function execPipeline(client: RedisClient, pipeline: ChainableCommander, where: string): Promise<Array<[Error | null, unknown]>> {
  let results: Array<[Error | null, unknown]> | null;
  try {
    results = await pipeline.exec();
  } catch (err) {
    throw toSfError(err, client, where);
  }
  if (!results) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `Redis at ${describeTarget(client)} dropped a pipeline; the batch will be retried`, { where });
  // a cluster's MOVED/TRYAGAIN/CLUSTERDOWN (a failover, a resharding) is no record's fault: the batch is retried
  for (const [err] of results) if (err && (!isReplyError(err) || isDenied(err) || isClusterRedirect(err))) throw toSfError(err, client, where);
  return results;
}

/**
 * Commands 0..count-1 as pipelines (`add` queues command i): one pipeline on a single Redis; on
 * a cluster one per node serving `keyOf(i)` (undefined: any node), sent at once. Results in
 * command order; a connection failure on any node throws for the whole batch (retried whole).
 */
export function execPerNode(
  client: RedisClient,
  count: number,
  keyOf: (i: number) => string | undefined,
  add: (p: ChainableCommander, i: number) => void,
  where: string,
  wait?: WaitReplicas,
): Promise<Array<[Error | null, unknown]>> {
  if (!wait) return perNodePipelines(client, count, keyOf, add, (p) => execPipeline(client, p, where));
  return perNodePipelines(client, count, keyOf, add, async (p) => {
    // WAIT ends each node's pipeline: it answers once that many replicas hold every write before it
    p.call("WAIT", wait.replicas, wait.timeoutMs);
    const results = await execPipeline(client, p, where);
    const [err, acked] = results.pop()!;
    if (err || Number(acked) < wait.replicas) {
      throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `Redis at ${describeTarget(client)}: ${err ? `WAIT failed (${err.message})` : `${Number(acked)} of ${wait.replicas} replica(s) acknowledged the write within ${wait.timeoutMs} ms`}; the batch will be retried`, { where });
    }
    return results;
  });
}

/** REDIS_WAIT_REPLICAS[__NAME]: writes count as done once this many replicas of their master hold them. */
export interface WaitReplicas {
  replicas: number;
  timeoutMs: number;
}

/**
 * The WAIT setting of connection `name`: REDIS_WAIT_REPLICAS (a whole number ≥ 1; unset or 0:
 * no WAIT) and REDIS_WAIT_TIMEOUT_MS (default 1000). Read by the sinks that commit offsets after
 * their write (redis.features, redis.cache), so a master failover cannot lose a committed write.
 */
export function waitReplicas(connections: Connections, name: string): WaitReplicas | undefined {
  const raw = connections.get("REDIS_WAIT_REPLICAS", name);
  if (raw === undefined || raw === "0") return undefined;
  const replicas = Number(raw);
  const timeoutMs = Number(connections.get("REDIS_WAIT_TIMEOUT_MS", name) ?? 1000);
  if (!Number.isInteger(replicas) || replicas < 1) throw new SfError("SF_ERR_CONFIG_MISSING", `${connections.variable("REDIS_WAIT_REPLICAS", name)} is a whole number of replicas (1 or more), got ${JSON.stringify(raw)}`);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new SfError("SF_ERR_CONFIG_MISSING", `${connections.variable("REDIS_WAIT_TIMEOUT_MS", name)} is a whole number of ms (1 or more)`);
  return { replicas, timeoutMs };
}

/** open/close shared by the Redis steps (a client the step created is closed with it). */
export function redisStepLifecycle(redis: RedisClient, owned: boolean, where: string): { open(): Promise<void>; close(): Promise<void> } {
  return {
    async open() {
      await ensureConnected(redis, where);
    },
    async close() {
      if (owned) redis.disconnect();
    },
  };
}

/**
 * close/health shared by the Redis sinks: a client the component created is closed with it;
 * one handed in (tests, shared clients) is left to its owner.
 */
export function redisLifecycle(redis: RedisClient, owned: boolean, where: string): { close(): Promise<void>; health(): Promise<void> } {
  return {
    async close() {
      if (owned) redis.disconnect();
    },
    async health() {
      await ensureConnected(redis, where);
      await redis.ping();
    },
  };
}
