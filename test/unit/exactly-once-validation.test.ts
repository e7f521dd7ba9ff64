import fs from "node:fs";
import path from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { withTransactions } from "../../lib/connectors/kafka/transactions.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import type { Source, StreamPlatform } from "../../lib/runtime/contracts.ts";
import { defaultCatalogue } from "../../lib/runtime/fleet.ts";
import { loadTopologyFile, TopologyValidationError } from "../../lib/topology/loader.ts";
import { writeTopologies } from "../support/fleet.ts";

const cat = defaultCatalogue();

function fileOf(topology: Record<string, unknown>): string {
  const dir = writeTopologies([topology]);
  return path.join(dir, fs.readdirSync(dir)[0]!);
}

async function issuesOf(topology: Record<string, unknown>) {
  try {
    await loadTopologyFile(fileOf(topology), cat);
  } catch (err) {
    if (err instanceof TopologyValidationError) return err.issues;
    throw err;
  }
  throw new Error("the topology was accepted");
}

const base = { name: "eos", source: { topics: ["in"] }, codec: { value: { type: "json" } }, delivery: "exactly_once" };

describe("delivery: exactly_once", () => {
  it("is refused with a non-Kafka sink, naming file, line and the sink's path", async () => {
    const issues = await issuesOf({ ...base, sinks: [{ type: "kafka", topic: "out" }, { type: "redis.cache", key: "k:{id}" }] });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ path: "sinks[1].type", message: expect.stringMatching(/exactly_once needs every sink to write inside the Kafka transaction.*"redis\.cache" cannot/) });
    expect(issues[0]!.file).toMatch(/eos\.yaml$/);
    expect(issues[0]!.line).toBeGreaterThan(1);
  });

  it("is refused when a kafka sink writes through another connection than the source's (one transaction, one cluster)", async () => {
    const issues = await issuesOf({ ...base, sinks: [{ type: "kafka", topic: "out", connection: "analytics" }] });
    expect(issues.map((i) => [i.path, i.message])).toEqual([["sinks[0].connection", expect.stringMatching(/expected connection "default" \(the source's\), got "analytics"/)]]);
  });

  it("loads with Kafka sinks only; at_least_once stays the default", async () => {
    const loaded = await loadTopologyFile(fileOf({ ...base, sinks: [{ type: "kafka", topic: "out" }, { type: "kafka", name: "copy", topic: "copy" }] }), cat);
    expect(loaded.topology.delivery).toBe("exactly_once");
    const { delivery: _, ...plain } = base;
    const alo = await loadTopologyFile(fileOf({ ...plain, sinks: [{ type: "redis.cache", key: "k:{id}" }] }), cat);
    expect(alo.topology.delivery).toBe("at_least_once");
  });

  it("says what to set on a kafkajs connection, which has no exactly-once", () => {
    const platform = withTransactions({ deadLetters: () => ({ send: async () => {}, close: async () => {} }) } as unknown as StreamPlatform, new Connections({ KAFKA_BROKERS: "127.0.0.1:9092", KAFKA_CLIENT: "kafkajs" }), pino({ level: "silent" }));
    const open = () => platform.transactions!({ topology: "eos", source: {} as Source, group: "g", connection: "default", timeoutMs: 30_000 });
    expect(open).toThrow(/kafkajs client of Kafka connection "default" has no exactly-once.*set KAFKA_CLIENT=platformatic/);
    const other = withTransactions({ deadLetters: () => ({ send: async () => {}, close: async () => {} }) } as unknown as StreamPlatform, new Connections({ KAFKA_BROKERS: "127.0.0.1:9092", KAFKA_CLIENT: "platformatic" }), pino({ level: "silent" }));
    expect(() => other.transactions!({ topology: "eos", source: {} as Source, group: "g", connection: "default", timeoutMs: 30_000 })).not.toThrow();
  });
});
