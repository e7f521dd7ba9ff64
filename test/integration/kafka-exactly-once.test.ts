/**
 * `delivery: exactly_once` end to end in one process (KAFKA_CLIENT=platformatic): outputs and
 * dead letters written in the units' transactions reach read_committed readers once each, a
 * chained topology on @platformatic/kafka reads the transactional topic, and a kafkajs
 * connection refuses the setting at start, naming the file and the line of `delivery`.
 * (The kill/zombie scenario is test/reliability/kafka-exactly-once.test.ts.)
 */
import { afterAll, expect, it } from "vitest";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { TopologyValidationError } from "../../lib/topology/loader.ts";
import { collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { describeStack, TestScope } from "../support/scope.ts";

const scope = new TestScope("eosint");
const fleets: Fleet[] = [];
afterAll(async () => {
  for (const f of fleets) await f.stop(5000);
  await scope.cleanup();
});

describeStack("delivery: exactly_once (KAFKA_CLIENT=platformatic)", () => {
  it("outputs and dead letters commit in the units' transactions; a chained topology reads them once each", async () => {
    const [input, mid, out, dlq] = [scope.topic("in"), scope.topic("mid"), scope.topic("out"), scope.topic("dlq")];
    await scope.createTopics([input, mid, out], 3);
    const producer = scope.producer();
    await producer.connect();
    // Every 25th record is not JSON: a dead letter, written in its unit's transaction.
    await producer.send({ topic: input, messages: Array.from({ length: 500 }, (_, i) => ({ key: `k${i % 7}`, value: i % 25 === 7 ? "{not json" : JSON.stringify({ id: `r${i}`, key: `k${i % 7}` }) })) });
    await producer.disconnect();
    const topology = (name: string, from: string, to: string, dead: string) => ({
      name: `${scope.id}-${name}`,
      source: { topics: [from] },
      codec: { value: { type: "json" } },
      sinks: [{ type: "kafka", topic: to, key: "{key}", value: { type: "json" } }],
      errors: { dlq: { topic: dead } },
      delivery: "exactly_once",
    });
    const fleet = await startFleet(writeTopologies([topology("first", input, mid, dlq), topology("second", mid, out, scope.topic("dlq2"))]), { ...process.env, KAFKA_CLIENT: "platformatic" });
    fleets.push(fleet);
    // kafkajs consumers read read_committed unless told otherwise.
    const letters = await collect(scope.kafka(), dlq, 20, 60_000);
    const chained = await collect(scope.kafka(), out, 480, 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const again = await collect(scope.kafka(), out, 481, 5000);
    expect(letters.map((l) => l.value!.toString()).sort()).toEqual(Array.from({ length: 20 }, () => "{not json"));
    expect(letters.every((l) => l.headers["sf-error-code"] === "SF_ERR_DECODE_MALFORMED")).toBe(true);
    const ids = chained.map((m) => (JSON.parse(m.value!.toString()) as { id: string }).id);
    expect(new Set(ids).size).toBe(480);
    expect(ids).toHaveLength(480);
    expect(again).toHaveLength(480);
  });

  it("the @platformatic/kafka source reads read_committed: an aborted transaction's records never reach the sinks", async () => {
    const [input, out] = [scope.topic("aborts-in"), scope.topic("aborts-out")];
    await scope.createTopics([input, out], 1);
    const producer = scope.kafka().producer({ transactionalId: `${scope.id}-aborts`, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const batch = (from: number, n: number, label: string) => Array.from({ length: n }, (_, i) => ({ key: "k", value: JSON.stringify({ id: `${label}${from + i}`, key: "k" }) }));
    for (const [label, commit] of [["a", true], ["x", false], ["b", true], ["y", false], ["c", true]] as const) {
      const t = await producer.transaction();
      await t.send({ topic: input, messages: batch(0, 50, label) });
      await (commit ? t.commit() : t.abort());
    }
    await producer.disconnect();
    const fleet = await startFleet(
      writeTopologies([{ name: `${scope.id}-aborts`, source: { topics: [input] }, codec: { value: { type: "json" } }, sinks: [{ type: "kafka", topic: out, key: "{key}", value: { type: "json" } }] }]),
      { ...process.env, KAFKA_CLIENT: "platformatic" },
    );
    fleets.push(fleet);
    const got = await collect(scope.kafka(), out, 150, 30_000);
    await new Promise((r) => setTimeout(r, 1500));
    const all = await collect(scope.kafka(), out, 151, 3000);
    const ids = all.map((m) => (JSON.parse(m.value!.toString()) as { id: string }).id);
    expect(got).toHaveLength(150);
    expect(ids).toEqual([...batch(0, 50, "a"), ...batch(0, 50, "b"), ...batch(0, 50, "c")].map((m) => (JSON.parse(m.value) as { id: string }).id));
  });

  it("a kafkajs connection refuses it at start, naming the file and the line of `delivery`", async () => {
    const input = scope.topic("refused");
    await scope.createTopics([input], 1);
    const dir = writeTopologies([{ name: `${scope.id}-refused`, source: { topics: [input] }, codec: { value: { type: "json" } }, sinks: [{ type: "kafka", topic: scope.topic("refused-out") }], delivery: "exactly_once" }]);
    const err = await startFleet(dir, { ...process.env, KAFKA_CLIENT: "kafkajs" }).then(
      (f) => {
        fleets.push(f);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TopologyValidationError);
    const issue = (err as TopologyValidationError).issues[0]!;
    expect(issue).toMatchObject({ path: "delivery", message: expect.stringMatching(/kafkajs client of Kafka connection "default" has no exactly-once.*KAFKA_CLIENT=platformatic/) });
    expect(issue.file).toMatch(/refused\.yaml$/);
    expect(issue.line).toBeGreaterThan(0);
  });
});
