import { Redis } from "ioredis";
import type { RedisOptions } from "ioredis";
import { SfError } from "../../errors.ts";
import { authDenied, authFailed, redactUrl, tlsError } from "../../runtime/connections.ts";
import type { Connections, SecuredConnection } from "../../runtime/connections.ts";

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

function securedOf(client: Redis): (SecuredConnection & { user: string }) | undefined {
  return (client as unknown as { sfSecured?: SecuredConnection & { user: string } }).sfSecured;
}

/**
 * The security error behind a failure of a client made by `createRedis`: the error itself
 * (WRONGPASS, NOPERM, a refused certificate) or, when it only says the connection is closed or
 * not ready, the client's last error event (a refused login reaches callers only that way).
 */
export function clientSecurityError(err: unknown, client: Redis): SfError | undefined {
  const lastError = (client as unknown as { sfLastError?: Error }).sfLastError;
  const closed = /Connection is closed|Redis connection is /.test(err instanceof Error ? err.message : "");
  return redisSecurityError(err, securedOf(client)) ?? (closed ? redisSecurityError(lastError, securedOf(client)) : undefined);
}

/** A NOPERM reply: the ACL denies it, so no retry and no dead-lettering record by record helps. */
function isDenied(err: Error): boolean {
  return /^NOPERM\b/.test(err.message);
}

/** The URL of a client without its password, for logs and error messages. */
export function describeTarget(client: Redis): string {
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
export function toSfError(err: unknown, client: Redis, where: string): SfError {
  if (err instanceof SfError) return err;
  const security = clientSecurityError(err, client);
  if (security) return security;
  if (isReplyError(err)) {
    return new SfError("SF_ERR_SINK_REJECTED", `Redis at ${describeTarget(client)} refused a command: ${(err as Error).message}`, { cause: err, where });
  }
  const reason = err instanceof Error ? err.message : String(err);
  return new SfError("SF_ERR_SINK_NOT_CONNECTED", `Redis at ${describeTarget(client)} is unreachable (${reason}); the batch will be retried`, { cause: err, where });
}

/** Connects a lazy client (once); maps a failure to SF_ERR_SINK_NOT_CONNECTED. */
export async function ensureConnected(client: Redis, where: string): Promise<void> {
  if (client.status === "ready" || client.status === "connect" || client.status === "connecting" || client.status === "reconnecting") return;
  try {
    await client.connect();
  } catch (err) {
    throw toSfError(err, client, where);
  }
}

/** A pipeline's results: throws once for a connection failure; returns per-command errors. */
export async function execPipeline(client: Redis, pipeline: ReturnType<Redis["pipeline"]>, where: string): Promise<Array<[Error | null, unknown]>> {
  let results: Array<[Error | null, unknown]> | null;
  try {
    results = await pipeline.exec();
  } catch (err) {
    throw toSfError(err, client, where);
  }
  if (!results) throw new SfError("SF_ERR_SINK_NOT_CONNECTED", `Redis at ${describeTarget(client)} dropped a pipeline; the batch will be retried`, { where });
  for (const [err] of results) if (err && (!isReplyError(err) || isDenied(err))) throw toSfError(err, client, where);
  return results;
}

/** open/close shared by the Redis steps (a client the step created is closed with it). */
export function redisStepLifecycle(redis: Redis, owned: boolean, where: string): { open(): Promise<void>; close(): Promise<void> } {
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
export function redisLifecycle(redis: Redis, owned: boolean, where: string): { close(): Promise<void>; health(): Promise<void> } {
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
