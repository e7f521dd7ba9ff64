import { Kafka, logLevel } from "kafkajs";
import type { KafkaConfig, SASLOptions } from "kafkajs";
import type { Logger } from "pino";
import { SfError } from "../../errors.ts";
import type { Connections } from "../../runtime/connections.ts";
import { securityErrorOf } from "./security.ts";

/**
 * A kafkajs client for a named connection: KAFKA_BROKERS, KAFKA_CLIENT_ID, KAFKA_SSL,
 * KAFKA_SSL_CA_FILE, KAFKA_SASL_MECHANISM (plain, scram-sha-256, scram-sha-512),
 * KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (each with a __<NAME> suffix for named
 * connections and a _FILE variant).
 */
export function createKafka(connections: Connections, name: string, logger: Logger, clientId = "streamfleet"): Kafka {
  const brokers = connections.require("KAFKA_BROKERS", name).split(",").map((b) => b.trim());
  const config: KafkaConfig = {
    clientId: connections.get("KAFKA_CLIENT_ID", name) ?? clientId,
    brokers,
    logLevel: logLevel.WARN,
    logCreator: () => (entry) => {
      const { message, ...extra } = entry.log;
      // Deliberate: a send that exhausts its retries surfaces to the batch, which pauses the
      // partition and re-sends until it works; unbounded producer retries would hide the outage.
      if (message === LIMITED_RETRIES) return;
      const level = entry.level === logLevel.ERROR ? "error" : entry.level === logLevel.WARN ? "warn" : "debug";
      logger[level]({ kafkajs: entry.namespace, ...pickSafe(extra) }, message);
    },
    retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 10_000 },
  };
  const ca = connections.file("KAFKA_SSL_CA_FILE", name);
  if (connections.flag("KAFKA_SSL", name) || ca) config.ssl = ca ? { ca: [ca] } : true;
  const mechanism = connections.get("KAFKA_SASL_MECHANISM", name);
  if (mechanism) {
    if (!["plain", "scram-sha-256", "scram-sha-512"].includes(mechanism)) {
      throw new SfError("SF_ERR_CONFIG_MISSING", `KAFKA_SASL_MECHANISM must be plain, scram-sha-256 or scram-sha-512, got ${mechanism}`);
    }
    config.sasl = {
      mechanism,
      username: connections.require("KAFKA_SASL_USERNAME", name),
      password: connections.require("KAFKA_SASL_PASSWORD", name),
    } as SASLOptions;
  }
  return new Kafka(config);
}

const LIMITED_RETRIES = "Limiting retries for the idempotent producer may invalidate EoS guarantees";

/** kafkajs log extras can carry request payloads; keep only plain identifiers. */
function pickSafe(extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ["groupId", "memberId", "topic", "partition", "broker", "error", "retryCount", "retryTime"]) {
    if (extra[k] !== undefined) out[k] = extra[k];
  }
  // An Error serialises to its enumerable fields only; keep its message (ours name no secret).
  if (out.error instanceof Error) {
    const e = out.error as Error & { code?: unknown };
    out.error = { name: e.name, message: e.message, ...(e.code !== undefined ? { code: e.code } : {}) };
  }
  return out;
}

/** kafkajs wraps causes in `cause`, `originalError` (retries) and `errors` (aggregates). */
function* chain(err: unknown, depth = 0): Generator<{ name?: string; type?: string; code?: unknown }> {
  if (!err || typeof err !== "object" || depth > 6) return;
  const e = err as { name?: string; type?: string; cause?: unknown; originalError?: unknown; errors?: unknown[] };
  yield e;
  yield* chain(e.cause, depth + 1);
  yield* chain(e.originalError, depth + 1);
  for (const inner of e.errors ?? []) yield* chain(inner, depth + 1);
}

/** `securityErrorOf` for kafkajs's errors. */
export function kafkaSecurityError(err: unknown, connections: Connections, name: string, resource: { topics?: string[]; group?: string } = {}): SfError | undefined {
  return securityErrorOf(err, chain(err), (e) => ({ authFailed: e.name === "KafkaJSSASLAuthenticationError", error: e.type }), connections, name, resource);
}
