import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Connections, redactUrl } from "../runtime/connections.ts";
import { kafkaHealth } from "../connectors/kafka/health.ts";
import { Daemons } from "./daemon.ts";
import { StackError } from "./errors.ts";
import { JAVA_ALTERNATIVES } from "./java.ts";
import { kafkaToolsClasspath, startKafka } from "./kafka.ts";
import { ensurePostgres, ensureRabbit, ensureRedis } from "./native.ts";
import { hostPort, httpOk, tcpOpen, urlHostPort } from "./probe.ts";
import { APICURIO_VERSION, registryRunner, startRegistry } from "./registry.ts";
import { missingTools, missingToolsLine } from "./tools.ts";
import type { Tool } from "./tools.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Where each service lives: the addresses every worker and test connects to. */
export interface StackAddresses {
  KAFKA_BROKERS: string;
  SCHEMA_REGISTRY_URL: string;
  REDIS_URL: string;
  AMQP_URL: string;
  DATABASE_URL: string;
}

export interface StackOptions {
  stateDir: string;
  addresses: StackAddresses;
  /** Names of addresses the user set: those servers are checked, never started. */
  given: Set<keyof StackAddresses>;
  kafkaPort: number;
  controllerPort: number;
  registryPort: number;
  startTimeoutMs: number;
}

export interface ServiceStatus {
  name: string;
  address: string;
  up: boolean;
  note: string;
}

/** Reads stack options from an environment map (only entry points pass process.env). */
export function stackOptionsFromEnv(env: NodeJS.ProcessEnv): StackOptions {
  const kafkaPort = Number(env.STREAMFLEET_KAFKA_PORT ?? 9092);
  const registryPort = Number(env.STREAMFLEET_REGISTRY_PORT ?? 8081);
  const defaults: StackAddresses = {
    KAFKA_BROKERS: `127.0.0.1:${kafkaPort}`,
    SCHEMA_REGISTRY_URL: `http://127.0.0.1:${registryPort}/apis/ccompat/v7`,
    REDIS_URL: "redis://127.0.0.1:6379",
    AMQP_URL: "amqp://guest:guest@127.0.0.1:5672",
    DATABASE_URL: "postgres://postgres@127.0.0.1:5432/test",
  };
  const given = new Set<keyof StackAddresses>();
  const addresses = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof StackAddresses)[]) {
    const v = env[key];
    if (v) {
      addresses[key] = v;
      given.add(key);
    }
  }
  return {
    stateDir: path.resolve(env.STREAMFLEET_STACK_DIR ?? path.join(ROOT, ".stack")),
    addresses,
    given,
    kafkaPort,
    controllerPort: Number(env.STREAMFLEET_KAFKA_CONTROLLER_PORT ?? kafkaPort + 1),
    registryPort,
    startTimeoutMs: Number(env.STREAMFLEET_STACK_TIMEOUT_MS ?? 90_000),
  };
}

/** True when a Kafka broker (not just any listener) answers at the address. */
async function speaksKafka(brokers: string): Promise<boolean> {
  const { host, port } = hostPort(brokers, 9092);
  if (!(await tcpOpen(host, port))) return false;
  try {
    await kafkaHealth(new Connections({ KAFKA_BROKERS: brokers }), AbortSignal.timeout(5000));
    return true;
  } catch {
    return false;
  }
}

/**
 * Java runs the Kafka and registry this stack starts; Maven fetches their jars the first time.
 * Fails with one line naming every missing tool and the command that installs them.
 */
export function requireStackTools(stateDir: string, kafka: boolean, registry: boolean, pathVar = process.env.PATH ?? ""): void {
  const tools: Tool[] = kafka || registry ? ["java"] : [];
  const kafkaCached = fs.existsSync(path.join(stateDir, "kafka", "libs", ".complete"));
  if ((kafka && !kafkaCached) || (registry && !fs.existsSync(registryRunner(stateDir)))) tools.push("mvn");
  const line = missingToolsLine(tools, pathVar);
  if (!line) return;
  const code = missingTools(["java"], pathVar).length > 0 && tools.includes("java") ? "SF_ERR_STACK_NO_JAVA" : "SF_ERR_STACK_NO_MAVEN";
  throw new StackError(code, `${line}, ${JAVA_ALTERNATIVES}`);
}

/** Starts whatever is not already answering; on failure stops what this call started. */
export async function stackUp(o: StackOptions, log: (line: string) => void = () => {}): Promise<ServiceStatus[]> {
  const daemons = new Daemons(o.stateDir);
  const startedNow: string[] = [];
  const track = async (name: string, fn: () => Promise<string>): Promise<void> => {
    const t0 = Date.now();
    const note = await fn();
    if (note === "started") startedNow.push(name);
    log(`${name.padEnd(9)} ${note} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  };
  // What this call starts decides the tools it needs: all of them are checked before anything starts.
  const [kafkaHere, registryHere] = await Promise.all([
    (async () => !(o.given.has("KAFKA_BROKERS") || daemons.pid("kafka") || (await speaksKafka(o.addresses.KAFKA_BROKERS))))(),
    (async () => !(o.given.has("SCHEMA_REGISTRY_URL") || daemons.pid("registry") || (await httpOk(`${o.addresses.SCHEMA_REGISTRY_URL}/subjects`))))(),
  ]);
  requireStackTools(o.stateDir, kafkaHere, registryHere);
  try {
    await Promise.all([
      track("kafka", async () => {
        if (!kafkaHere) return "reused";
        await startKafka(daemons, {
          stateDir: o.stateDir,
          pomFile: path.join(ROOT, "scripts/stack/kafka-pom.xml"),
          port: o.kafkaPort,
          controllerPort: o.controllerPort,
          startTimeoutMs: o.startTimeoutMs,
        });
        return "started";
      }),
      track("registry", async () => {
        if (!registryHere) return "reused";
        await startRegistry(daemons, { stateDir: o.stateDir, port: o.registryPort, startTimeoutMs: o.startTimeoutMs });
        return "started";
      }),
      track("redis", () => ensureRedis(daemons, o.stateDir, urlHostPort(o.addresses.REDIS_URL, 6379), o.startTimeoutMs)),
      track("rabbitmq", () => ensureRabbit(daemons, o.stateDir, urlHostPort(o.addresses.AMQP_URL, 5672), o.startTimeoutMs)),
      track("postgres", () => ensurePostgres(urlHostPort(o.addresses.DATABASE_URL, 5432))),
    ]);
  } catch (err) {
    for (const name of startedNow) await daemons.stop(name);
    throw err;
  }
  const status = await stackStatus(o);
  const down = status.filter((s) => !s.up);
  if (down.length > 0) {
    throw new StackError("SF_ERR_STACK_UNHEALTHY", `not answering after start: ${down.map((s) => `${s.name} at ${s.address}`).join(", ")}`);
  }
  return status;
}

/** Kafka's command-line tools (ConsumerPerformance, …) for this stack: a `java -cp` classpath, fetched on first use. */
export function stackKafkaTools(o: Pick<StackOptions, "stateDir">): string {
  return kafkaToolsClasspath(o.stateDir, path.join(ROOT, "scripts/stack/kafka-tools-pom.xml"));
}

/** Stops every process this stack started (and nothing else). */
export async function stackDown(o: StackOptions): Promise<string[]> {
  const daemons = new Daemons(o.stateDir);
  const stopped: string[] = [];
  for (const name of ["kafka", "registry", "redis", "rabbitmq"]) {
    if (await daemons.stop(name)) stopped.push(name);
  }
  return stopped;
}

export async function stackStatus(o: StackOptions): Promise<ServiceStatus[]> {
  const daemons = new Daemons(o.stateDir);
  const a = o.addresses;
  const owner = (name: string) => (daemons.pid(name) ? `ours, pid ${daemons.pid(name)}` : "external");
  const kafka = hostPort(a.KAFKA_BROKERS, 9092);
  const checks: [string, string, () => Promise<boolean>, string][] = [
    ["kafka", a.KAFKA_BROKERS, () => tcpOpen(kafka.host, kafka.port), "Kafka 4.x KRaft"],
    ["registry", a.SCHEMA_REGISTRY_URL, () => httpOk(`${a.SCHEMA_REGISTRY_URL.replace(/\/$/, "")}/subjects`), `Apicurio ${APICURIO_VERSION} ccompat`],
    ["redis", redactUrl(a.REDIS_URL), () => tcpOpen(urlHostPort(a.REDIS_URL, 6379).host, urlHostPort(a.REDIS_URL, 6379).port), "Redis"],
    ["rabbitmq", redactUrl(a.AMQP_URL), () => tcpOpen(urlHostPort(a.AMQP_URL, 5672).host, urlHostPort(a.AMQP_URL, 5672).port), "RabbitMQ"],
    ["postgres", redactUrl(a.DATABASE_URL), () => tcpOpen(urlHostPort(a.DATABASE_URL, 5432).host, urlHostPort(a.DATABASE_URL, 5432).port), "PostgreSQL"],
  ];
  return Promise.all(
    checks.map(async ([name, address, check, what]) => ({ name, address, up: await check(), note: `${what}, ${owner(name)}` })),
  );
}

/** A URL with its password masked, fit for logs. */
export const redact = redactUrl;
