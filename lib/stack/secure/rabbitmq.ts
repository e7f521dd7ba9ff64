import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Daemons } from "../daemon.ts";
import { StackError } from "../errors.ts";
import type { Certs } from "./certs.ts";
import { PRINCIPALS, readSecret, secretFile } from "./secrets.ts";
import { chownTree, copyTls, runAs } from "./system-user.ts";

/**
 * A second RabbitMQ node of our own (its own node name, distribution port, mnesia and log
 * dirs, no plugins): AMQP over TLS only, no guest (the definitions imported at boot replace
 * the default user), one worker user with every permission on its own vhost.
 */
export const SECURE_VHOST = "streamfleet";
const SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/** RabbitMQ's stored form of a password: base64(salt ‖ sha256(salt ‖ password)). */
export function rabbitPasswordHash(password: string, salt = crypto.randomBytes(4)): string {
  return Buffer.concat([salt, crypto.createHash("sha256").update(Buffer.concat([salt, Buffer.from(password, "utf8")])).digest()]).toString("base64");
}

export function startSecureRabbit(daemons: Daemons, stateDir: string, port: number, certs: Certs, secrets: string): void {
  if (!fs.existsSync(SERVER)) throw new StackError("SF_ERR_STACK_NO_RABBITMQ", `${SERVER} is missing: install RabbitMQ (\`apt-get install rabbitmq-server\`); the secured stack runs a second node of its own`);
  const user = runAs("rabbitmq");
  const home = path.join(stateDir, "rabbitmq");
  fs.mkdirSync(path.join(home, "log"), { recursive: true, mode: 0o700 });
  const tls = copyTls({ ca: certs.ca, cert: certs.cert, key: certs.key }, path.join(home, "tls"));
  const definitions = {
    users: [{ name: PRINCIPALS.rabbitWorker, password_hash: rabbitPasswordHash(readSecret(secrets, "rabbitWorker")), hashing_algorithm: "rabbit_password_hashing_sha256", tags: [] }],
    vhosts: [{ name: SECURE_VHOST }],
    permissions: [{ user: PRINCIPALS.rabbitWorker, vhost: SECURE_VHOST, configure: ".*", write: ".*", read: ".*" }],
  };
  fs.writeFileSync(path.join(home, "definitions.json"), JSON.stringify(definitions), { mode: 0o600 });
  fs.writeFileSync(
    path.join(home, "rabbitmq.conf"),
    [
      "# written by `streamfleet stack up --secure`",
      "listeners.tcp = none",
      `listeners.ssl.default = 127.0.0.1:${port}`,
      `ssl_options.cacertfile = ${tls.ca}`,
      `ssl_options.certfile = ${tls.cert}`,
      `ssl_options.keyfile = ${tls.key}`,
      "ssl_options.verify = verify_none",
      "ssl_options.fail_if_no_peer_cert = false",
      `load_definitions = ${path.join(home, "definitions.json")}`,
      "",
    ].join("\n"),
  );
  fs.writeFileSync(path.join(home, "enabled_plugins"), "[].\n");
  fs.writeFileSync(path.join(home, "rabbitmq-env.conf"), "");
  chownTree(home, user);
  daemons.start({
    name: "rabbitmq",
    command: SERVER,
    args: [],
    cwd: home,
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    env: {
      PATH: process.env.PATH,
      // The system node's Erlang cookie, so that rabbitmqctl of the same user can reach ours.
      HOME: user?.home ?? process.env.HOME,
      RABBITMQ_NODENAME: "streamfleet-secure@localhost",
      RABBITMQ_CONF_ENV_FILE: path.join(home, "rabbitmq-env.conf"),
      RABBITMQ_CONFIG_FILE: path.join(home, "rabbitmq.conf"),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(home, "enabled_plugins"),
      RABBITMQ_MNESIA_BASE: path.join(home, "mnesia"),
      RABBITMQ_LOG_BASE: path.join(home, "log"),
      RABBITMQ_DIST_PORT: String(port + 20000),
      ERL_EPMD_ADDRESS: "127.0.0.1",
    },
  });
}

/** The client variables of the worker user: amqps to its vhost with the stack's CA. */
export function rabbitClientEnv(port: number, certs: Certs, secrets: string): Record<string, string> {
  return {
    AMQP_URL: `amqps://localhost:${port}/${SECURE_VHOST}`,
    AMQP_USERNAME: PRINCIPALS.rabbitWorker,
    AMQP_PASSWORD_FILE: secretFile(secrets, "rabbitWorker"),
    AMQP_TLS_CA_FILE: certs.ca,
  };
}
