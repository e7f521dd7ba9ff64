import fs from "node:fs";
import https from "node:https";
import tls from "node:tls";
import amqp from "amqplib";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createRedis } from "../../lib/connectors/redis/client.ts";
import { startFeatureServer } from "../../lib/features/server.ts";
import type { FeatureServer } from "../../lib/features/server.ts";
import { connections, describeSecure, secureEnv } from "./support.ts";

/**
 * Every server of the secured stack refuses a client without credentials, and a client
 * without TLS; with the right credentials the same client gets in (so the refusals are the
 * servers' doing, not a broken address).
 */
const port = (url: string) => Number(new URL(url).port);
const ca = () => fs.readFileSync(secureEnv().KAFKA_SSL_CA_FILE!);
const kafkaPort = () => Number(secureEnv().KAFKA_BROKERS!.split(":")[1]);

function bareKafka(options: { ssl: boolean; sasl?: boolean }) {
  const env = secureEnv();
  return new Kafka({
    brokers: [env.KAFKA_BROKERS!],
    clientId: "unauthenticated-test",
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 0 },
    ssl: options.ssl ? { ca: [ca()] } : false,
    ...(options.sasl ? { sasl: { mechanism: "scram-sha-512" as const, username: env.KAFKA_SASL_USERNAME!, password: connections().require("KAFKA_SASL_PASSWORD") } } : {}),
  });
}

async function adminConnects(kafka: Kafka): Promise<boolean> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Opens TLS to host:port with the stack's CA and no client certificate; resolves how it ended. */
function tlsWithoutClientCert(p: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port: p, ca: ca(), servername: "localhost" });
    socket.on("secureConnect", () => socket.write(Buffer.from([0, 0, 0, 0])));
    socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    socket.on("close", () => resolve("closed"));
    setTimeout(() => (socket.destroy(), resolve("still open")), 5000).unref();
  });
}

let features: FeatureServer | undefined;
let featureRedis: Redis | undefined;

beforeAll(async () => {
  if (!secureEnv().KAFKA_BROKERS) return;
  featureRedis = createRedis(connections());
  await featureRedis.connect();
  const c = connections();
  features = await startFeatureServer({ redis: featureRedis, token: c.require("FEATURE_SERVER_TOKEN"), port: 0, host: "127.0.0.1", tls: { cert: c.file("FEATURE_SERVER_TLS_CERT_FILE")!, key: c.file("FEATURE_SERVER_TLS_KEY_FILE")! } });
});

afterAll(async () => {
  await features?.close();
  featureRedis?.disconnect();
});

describeSecure("the secured stack refuses unauthenticated clients", () => {
  it("Kafka: the SASL_SSL listener refuses a client without SASL and one without TLS; the worker's credentials get in", async () => {
    expect(await adminConnects(bareKafka({ ssl: true }))).toBe(false);
    expect(await adminConnects(bareKafka({ ssl: false }))).toBe(false);
    expect(await adminConnects(bareKafka({ ssl: true, sasl: true }))).toBe(true);
  });

  it("Kafka: the controller listener refuses a TLS client without a certificate of the stack's CA", async () => {
    const ended = await tlsWithoutClientCert(kafkaPort() + 1);
    expect(ended).not.toBe("still open");
    expect(ended).toMatch(/CERTIFICATE_REQUIRED|BAD_CERTIFICATE|ECONNRESET/);
  });

  it("Redis: no plain port, the default user is off, and a wrong password is refused", async () => {
    const env = secureEnv();
    const url = env.REDIS_URL!;
    const anonymous = new Redis(url, { tls: { ca: ca() }, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const refusals: string[] = [];
    anonymous.on("error", (err: Error) => refusals.push(err.message));
    // ioredis opens with HELLO, which an unauthenticated connection may not send
    await expect(anonymous.connect().then(() => anonymous.get("sf:v1:views"))).rejects.toThrow();
    expect(refusals.join("\n")).toMatch(/^NOAUTH/m);
    anonymous.disconnect();
    const wrong = new Redis(url, { tls: { ca: ca() }, username: env.REDIS_USERNAME, password: "not-the-password", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const wrongErrors: string[] = [];
    wrong.on("error", (err: Error) => wrongErrors.push(err.message));
    await expect(wrong.connect().then(() => wrong.ping())).rejects.toThrow();
    expect(wrongErrors.join("\n")).toMatch(/^WRONGPASS/m);
    wrong.disconnect();
    const plain = new Redis(url.replace("rediss:", "redis:"), { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    plain.on("error", () => {});
    await expect(plain.connect().then(() => plain.ping())).rejects.toThrow();
    plain.disconnect();
    const worker = createRedis(connections());
    await worker.connect();
    expect(await worker.ping()).toBe("PONG");
    worker.disconnect();
  });

  it("PostgreSQL: no connection without TLS, none without the password", async () => {
    const env = secureEnv();
    const c = connections();
    const base = { host: "localhost", port: port(env.DATABASE_URL!), database: "streamfleet", user: new URL(env.DATABASE_URL!).username, connectionTimeoutMillis: 5000 };
    const tryConnect = async (config: pg.ClientConfig) => {
      const client = new pg.Client(config);
      try {
        await client.connect();
        return "connected";
      } catch (err) {
        return (err as Error).message;
      } finally {
        await client.end().catch(() => {});
      }
    };
    expect(await tryConnect({ ...base, password: c.require("PGPASSWORD"), ssl: false })).toMatch(/no pg_hba.conf entry .*no encryption/);
    expect(await tryConnect({ ...base, password: "not-the-password", ssl: { ca: ca() } })).toMatch(/password authentication failed/);
    expect(await tryConnect({ ...base, password: c.require("PGPASSWORD"), ssl: { ca: ca() } })).toBe("connected");
  });

  it("RabbitMQ: guest is refused over amqps, and there is no plain AMQP port", async () => {
    const env = secureEnv();
    const p = port(env.AMQP_URL!);
    await expect(amqp.connect(`amqps://guest:guest@localhost:${p}/streamfleet`, { ca: [ca()] })).rejects.toThrow(/ACCESS_REFUSED|403/);
    await expect(amqp.connect(`amqp://guest:guest@localhost:${p}/streamfleet`, { timeout: 3000 })).rejects.toThrow();
    const c = connections();
    const worker = await amqp.connect(`amqps://${env.AMQP_USERNAME}:${encodeURIComponent(c.require("AMQP_PASSWORD"))}@localhost:${p}/streamfleet`, { ca: [ca()] });
    await worker.close();
  });

  it("the schema registry answers HTTPS only (it has no credentials of its own: docs/security.md)", async () => {
    const url = secureEnv().SCHEMA_REGISTRY_URL!;
    await expect(fetch(`${url.replace("https:", "http:")}/subjects`, { signal: AbortSignal.timeout(3000) })).rejects.toThrow();
    const status = await new Promise<number>((resolve, reject) => https.get(`${url}/subjects`, { ca: ca() }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", reject));
    expect(status).toBe(200);
  });

  it("the feature server over HTTPS refuses a request without the bearer token and plain HTTP", async () => {
    const get = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => https.get(`${features!.url}/v1/features/none/1`, { ca: ca(), headers }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on("error", reject));
    expect(await get({})).toBe(401);
    expect(await get({ authorization: `Bearer ${connections().require("FEATURE_SERVER_TOKEN")}` })).not.toBe(401);
    await expect(fetch(`http://127.0.0.1:${features!.port}/healthz`, { signal: AbortSignal.timeout(3000) })).rejects.toThrow();
  });
});
