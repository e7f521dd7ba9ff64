import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Producer } from "kafkajs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { createKafka } from "../../lib/connectors/kafka/client.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { writeTopologies } from "../support/fleet.ts";
import { adminKafka, certsDir, connections, describeSecure, secretValues, secureEnv, silent, wrongPasswordFile } from "./support.ts";

/**
 * Everything a secured run shows an operator — the worker's log at debug level (kafkajs's
 * lines included), its error output, /health, /readyz and /metrics, the feature server's log
 * and answers, `stack env --secure`, the secured servers' own logs — and the same for runs
 * that fail (wrong passwords for each server, a denied topic, dependencies down in /health):
 * none holds a secret value (a password, the token, a line of a private key), nor the wrong
 * password a failing run was given. Worker and feature server run as real processes (the
 * CLI / workers/feature-server.ts) with the worker principals' variables only.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");
const MAIN = path.join(ROOT, "lib/cli/main.ts");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sf-noleak-"));
const id = crypto.randomBytes(4).toString("hex");
/** Every output collected, by where it came from, checked at the end and by each test. */
const outputs: { what: string; text: string }[] = [];

/** The worker's variables: the secured stack's without the admin principals (`__ADMIN`). */
function workerEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const worker = Object.fromEntries(Object.entries(secureEnv()).filter(([k]) => !k.includes("__ADMIN")));
  return { ...process.env, ...worker, LOG_LEVEL: "debug", STREAMFLEET_SHUTDOWN_MS: "10000", ...overrides };
}

function record(what: string, text: string): string {
  outputs.push({ what, text });
  return text;
}

/** The secret values found in `text` (reported by name of the output, never by value). */
function leaks(text: string, extra: string[] = []): string[] {
  return [...secretValues(), ...extra].filter((s) => text.includes(s)).map((s) => `a secret of ${s.length} characters`);
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Runs `node <args>` to its end (or `timeoutMs`); stdout and stderr as one text. */
function runToEnd(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => (clearTimeout(timer), resolve({ code, out })));
  });
}

/** A long-running process: its output so far, waiting for a line, and a SIGTERM stop. */
function start(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    output: () => out,
    async waitFor(text: string, timeoutMs = 60_000): Promise<void> {
      const end = Date.now() + timeoutMs;
      while (!out.includes(text)) {
        if (child.exitCode !== null || Date.now() > end) throw new Error(`no "${text}" in the output:\n${out.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop(): Promise<string> {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      return out;
    },
  };
}

/** GET over HTTPS with the stack's CA; status and body. */
function httpsGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const ca = fs.readFileSync(path.join(certsDir(), "ca.pem"));
  return new Promise((resolve, reject) =>
    https
      .get(url, { ca, headers }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject),
  );
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: await res.text() };
}

let producer: Producer;
let encodeUser: (v: unknown) => Buffer;
let wrong: string;

beforeAll(async () => {
  if (!secureEnv().KAFKA_BROKERS) return;
  wrong = fs.readFileSync(wrongPasswordFile(tmp), "utf8");
  const admin = adminKafka().admin();
  await admin.connect();
  await createTopicsReady(admin, ["resident.complaint-events", "resident.user-events", "resident.notification-events", "resident.complaints-throttled"], 3);
  await admin.disconnect();
  const codecs = SchemaCodecs.fromConnections(connections());
  const { text, type } = readAvsc(path.join(ROOT, "schemas/resident/user-event.avsc"), ROOT);
  encodeUser = codecs.encoder(await codecs.register("resident.user-events-value", text), type);
  producer = createKafka(connections(), "default", silent, "security-noleak-test").producer();
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describeSecure("no secret in any output of a secured run, nor of a failing one", () => {
  it("the secret list is not empty and holds what a leak would show (so the checks below can fail)", () => {
    const secrets = secretValues();
    // 8 password/token files (worker and admin principals) and the lines of 5 private keys
    expect(secrets.length).toBeGreaterThan(8 + 5 * 10);
    expect(leaks(`password=${fs.readFileSync(secureEnv().REDIS_PASSWORD_FILE!, "utf8")}`)).toHaveLength(1);
  });

  it("`stack env --secure` prints paths of secret files that exist, and no secret", async () => {
    const { code, out } = await runToEnd([MAIN, "stack", "env", "--secure"], process.env, 60_000);
    record("stack env --secure", out);
    expect(code).toBe(0);
    const vars = Object.fromEntries(out.split("\n").filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    const fileVars = Object.keys(vars).filter((k) => /(PASSWORD|TOKEN).*_FILE$/.test(k));
    expect(fileVars.sort()).toEqual(expect.arrayContaining(["AMQP_PASSWORD_FILE", "FEATURE_SERVER_TOKEN_FILE", "KAFKA_SASL_PASSWORD_FILE", "PGPASSWORD_FILE", "REDIS_PASSWORD_FILE"]));
    for (const k of fileVars) {
      expect(fs.statSync(vars[k]!).mode & 0o077).toBe(0); // 0600: the owner only
    }
    expect(Object.keys(vars).filter((k) => /PASSWORD$|TOKEN$/.test(k))).toEqual([]);
    expect(leaks(out)).toEqual([]);
  });

  it("a secured worker's debug log, /health, /readyz, /metrics and shutdown hold no secret", { timeout: 180_000 }, async () => {
    const worker = start([MAIN, "run", path.join(ROOT, "topologies/resident"), "--json", "--admin-port", "0"], workerEnv());
    try {
      await worker.waitFor('"msg":"worker started"', 90_000);
      const admin = /"admin":"(http:\/\/[^"]+)"/.exec(worker.output())![1]!;
      const userId = `noleak-${id}`;
      await producer.send({ topic: "resident.user-events", messages: [{ key: userId, value: encodeUser({ type: "user.created", id: userId, email: `${userId}@residents.example`, role: "RESIDENT" }) }] });
      // and one the codec refuses: the DLQ path logs too
      await producer.send({ topic: "resident.user-events", messages: [{ key: userId, value: Buffer.from("not avro") }] });
      const end = Date.now() + 60_000;
      let metrics = "";
      while (Date.now() < end) {
        metrics = (await get(`${admin}/metrics`)).body;
        if (/streamfleet_records_processed_total\{topology="resident-users",outcome="dlq"\} [1-9]/.test(metrics) && /streamfleet_records_processed_total\{topology="resident-users",outcome="ok"\} [1-9]/.test(metrics)) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(metrics).toMatch(/outcome="ok"\} [1-9]/);
      const health = await get(`${admin}/health`);
      expect(health.status).toBe(200);
      expect((JSON.parse(health.body) as { components: { component: string; status: string }[] }).components.every((c) => c.status === "up")).toBe(true);
      record("worker /health", health.body);
      record("worker /readyz", (await get(`${admin}/readyz`)).body);
      record("worker /metrics", metrics);
    } finally {
      record("worker log (debug) and error output", await worker.stop());
    }
    const all = outputs.map((o) => o.text).join("\n");
    // what was captured is the real thing: the start, every connection, the dead letter, the stop
    for (const line of ['"msg":"worker started"', '"msg":"rabbitmq connected"', "SF_ERR_DECODE_NO_MAGIC", '"msg":"topology stopped"', "streamfleet_records_processed_total", '"status":"up"']) expect(all).toContain(line);
    for (const o of outputs) expect(leaks(o.text), o.what).toEqual([]);
  });

  it("the feature server over HTTPS: its log and its answers (with the token, without it, with a wrong one) hold no secret", { timeout: 90_000 }, async () => {
    const port = await freePort();
    const server = start([path.join(ROOT, "workers/feature-server.ts")], workerEnv({ FEATURE_SERVER_PORT: String(port) }));
    try {
      await server.waitFor("feature server listening");
      const token = fs.readFileSync(secureEnv().FEATURE_SERVER_TOKEN_FILE!, "utf8").trim();
      const url = `https://localhost:${port}/v1/features/resident_complaints/nobody`;
      const answers = [await httpsGet(url, { authorization: `Bearer ${token}` }), await httpsGet(url), await httpsGet(url, { authorization: `Bearer ${wrong}` })];
      expect(answers[0]!.status).not.toBe(401);
      expect(answers.slice(1).map((a) => a.status)).toEqual([401, 401]);
      for (const a of answers) expect(leaks(record("feature server answer", a.body), [wrong])).toEqual([]);
    } finally {
      expect(leaks(record("feature server log", await server.stop()), [wrong])).toEqual([]);
    }
  });

  const deniedDir = () =>
    writeTopologies([{ name: `noleak-${id}-denied`, source: { topics: ["resident.user-events"] }, codec: { value: { type: "json" } }, sinks: [{ type: "kafka", topic: `forbidden.noleak-${id}` }], errors: { dlq: { topic: `resident.noleak-${id}.dlq` } } }]);
  const failures: [string, () => Record<string, string>, () => string, RegExp][] = [
    ["a wrong Kafka password", () => ({ KAFKA_SASL_PASSWORD_FILE: wrongPasswordFile(tmp) }), () => path.join(ROOT, "topologies/resident"), /Kafka connection "default".*SCRAM-SHA-512 authentication failed.*\[SF_ERR_AUTH_FAILED\]/],
    ["a wrong Redis password", () => ({ REDIS_PASSWORD_FILE: wrongPasswordFile(tmp) }), () => path.join(ROOT, "topologies/resident/users.yaml"), /Redis connection "default".*redis-worker.*\[SF_ERR_AUTH_FAILED\]/],
    ["a wrong PostgreSQL password", () => ({ PGPASSWORD_FILE: wrongPasswordFile(tmp) }), () => path.join(ROOT, "topologies/resident/complaint-analytics.yaml"), /PostgreSQL connection "default".*sf_pg_worker.*\[SF_ERR_AUTH_FAILED\]/],
    ["a wrong RabbitMQ password", () => ({ AMQP_PASSWORD_FILE: wrongPasswordFile(tmp) }), () => path.join(ROOT, "topologies/resident/notifications.yaml"), /RabbitMQ connection "default".*rabbit-worker.*\[SF_ERR_AUTH_FAILED\]/],
    ["a topic the ACLs deny", () => ({}), deniedDir, /the ACLs deny User:kafka-worker access to topic forbidden\.noleak-.*\[SF_ERR_AUTH_DENIED\]/],
  ];
  for (const [what, overrides, topologies, expected] of failures) {
    it(`a worker started with ${what} exits 1 with one clear error, and its whole output holds no secret (nor the wrong password)`, { timeout: 120_000 }, async () => {
      const { code, out } = await runToEnd([MAIN, "run", topologies(), "--json", "--admin-port", "0"], workerEnv(overrides()));
      record(`worker with ${what}`, out);
      expect(code).toBe(1);
      expect(out).toMatch(expected);
      expect(out.split("\n").filter((l) => l.startsWith("streamfleet: "))).toHaveLength(1);
      expect(leaks(out, [wrong])).toEqual([]);
    });
  }

  it("a running worker whose other servers refuse it: /health names each refusal (PostgreSQL, RabbitMQ, Redis, BullMQ's Redis) without a secret", { timeout: 120_000 }, async () => {
    const env = workerEnv({ PGPASSWORD_FILE: wrongPasswordFile(tmp), AMQP_PASSWORD_FILE: wrongPasswordFile(tmp), REDIS_PASSWORD_FILE: wrongPasswordFile(tmp) });
    // a topology of Kafka alone: the worker starts, and /health checks every connector's server
    const dir = writeTopologies([{ name: `noleak-${id}-kafka-only`, source: { topics: ["resident.user-events"] }, codec: { value: { type: "json" } }, sinks: [{ type: "null" }], errors: { dlq: { topic: `resident.noleak-${id}.dlq` } } }]);
    const worker = start([MAIN, "run", dir, "--json", "--admin-port", "0"], env);
    try {
      await worker.waitFor('"msg":"worker started"', 90_000);
      const admin = /"admin":"(http:\/\/[^"]+)"/.exec(worker.output())![1]!;
      const health = await get(`${admin}/health`);
      record("degraded /health", health.body);
      expect(health.status).toBe(503);
      const down = Object.fromEntries((JSON.parse(health.body) as { components: { component: string; status: string; lastError?: string }[] }).components.filter((c) => c.status === "down").map((c) => [c.component, c.lastError]));
      expect(down.postgres).toMatch(/PostgreSQL connection "default".*refused the password of role sf_pg_worker.*check/);
      expect(down.rabbitmq).toMatch(/RabbitMQ connection "default".*refused the login of user rabbit-worker.*check/);
      expect(down.redis).toMatch(/Redis connection "default".*refused user redis-worker \(WRONGPASS\).*check/);
      expect(down.bullmq).toMatch(/Redis connection "default".*refused user redis-worker \(WRONGPASS\).*check/);
      expect(leaks(health.body, [wrong])).toEqual([]);
      record("degraded /readyz", (await get(`${admin}/readyz`)).body);
    } finally {
      record("degraded worker log", await worker.stop());
    }
    for (const o of outputs.slice(-3)) expect(leaks(o.text, [wrong]), o.what).toEqual([]);
  });

  it("the secured servers' own logs hold no secret", () => {
    const logs = path.join(path.dirname(certsDir()), "logs");
    const files = fs.readdirSync(logs).filter((f) => f.endsWith(".log"));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) expect(leaks(fs.readFileSync(path.join(logs, f), "utf8")), f).toEqual([]);
  });
});
