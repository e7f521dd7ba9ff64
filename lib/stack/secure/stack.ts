import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Daemons } from "../daemon.ts";
import { StackError } from "../errors.ts";
import { startKafka } from "../kafka.ts";
import { tcpOpen, waitFor } from "../probe.ts";
import { startRegistry } from "../registry.ts";
import type { ServiceStatus } from "../stack.ts";
import { requireStackTools } from "../stack.ts";
import { ensureCerts } from "./certs.ts";
import type { Certs } from "./certs.ts";
import { applyWorkerAcls, kafkaClientEnv, scramUsers, secureKafkaProperties } from "./kafka.ts";
import { postgresClientEnv, startSecurePostgres } from "./postgres.ts";
import { rabbitClientEnv, startSecureRabbit } from "./rabbitmq.ts";
import { redisClientEnv, startSecureRedis } from "./redis.ts";
import { ensureSecrets, secretFile } from "./secrets.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * The secured stack (`stack up --secure`): servers of our own that demand credentials and
 * TLS, on their own loopback ports next to the open stack, with their state, certificates
 * and secret files under `<open state dir>/secure`. Each is started once and reused by a
 * second `up`; `down --secure` stops exactly these.
 */
export interface SecureOptions {
  stateDir: string;
  /** The open stack's state dir: its Kafka jars and registry jar are reused, not fetched again. */
  openStateDir: string;
  ports: { kafka: number; controller: number; redis: number; postgres: number; rabbitmq: number; registry: number };
  startTimeoutMs: number;
}

export const SECURE_SERVICES = ["kafka", "redis", "postgres", "rabbitmq", "registry"] as const;
type Service = (typeof SECURE_SERVICES)[number];

export function secureOptionsFromEnv(env: NodeJS.ProcessEnv): SecureOptions {
  const open = path.resolve(env.STREAMFLEET_STACK_DIR ?? path.join(ROOT, ".stack"));
  const num = (name: string, fallback: number) => Number(env[name] ?? fallback);
  const kafka = num("STREAMFLEET_SECURE_KAFKA_PORT", 9192);
  return {
    stateDir: path.join(open, "secure"),
    openStateDir: open,
    ports: {
      kafka,
      controller: num("STREAMFLEET_SECURE_KAFKA_CONTROLLER_PORT", kafka + 1),
      redis: num("STREAMFLEET_SECURE_REDIS_PORT", 6390),
      postgres: num("STREAMFLEET_SECURE_POSTGRES_PORT", 5433),
      rabbitmq: num("STREAMFLEET_SECURE_RABBITMQ_PORT", 5681),
      registry: num("STREAMFLEET_SECURE_REGISTRY_PORT", 8444),
    },
    startTimeoutMs: num("STREAMFLEET_STACK_TIMEOUT_MS", 120_000),
  };
}

const certsDir = (o: SecureOptions) => path.join(o.stateDir, "certs");
const secretsDir = (o: SecureOptions) => path.join(o.stateDir, "secrets");

/**
 * The variables a worker of the secured stack needs (the worker principals; passwords and
 * the token as file paths), and the admin principals as the named connection `admin`
 * (KAFKA_BROKERS__ADMIN…): what `stack env --secure` prints. Holds no secret value.
 */
export function secureEnv(o: SecureOptions): Record<string, string> {
  const certs = ensureCerts(certsDir(o));
  const secrets = secretsDir(o);
  // Made here too (as the certificates are): the paths printed before a first `up` name files that exist.
  ensureSecrets(secrets);
  const p = o.ports;
  const admin = (vars: Record<string, string>) => Object.fromEntries(Object.entries(vars).map(([k, v]) => [adminKey(k), v]));
  return {
    ...kafkaClientEnv(p.kafka, certs, secrets, "kafkaWorker"),
    SCHEMA_REGISTRY_URL: `https://localhost:${p.registry}/apis/ccompat/v7`,
    SCHEMA_REGISTRY_CA_FILE: certs.ca,
    ...redisClientEnv(p.redis, certs, secrets, "redisWorker"),
    ...rabbitClientEnv(p.rabbitmq, certs, secrets),
    ...postgresClientEnv(p.postgres, certs, secrets, "pgWorker"),
    FEATURE_SERVER_TOKEN_FILE: secretFile(secrets, "featuresToken"),
    FEATURE_SERVER_TLS_CERT_FILE: certs.cert,
    FEATURE_SERVER_TLS_KEY_FILE: certs.key,
    ...admin(kafkaClientEnv(p.kafka, certs, secrets, "kafkaAdmin")),
    ...admin(redisClientEnv(p.redis, certs, secrets, "redisAdmin")),
    ...admin(postgresClientEnv(p.postgres, certs, secrets, "pgAdmin")),
  };
}

/** KAFKA_SASL_PASSWORD_FILE -> KAFKA_SASL_PASSWORD__ADMIN_FILE (Connections' named form). */
function adminKey(key: string): string {
  return key.endsWith("_FILE") && !/_(CA|CERT|KEY)_FILE$/.test(key) && key !== "PGSSLROOTCERT" ? `${key.slice(0, -5)}__ADMIN_FILE` : `${key}__ADMIN`;
}

/** The paths of the certificates (for tests of bad certificates) — made if missing. */
export function secureCerts(o: SecureOptions): Certs {
  return ensureCerts(certsDir(o));
}

function portOf(o: SecureOptions, s: Service): number {
  return o.ports[s];
}

/** Starts each secured server that is not running yet (in parallel); on failure stops what this call started. */
export async function secureStackUp(o: SecureOptions, log: (line: string) => void = () => {}): Promise<ServiceStatus[]> {
  const daemons = new Daemons(o.stateDir);
  // Traversable: PostgreSQL and RabbitMQ run as their own users (certs/ and secrets/ stay 0700).
  fs.mkdirSync(o.stateDir, { recursive: true });
  fs.chmodSync(o.stateDir, 0o755);
  const certs = ensureCerts(certsDir(o));
  const secrets = secretsDir(o);
  ensureSecrets(secrets);
  const todo = SECURE_SERVICES.filter((s) => daemons.pid(s) === undefined);
  requireStackTools(o.openStateDir, todo.includes("kafka"), todo.includes("registry"));
  for (const s of todo) {
    const port = portOf(o, s);
    if (await tcpOpen("127.0.0.1", port)) {
      throw new StackError("SF_ERR_STACK_PORT_IN_USE", `port ${port} is in use by another process, so the secured ${s} cannot start: stop it or set STREAMFLEET_SECURE_${s.toUpperCase()}_PORT`);
    }
  }
  const startedNow: Service[] = [];
  const start: Record<Service, () => Promise<void>> = {
    kafka: () =>
      startKafka(daemons, {
        stateDir: o.stateDir,
        pomFile: path.join(ROOT, "scripts/stack/kafka-pom.xml"),
        libsDir: path.join(o.openStateDir, "kafka", "libs"),
        port: o.ports.kafka,
        controllerPort: o.ports.controller,
        startTimeoutMs: o.startTimeoutMs,
        properties: secureKafkaProperties(o.ports.kafka, o.ports.controller, certs, secrets),
        formatArgs: scramUsers(secrets),
      }),
    redis: async () => {
      await startSecureRedis(daemons, o.stateDir, o.ports.redis, certs, secrets);
      await awaitPort(daemons, "redis", o.ports.redis, o.startTimeoutMs);
    },
    postgres: () => startSecurePostgres(daemons, o.stateDir, o.ports.postgres, certs, secrets, o.startTimeoutMs),
    rabbitmq: async () => {
      startSecureRabbit(daemons, o.stateDir, o.ports.rabbitmq, certs, secrets);
      await awaitPort(daemons, "rabbitmq", o.ports.rabbitmq, Math.max(o.startTimeoutMs, 60_000));
    },
    registry: () =>
      startRegistry(daemons, { stateDir: o.stateDir, runnerStateDir: o.openStateDir, port: o.ports.registry, startTimeoutMs: o.startTimeoutMs, tls: { cert: certs.cert, key: certs.key, ca: certs.ca } }),
  };
  try {
    // Settled, not raced: a failure stops the others only once none is still starting.
    const results = await Promise.allSettled(
      SECURE_SERVICES.map(async (s) => {
        const t0 = Date.now();
        if (todo.includes(s)) {
          startedNow.push(s);
          await start[s]();
        }
        log(`${s.padEnd(9)} ${todo.includes(s) ? "started" : "reused"} in ${((Date.now() - t0) / 1000).toFixed(1)}s (secured)`);
      }),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    // Every up: granting the same ACLs again changes nothing, and a broker restored from its data keeps them.
    await applyWorkerAcls(o.ports.kafka, certs, secrets);
  } catch (err) {
    for (const s of startedNow) await daemons.stop(s);
    throw err;
  }
  return secureStackStatus(o);
}

async function awaitPort(daemons: Daemons, name: Service, port: number, timeoutMs: number): Promise<void> {
  // A server that exits (bad config) ends the wait at once, not at the deadline.
  const exited = () => daemons.pid(name) === undefined;
  if ((await waitFor(async () => exited() || (await tcpOpen("127.0.0.1", port)), timeoutMs)) && !exited()) return;
  const tail = daemons.tail(name, 3);
  await daemons.stop(name);
  const why = exited() ? "exited" : `did not come up on 127.0.0.1:${port} within ${timeoutMs / 1000}s`;
  throw new StackError("SF_ERR_STACK_TIMEOUT", `the secured ${name} ${why}; log ${daemons.logFile(name)}: ${tail.slice(-300)}`);
}

export async function secureStackDown(o: SecureOptions): Promise<string[]> {
  const daemons = new Daemons(o.stateDir);
  const stopped: string[] = [];
  for (const s of SECURE_SERVICES) if (await daemons.stop(s, s === "rabbitmq" ? 30_000 : 15_000)) stopped.push(s);
  return stopped;
}

export async function secureStackStatus(o: SecureOptions): Promise<ServiceStatus[]> {
  const daemons = new Daemons(o.stateDir);
  const what: Record<Service, string> = {
    kafka: "Kafka SASL_SSL (SCRAM-SHA-512), ACLs",
    redis: "Redis TLS, ACL users",
    postgres: "PostgreSQL scram-sha-256, hostssl only",
    rabbitmq: "RabbitMQ amqps, vhost streamfleet",
    registry: "Apicurio HTTPS (no credentials: needs an OIDC server)",
  };
  return Promise.all(
    SECURE_SERVICES.map(async (s) => {
      const port = portOf(o, s);
      const pid = daemons.pid(s);
      return { name: s, address: `127.0.0.1:${port}`, up: pid !== undefined && (await tcpOpen("127.0.0.1", port)), note: `${what[s]}, ${pid ? `ours, pid ${pid}` : "not running"}` };
    }),
  );
}
