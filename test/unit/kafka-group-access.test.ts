import { Kafka, logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { classifySourceFailures, findCoordinatorError } from "../../lib/connectors/kafka/group-access.ts";
import { SfError } from "../../lib/errors.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { ComponentContext, Source, StreamPlatform } from "../../lib/runtime/contracts.ts";

const connections = new Connections({ KAFKA_BROKERS: "127.0.0.1:9192", KAFKA_SASL_MECHANISM: "scram-sha-512", KAFKA_SASL_USERNAME: "kafka-worker" });

/** A platform whose sources fail to start with `error`, plus a member of its own. */
function failingPlatform(error: unknown) {
  const source = (): Source => ({ run: () => Promise.reject(error), stop: async () => {}, ready: () => false });
  return { source, deadLetters: () => ({ send: async () => {}, close: async () => {} }), ensureTopics: async () => {}, replayDeadLetters: async () => ({ replayed: 0, byTopic: {} }), close: async () => {}, extra: () => "kept" } satisfies StreamPlatform & { extra(): string };
}

function startError(platform: StreamPlatform): Promise<unknown> {
  const source = platform.source({ topology: "t", connection: "default", group: "other.group", topics: ["in"], fromBeginning: false, concurrency: 1, sessionTimeoutMs: 30_000 }, {} as ComponentContext);
  return source.run(async () => {}).then(() => undefined, (err: unknown) => err);
}

describe("classifySourceFailures: a Kafka source's start failure read as the security error it is", () => {
  it("a group the broker refused (GROUP_AUTHORIZATION_FAILED under the source's error) is SF_ERR_AUTH_DENIED naming the principal and the group", async () => {
    const refused = Object.assign(new Error("Not authorized to access group: Group authorization failed"), { name: "KafkaJSProtocolError", type: "GROUP_AUTHORIZATION_FAILED", retriable: false });
    const err = await startError(classifySourceFailures(failingPlatform(new Error("consumer group other.group: the broker refused it", { cause: refused })), connections));
    expect(err).toBeInstanceOf(SfError);
    expect((err as SfError).code).toBe("SF_ERR_AUTH_DENIED");
    expect((err as SfError).retriable).toBe(false);
    expect((err as SfError).message).toBe('Kafka connection "default" (127.0.0.1:9192): the ACLs deny User:kafka-worker access to consumer group other.group: grant it on the server or change the topology');
  });

  it("an SfError and an outage pass as they are; the platform keeps its other members", async () => {
    const sf = new SfError("SF_ERR_AUTH_FAILED", "already said");
    expect(await startError(classifySourceFailures(failingPlatform(sf), connections))).toBe(sf);
    const outage = Object.assign(new Error("Failed to find group coordinator"), { name: "KafkaJSGroupCoordinatorNotFound" });
    const platform = classifySourceFailures(failingPlatform(outage), connections);
    expect(await startError(platform)).toBe(outage);
    expect(platform.extra()).toBe("kept");
  });
});

describe("findCoordinatorError: the broker's answer to a consumer group's coordinator lookup", () => {
  it("knows nothing, within its time limit, when no broker answers (the client still retrying)", async () => {
    const kafka = new Kafka({ brokers: ["127.0.0.1:1"], logLevel: logLevel.NOTHING, retry: { retries: 50, initialRetryTime: 100 } });
    const t0 = Date.now();
    expect(await findCoordinatorError(kafka, "any.group", 800)).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
