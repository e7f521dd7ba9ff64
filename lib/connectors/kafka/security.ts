import type { SfError } from "../../errors.ts";
import { authDenied, authFailed, tlsError } from "../../runtime/connections.ts";
import type { Connections, SecuredConnection } from "../../runtime/connections.ts";

/*
 * What both Kafka clients' failures mean for security (no client imported here: a worker loads
 * only the client its connections use).
 */

/** How connection `name` is secured, for error messages (no secret: variable names only). */
export function kafkaSecured(connections: Connections, name: string): SecuredConnection {
  const v = (variable: string) => connections.variable(variable, name);
  return {
    what: `Kafka connection "${name}"`,
    target: connections.get("KAFKA_BROKERS", name) ?? "?",
    credentials: `${v("KAFKA_SASL_MECHANISM")}, ${v("KAFKA_SASL_USERNAME")} and ${v("KAFKA_SASL_PASSWORD")} (or ${v("KAFKA_SASL_PASSWORD")}_FILE)`,
    ca: v("KAFKA_SSL_CA_FILE"),
  };
}

const DENIED: Record<string, string> = {
  TOPIC_AUTHORIZATION_FAILED: "topic",
  GROUP_AUTHORIZATION_FAILED: "consumer group",
  CLUSTER_AUTHORIZATION_FAILED: "cluster",
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
};

/** What one link of a client's error chain says: credentials refused, or the broker's error name of a denial. */
export interface KafkaErrorLink {
  authFailed: boolean;
  /** The broker's error name, e.g. TOPIC_AUTHORIZATION_FAILED (only the authorization ones matter). */
  error?: string;
}

/**
 * A Kafka failure that no retry fixes — credentials refused, an ACL denial, a refused
 * certificate — as one SfError naming the connection, the principal and `resource` (the
 * topics or group asked for); undefined for anything else (outages stay retriable). Each
 * client walks its own error chain; `read` says what a link of it means.
 */
export function securityErrorOf<E extends object>(
  err: unknown,
  links: Iterable<E>,
  read: (link: E) => KafkaErrorLink,
  connections: Connections,
  name: string,
  resource: { topics?: string[]; group?: string } = {},
): SfError | undefined {
  const c = kafkaSecured(connections, name);
  const user = connections.get("KAFKA_SASL_USERNAME", name);
  for (const e of links) {
    const link = read(e);
    if (link.authFailed) {
      return authFailed(err, c, `SASL ${(connections.get("KAFKA_SASL_MECHANISM", name) ?? "").toUpperCase()} authentication failed for user ${user ?? "(none)"}`);
    }
    const kind = link.error ? DENIED[link.error] : undefined;
    if (kind) {
      const what = kind === "topic" ? `topic ${resource.topics?.join(", ") ?? "(unknown)"}` : kind === "consumer group" ? `consumer group ${resource.group ?? "(unknown)"}` : kind;
      return authDenied(err, c, user ? `User:${user}` : "this client", `access to ${what}`);
    }
    const tls = tlsError(e, c);
    if (tls) return tls;
  }
  return undefined;
}
