import type { BaseOptions, SASLMechanismValue, Serializers } from "@platformatic/kafka";
import { SfError } from "../../../errors.ts";
import type { Connections } from "../../../runtime/connections.ts";
import { securityErrorOf } from "../security.ts";

/** The Kafka clients a connection can use (`KAFKA_CLIENT`, per connection like every KAFKA_* variable). */
export type KafkaClientKind = "kafkajs" | "platformatic";

/**
 * The client a connection uses when KAFKA_CLIENT does not say: @platformatic/kafka (why: README,
 * "Kafka clients"; kafkajs was the default until 2026-12-04).
 */
export const DEFAULT_KAFKA_CLIENT: KafkaClientKind = "platformatic";

/** Which client connection `name` uses: KAFKA_CLIENT (or KAFKA_CLIENT__<NAME>), DEFAULT_KAFKA_CLIENT when unset. */
export function clientKind(connections: Connections, name: string): KafkaClientKind {
  const v = (connections.get("KAFKA_CLIENT", name) ?? DEFAULT_KAFKA_CLIENT).trim().toLowerCase();
  if (v === "kafkajs" || v === "platformatic") return v;
  throw new SfError("SF_ERR_CONFIG_MISSING", `${connections.variable("KAFKA_CLIENT", name)} must be kafkajs or platformatic, got ${v}`);
}

/** How a group's partitions move on a rebalance (`KAFKA_REBALANCE`, per connection; @platformatic/kafka only). */
export type RebalanceMode = "eager" | "cooperative";

/**
 * KAFKA_REBALANCE (or KAFKA_REBALANCE__<NAME>): `eager` (the default: every join takes every
 * partition from every member) or `cooperative` (cooperative-sticky, KIP-429: only the partitions
 * that change owner stop). Every worker of a group must use the same (the broker refuses a join
 * whose protocol no member shares). kafkajs has no cooperative protocol and ignores it.
 */
export function rebalanceMode(connections: Connections, name: string): RebalanceMode {
  const v = (connections.get("KAFKA_REBALANCE", name) ?? "eager").trim().toLowerCase();
  if (v === "eager" || v === "cooperative") return v;
  throw new SfError("SF_ERR_CONFIG_MISSING", `${connections.variable("KAFKA_REBALANCE", name)} must be eager or cooperative, got ${v}`);
}

const SASL: Record<string, SASLMechanismValue> = { plain: "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512" };

/**
 * @platformatic/kafka base options for a named connection, from the same variables the kafkajs
 * client reads (KAFKA_BROKERS, KAFKA_CLIENT_ID, KAFKA_SSL, KAFKA_SSL_CA_FILE, KAFKA_SASL_*).
 */
export function platformaticOptions(connections: Connections, name: string, clientId = "streamfleet"): BaseOptions {
  const brokers = connections.require("KAFKA_BROKERS", name).split(",").map((b) => b.trim());
  const options: BaseOptions = {
    clientId: connections.get("KAFKA_CLIENT_ID", name) ?? clientId,
    bootstrapBrokers: brokers,
    retries: 8,
    retryDelay: 250,
    // Refresh metadata every 30 s, as the kafkajs consumer does: new partitions are seen soon.
    metadataMaxAge: 30_000,
  };
  const ca = connections.file("KAFKA_SSL_CA_FILE", name);
  if (connections.flag("KAFKA_SSL", name) || ca) options.tls = ca ? { ca: [ca] } : {};
  const mechanism = connections.get("KAFKA_SASL_MECHANISM", name);
  if (mechanism) {
    const m = SASL[mechanism];
    if (!m) throw new SfError("SF_ERR_CONFIG_MISSING", `KAFKA_SASL_MECHANISM must be plain, scram-sha-256 or scram-sha-512, got ${mechanism}`);
    options.sasl = { mechanism: m, username: connections.require("KAFKA_SASL_USERNAME", name), password: connections.require("KAFKA_SASL_PASSWORD", name) };
  }
  return options;
}

/** Bytes as they are, strings as UTF-8: what every record field and header is written as. */
function toBuffer(data: unknown): Buffer | undefined {
  if (data === undefined || data === null) return undefined;
  return Buffer.isBuffer(data) ? data : Buffer.from(String(data));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const bufferSerializers: Serializers<any, any, any, any> = { key: toBuffer, value: toBuffer, headerKey: toBuffer, headerValue: toBuffer };


/** @platformatic/kafka nests causes in `cause` and `errors` (MultipleErrors). */
function* chain(err: unknown, depth = 0): Generator<{ code?: unknown; apiId?: unknown }> {
  if (!err || typeof err !== "object" || depth > 6) return;
  const e = err as { code?: unknown; apiId?: unknown; cause?: unknown; errors?: unknown[] };
  yield e;
  yield* chain(e.cause, depth + 1);
  for (const inner of Array.isArray(e.errors) ? e.errors : []) yield* chain(inner, depth + 1);
}

/**
 * A @platformatic/kafka failure no retry fixes (credentials refused, an ACL denial, a refused
 * certificate) as one SfError naming the connection; undefined for anything else.
 */
export function platformaticSecurityError(err: unknown, connections: Connections, name: string, resource: { topics?: string[]; group?: string } = {}): SfError | undefined {
  return securityErrorOf(
    err,
    chain(err),
    (e) => ({ authFailed: e.code === "PLT_KFK_AUTHENTICATION" || e.apiId === "SASL_AUTHENTICATION_FAILED", error: typeof e.apiId === "string" ? e.apiId : undefined }),
    connections,
    name,
    resource,
  );
}
