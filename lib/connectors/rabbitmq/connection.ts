import amqp from "amqplib";
import type { ChannelModel, SocketOptions } from "amqplib";
import type { SfError } from "../../errors.ts";
import { authDenied, authFailed, tlsError } from "../../runtime/connections.ts";
import type { Connections, SecuredConnection } from "../../runtime/connections.ts";

/** Where and how to connect, resolved once from the environment; never logged. */
export interface AmqpTarget {
  url: string;
  socketOptions: Record<string, unknown>;
  /** The host and vhost only, fit for logs and errors. */
  display: string;
  /** How the connection is secured, for security errors (variable names, never values). */
  secured: SecuredConnection & { user: string; vhost: string };
}

/**
 * Connection `name`: AMQP_URL(__NAME); AMQP_USERNAME and AMQP_PASSWORD(_FILE) override the
 * URL's credentials; AMQP_TLS_CA_FILE (and optional AMQP_TLS_CERT_FILE / AMQP_TLS_KEY_FILE)
 * for amqps://.
 */
export function amqpTarget(connections: Connections, name: string): AmqpTarget {
  const u = new URL(connections.require("AMQP_URL", name));
  const username = connections.get("AMQP_USERNAME", name);
  const password = connections.get("AMQP_PASSWORD", name);
  if (username) u.username = encodeURIComponent(username);
  if (password) u.password = encodeURIComponent(password);
  const socketOptions: Record<string, unknown> = {};
  const ca = connections.file("AMQP_TLS_CA_FILE", name);
  const cert = connections.file("AMQP_TLS_CERT_FILE", name);
  const key = connections.file("AMQP_TLS_KEY_FILE", name);
  if (ca) socketOptions.ca = [ca];
  if (cert) socketOptions.cert = cert;
  if (key) socketOptions.key = key;
  const display = `${u.protocol}//${u.host}${u.pathname}`;
  const v = (variable: string) => connections.variable(variable, name);
  const secured = {
    what: `RabbitMQ connection "${name}"`,
    target: display,
    credentials: `${v("AMQP_USERNAME")} and ${v("AMQP_PASSWORD")} (or ${v("AMQP_PASSWORD")}_FILE), or the user in ${v("AMQP_URL")}`,
    ca: v("AMQP_TLS_CA_FILE"),
    user: decodeURIComponent(u.username) || "guest",
    vhost: decodeURIComponent(u.pathname.slice(1)) || "/",
  };
  return { url: u.toString(), socketOptions, display, secured };
}

/**
 * A refused login (403 ACCESS_REFUSED in the handshake), a vhost the user may not open, a
 * declaration the user's permissions refuse (403 on a channel) or a refused certificate, as
 * one non-retriable SfError naming the connection and what to check; undefined otherwise.
 * amqplib's texts for these carry the broker's reply, never the password.
 */
export function amqpSecurityError(err: unknown, target: AmqpTarget): SfError | undefined {
  const c = target.secured;
  const message = err instanceof Error ? err.message : "";
  if (/^Handshake terminated by server: 403\b/.test(message)) return authFailed(err, c, `RabbitMQ refused the login of user ${c.user} (ACCESS_REFUSED)`);
  // The broker answers connection.open with connection.close (530 NOT_ALLOWED): no such vhost, or no permission on it.
  if (/^Expected ConnectionOpenOk; got <ConnectionClose/.test(message)) return authDenied(err, c, `user ${c.user}`, `vhost "${c.vhost}" (it does not exist, or the user has no permission on it): check the vhost in AMQP_URL and the user's permissions`);
  if ((err as { code?: unknown } | undefined)?.code === 403 && /ACCESS_REFUSED/.test(message)) return authDenied(err, c, `user ${c.user}`, `an operation on vhost "${c.vhost}" (${message.replace(/^.*ACCESS_REFUSED - /, "").replace(/"$/, "")}): check the user's configure/write permissions`);
  return tlsError(err, c);
}

/** Opens one AMQP connection (no built-in recovery: the sink owns reconnecting). */
export async function connectAmqp(target: AmqpTarget, clientName: string): Promise<ChannelModel> {
  const options = { ...target.socketOptions, clientProperties: { connection_name: clientName } } as SocketOptions;
  return amqp.connect(target.url, options);
}
