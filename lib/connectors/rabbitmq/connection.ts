import amqp from "amqplib";
import type { ChannelModel, SocketOptions } from "amqplib";
import type { Connections } from "../../runtime/connections.ts";

/** Where and how to connect, resolved once from the environment; never logged. */
export interface AmqpTarget {
  url: string;
  socketOptions: Record<string, unknown>;
  /** The host and vhost only, fit for logs and errors. */
  display: string;
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
  return { url: u.toString(), socketOptions, display: `${u.protocol}//${u.host}${u.pathname}` };
}

/** Opens one AMQP connection (no built-in recovery: the sink owns reconnecting). */
export async function connectAmqp(target: AmqpTarget, clientName: string): Promise<ChannelModel> {
  const options = { ...target.socketOptions, clientProperties: { connection_name: clientName } } as SocketOptions;
  return amqp.connect(target.url, options);
}
