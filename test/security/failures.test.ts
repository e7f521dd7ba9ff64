import crypto from "node:crypto";
import fs from "node:fs";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { afterAll, expect, it } from "vitest";
import { createRedis, ensureConnected } from "../../lib/connectors/redis/client.ts";
import { SfError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { writeTopologies } from "../support/fleet.ts";
import { adminKafka, adminTopics, adminRedis, certsDir, connections, describeSecure, secureEnv, startError, wrongPasswordFile } from "./support.ts";

/**
 * What a worker on the secured stack does when something is wrong: one SfError naming the
 * connection and what to check, never the secret, and no retry where none can help. Kafka's
 * own failures (a wrong password, a topic or consumer group the ACLs deny, a CA that did not
 * sign the broker's certificate) are in kafka-conformance.test.ts, through each Kafka client.
 */
const id = crypto.randomBytes(4).toString("hex");
const source = `resident.sectest-${id}.in`;
const dlq = `resident.sectest-${id}.dlq`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sf-security-"));

function topology(name: string, sinks: unknown[]): string {
  return writeTopologies([{ name: `sectest-${id}-${name}`, source: { topics: [source] }, codec: { value: { type: "json" } }, steps: [], sinks, errors: { dlq: { topic: dlq } } }]);
}

/** Starts a fleet of `dir` with the secured stack's worker variables and `overrides`; returns the error it fails with. */
const startFails = (dir: string, overrides: Record<string, string> = {}): Promise<SfError> => startError(dir, { ...secureEnv(), ...overrides });

/** A TLS server presenting `cert`, so that a client's refusal of it can be observed. */
async function tlsServer(cert: string, key: string): Promise<{ port: number; close: () => void }> {
  const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (s) => s.destroy());
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

adminTopics([source, dlq]);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describeSecure("failures on the secured stack say what is wrong and leak nothing", () => {
  it("a worker with a wrong Redis password does not start: SF_ERR_AUTH_FAILED, not an outage retried forever", async () => {
    const err = await startFails(topology("rpw", [{ type: "redis.cache", key: "complaint:{id}" }]), { REDIS_PASSWORD_FILE: wrongPasswordFile(tmp) });
    expect(err.code).toBe("SF_ERR_AUTH_FAILED");
    expect(err.message).toMatch(/Redis connection "default" \(rediss:\/\/localhost:\d+\).*user redis-worker.*check REDIS_USERNAME and REDIS_PASSWORD/);
  });

  it("a worker with a wrong PostgreSQL password does not start: SF_ERR_AUTH_FAILED at once, naming the connection, the role and the variables", async () => {
    const wrong = wrongPasswordFile(tmp);
    const t0 = Date.now();
    const err = await startFails(topology("pgpw", [{ type: "postgres", table: `sectest_${id}`, create: false, columns: [{ name: "id", type: "text" }] }]), { PGPASSWORD_FILE: wrong });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(err.code).toBe("SF_ERR_AUTH_FAILED");
    expect(err.retriable).toBe(false);
    expect(err.message).toMatch(/^PostgreSQL connection "default" \(localhost:\d+\/streamfleet\): PostgreSQL refused the password of role sf_pg_worker .*check the user in DATABASE_URL and PGPASSWORD \(or PGPASSWORD_FILE\)$/);
    expect(err.message).not.toContain(fs.readFileSync(wrong, "utf8"));
  });

  it("PostgreSQL without TLS (PGSSLMODE=disable) is refused by pg_hba: SF_ERR_AUTH_FAILED that points at PGSSLMODE", async () => {
    const err = await startFails(topology("pgtls", [{ type: "postgres", table: `sectest_${id}`, columns: [{ name: "id", type: "text" }] }]), { PGSSLMODE: "disable" });
    expect(err.code).toBe("SF_ERR_AUTH_FAILED");
    expect(err.message).toMatch(/no pg_hba\.conf entry .*no encryption.*PGSSLMODE/);
  });

  it("a worker with a wrong RabbitMQ password does not start: SF_ERR_AUTH_FAILED at once, not a reconnect loop", async () => {
    const wrong = wrongPasswordFile(tmp);
    const t0 = Date.now();
    const err = await startFails(topology("amqppw", [{ type: "rabbitmq", exchange: "amq.topic", routing_key: "x" }]), { AMQP_PASSWORD_FILE: wrong });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(err.code).toBe("SF_ERR_AUTH_FAILED");
    expect(err.retriable).toBe(false);
    expect(err.message).toMatch(/^RabbitMQ connection "default" \(amqps:\/\/localhost:\d+\/streamfleet\): RabbitMQ refused the login of user rabbit-worker \(ACCESS_REFUSED\): check AMQP_USERNAME and AMQP_PASSWORD/);
    expect(err.message).not.toContain(fs.readFileSync(wrong, "utf8"));
  });

  it("a RabbitMQ vhost the user may not open: SF_ERR_AUTH_DENIED naming the user and the vhost", async () => {
    const url = secureEnv().AMQP_URL!.replace(/\/streamfleet$/, "/not-ours");
    const err = await startFails(topology("vhost", [{ type: "rabbitmq", exchange: "amq.topic", routing_key: "x" }]), { AMQP_URL: url });
    expect(err.code).toBe("SF_ERR_AUTH_DENIED");
    expect(err.message).toContain('the ACLs deny user rabbit-worker vhost "not-ours"');
  });

  it("a worker with a wrong Redis password and only a BullMQ sink does not start: SF_ERR_AUTH_FAILED, not 'unreachable, retried when it is back'", async () => {
    const err = await startFails(topology("bqpw", [{ type: "bullmq", queue: `sectest-${id}`, job_name: "x" }]), { REDIS_PASSWORD_FILE: wrongPasswordFile(tmp) });
    expect(err.code).toBe("SF_ERR_AUTH_FAILED");
    expect(err.message).toMatch(/^Redis connection "default" \(rediss:\/\/localhost:\d+\): Redis refused user redis-worker \(WRONGPASS\): check REDIS_USERNAME and REDIS_PASSWORD/);
  });
  it("a Redis key outside the worker's ACL patterns: SF_ERR_AUTH_DENIED in the log, nothing written, nothing committed past it", async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: "warn", destination: { write: (l: string) => void lines.push(l) } });
    const fleet = await Fleet.load([topology("nokey", [{ type: "redis.cache", key: "forbidden:{id}" }])], { env: secureEnv(), logger });
    await fleet.start();
    try {
      const producer = adminKafka().producer();
      await producer.connect();
      await producer.send({ topic: source, messages: [{ key: "k1", value: JSON.stringify({ id: `x-${id}` }) }] });
      await producer.disconnect();
      const deadline = Date.now() + 20_000;
      while (!lines.some((l) => l.includes("SF_ERR_AUTH_DENIED")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const denied = lines.find((l) => l.includes("SF_ERR_AUTH_DENIED"));
      expect(denied).toMatch(/Redis connection \\"default\\".*the ACLs deny user redis-worker.*NOPERM/);
      const redis = adminRedis();
      expect(await redis.exists(`forbidden:x-${id}`)).toBe(0);
      redis.disconnect();
      const admin = adminKafka().admin();
      await admin.connect();
      const [committed] = await admin.fetchOffsets({ groupId: `streamfleet.sectest-${id}-nokey`, topics: [source] });
      await admin.disconnect();
      expect(committed!.partitions.every((p) => p.offset === "-1" || p.offset === "0")).toBe(true);
    } finally {
      await fleet.stop(5000);
    }
  });

  it("a server certificate from a CA the worker does not trust, and an expired one, are refused with SF_ERR_TLS_UNTRUSTED", async () => {
    const dir = certsDir();
    for (const [cert, expected] of [
      ["untrusted", /not signed by a CA this worker trusts: check REDIS_TLS_CA_FILE/],
      ["expired", /outside its validity period/],
    ] as const) {
      const server = await tlsServer(path.join(dir, `${cert}.pem`), path.join(dir, `${cert}.key`));
      const redis = createRedis(connections({ REDIS_URL: `rediss://localhost:${server.port}` }), "default", { retryStrategy: () => null });
      try {
        const err = await ensureConnected(redis, "test").then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(SfError);
        expect((err as SfError).code).toBe("SF_ERR_TLS_UNTRUSTED");
        expect((err as SfError).message).toMatch(expected);
      } finally {
        redis.disconnect();
        server.close();
      }
    }
  });
});
