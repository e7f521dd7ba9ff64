/**
 * The Kafka connector's conformance suite on the secured stack (SASL_SSL, SCRAM-SHA-512, ACLs):
 * through each client (KAFKA_CLIENT=kafkajs|platformatic), records flow end to end, and each
 * failure no retry fixes stops the worker with the same error, naming what to check.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { SfError } from "../../lib/errors.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { writeTopologies } from "../support/fleet.ts";
import { KAFKA_CLIENTS } from "../support/kafka.ts";
import { waitUntil } from "../support/worker.ts";
import { adminKafka, adminTopics, certsDir, describeSecure, secureEnv, silent, startError, wrongPasswordFile } from "./support.ts";

const id = crypto.randomBytes(4).toString("hex");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sf-kconf-"));
const topics = KAFKA_CLIENTS.flatMap((c) => [`resident.kconf-${id}-${c}.in`, `resident.kconf-${id}-${c}.out`, `resident.kconf-${id}-${c}.dlq`]);

adminTopics(topics);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describeSecure("Kafka connector conformance on the secured stack", () => {
  describe.each(KAFKA_CLIENTS)("KAFKA_CLIENT=%s", (client) => {
    const [input, output, dlq] = [`resident.kconf-${id}-${client}.in`, `resident.kconf-${id}-${client}.out`, `resident.kconf-${id}-${client}.dlq`];
    const env = (overrides: Record<string, string> = {}) => ({ ...secureEnv(), KAFKA_CLIENT: client, ...overrides });
    const topology = (name: string, sinkTopic: string, source = input) =>
      writeTopologies([{ name: `kconf-${id}-${client}-${name}`, source: { topics: [source] }, codec: { value: { type: "json" } }, sinks: [{ type: "kafka", topic: sinkTopic, key: "{id}", value: { type: "json" } }], errors: { dlq: { topic: dlq } } }]);
    const startFails = (dir: string, overrides: Record<string, string> = {}): Promise<SfError> => startError(dir, env(overrides));

    it("moves records from a topic to a topic over SASL_SSL as the worker principal", { timeout: 90_000 }, async () => {
      const fleet = await Fleet.load([topology("flow", output)], { env: env(), logger: silent });
      await fleet.start();
      try {
        const producer = adminKafka().producer();
        await producer.connect();
        await producer.send({ topic: input, messages: Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: JSON.stringify({ id: `k${i}`, n: i }) })) });
        await producer.disconnect();
        const seen = new Map<string, string>();
        const consumer = adminKafka().consumer({ groupId: `streamfleet.kconf-${id}-${client}-read` });
        await consumer.connect();
        await consumer.subscribe({ topics: [output], fromBeginning: true });
        await consumer.run({ eachMessage: async ({ message }) => void seen.set(message.key!.toString(), message.value!.toString()) });
        try {
          await waitUntil(() => seen.size >= 50, 60_000, "50 records on the output topic");
        } finally {
          await consumer.disconnect();
        }
        expect(JSON.parse(seen.get("k7")!)).toEqual({ id: "k7", n: 7 });
      } finally {
        await fleet.stop(5000);
      }
    });

    it("a wrong password stops the worker with SF_ERR_AUTH_FAILED naming the variables, never the password", { timeout: 90_000 }, async () => {
      const wrong = wrongPasswordFile(tmp);
      const err = await startFails(topology("kpw", output), { KAFKA_SASL_PASSWORD_FILE: wrong });
      expect(err.code).toBe("SF_ERR_AUTH_FAILED");
      expect(err.retriable).toBe(false);
      expect(err.message).toContain('Kafka connection "default"');
      expect(err.message).toContain("SCRAM-SHA-512 authentication failed for user kafka-worker");
      expect(err.message).toContain("KAFKA_SASL_PASSWORD");
      expect(err.message).not.toContain(fs.readFileSync(wrong, "utf8"));
    });

    it("a sink topic the principal may not write stops the worker with SF_ERR_AUTH_DENIED", { timeout: 90_000 }, async () => {
      const forbidden = `forbidden.kconf-${id}-${client}`;
      const err = await startFails(topology("denied", forbidden));
      expect(err.code).toBe("SF_ERR_AUTH_DENIED");
      expect(err.message).toContain(`the ACLs deny User:kafka-worker access to topic ${forbidden}`);
    });

    it("a source topic the ACLs deny stops the worker with SF_ERR_AUTH_DENIED", { timeout: 90_000 }, async () => {
      const forbidden = `forbidden.kconf-${id}-${client}.in`;
      const err = await startFails(topology("denied-src", output, forbidden));
      expect(err.code).toBe("SF_ERR_AUTH_DENIED");
      expect(err.message).toContain("User:kafka-worker access to topic");
      expect(err.message).toContain(forbidden);
    });

    // kafkajs keeps the broker's GROUP_AUTHORIZATION_FAILED out of its coordinator lookup's error: the source asks the broker itself (group-access.ts).
    it("a consumer group the ACLs deny stops the worker with SF_ERR_AUTH_DENIED naming the group", { timeout: 90_000 }, async () => {
      const group = `other.kconf-${id}-${client}`;
      const dir = writeTopologies([{ name: `kconf-${id}-${client}-denied-group`, source: { topics: [input], group }, codec: { value: { type: "json" } }, sinks: [{ type: "null" }], errors: { dlq: { topic: dlq } } }]);
      const err = await startFails(dir);
      expect(err.code).toBe("SF_ERR_AUTH_DENIED");
      expect(err.message).toContain(`User:kafka-worker access to consumer group ${group}`);
    });

    it("a CA that did not sign the broker's certificate stops the worker with SF_ERR_TLS_UNTRUSTED", { timeout: 120_000 }, async () => {
      const err = await startFails(topology("kca", output), { KAFKA_SSL_CA_FILE: path.join(certsDir(), "other-ca.pem") });
      expect(err.code).toBe("SF_ERR_TLS_UNTRUSTED");
      expect(err.message).toMatch(/Kafka connection "default" \(127\.0\.0\.1:\d+\): the server's TLS certificate is not signed by a CA this worker trusts: check KAFKA_SSL_CA_FILE/);
    });
  });
});
