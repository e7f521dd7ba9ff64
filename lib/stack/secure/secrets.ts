import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

/**
 * The secured stack's credentials: one random password per principal, made once and kept in
 * its own file (mode 0600) under `<dir>`. Workers and tests are handed the file's path
 * (`*_PASSWORD_FILE`), never the value; nothing here prints one.
 */
export const PRINCIPALS = {
  /** Kafka: super user (ACLs, topics of any name); also the broker's inter-broker login. */
  kafkaAdmin: "kafka-admin",
  /** Kafka: the worker, allowed only the example fleets' topics and its consumer groups. */
  kafkaWorker: "kafka-worker",
  /** Redis: every command and key (tests clean up with it). */
  redisAdmin: "redis-admin",
  /** Redis: the worker, limited to the keys and channels streamfleet writes. */
  redisWorker: "redis-worker",
  /** RabbitMQ: the worker's user on its own vhost. */
  rabbitWorker: "rabbit-worker",
  /** PostgreSQL: the superuser of the secured instance. */
  pgAdmin: "sf_pg_admin",
  /** PostgreSQL: the worker's role, owner of its database. */
  pgWorker: "sf_pg_worker",
  /** The feature server's bearer token. */
  featuresToken: "features-token",
} as const;

export type Principal = keyof typeof PRINCIPALS;

export function secretFile(dir: string, who: Principal): string {
  return path.join(dir, `${PRINCIPALS[who]}.secret`);
}

/** Creates every missing secret file; existing ones are kept (a second `up` reuses them). */
export function ensureSecrets(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const who of Object.keys(PRINCIPALS) as Principal[]) {
    const file = secretFile(dir, who);
    // URL- and config-safe characters only: the values go into server config files.
    if (!fs.existsSync(file)) fs.writeFileSync(file, crypto.randomBytes(24).toString("base64url"), { mode: 0o600 });
  }
}

/** A secret's value, for the stack's own server configuration (never for output). */
export function readSecret(dir: string, who: Principal): string {
  return fs.readFileSync(secretFile(dir, who), "utf8").trim();
}
