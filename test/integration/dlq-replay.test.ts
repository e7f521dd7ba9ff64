import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { describeStack, TestScope } from "../support/scope.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const scope = new TestScope("replay");
afterAll(() => scope.cleanup());

function cli(args: string[]): string {
  return execFileSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), ...args], { encoding: "utf8", env: process.env });
}

describeStack("dlq replay", () => {
  it("sends dead letters back to their source after a fix, once", async () => {
    const [input, output, dlq] = [scope.topic("in"), scope.topic("out"), scope.topic("dlq")];
    await scope.createTopics([input, output], 1);
    const name = `${scope.id}-orders`;
    const topology = (steps: unknown[]) => ({
      name,
      source: { topics: [input] },
      codec: { value: { type: "json" } },
      steps,
      sinks: [{ type: "kafka", topic: output, key: "{id}", value: { type: "json" } }],
      errors: { dlq: { topic: dlq } },
    });
    // Version 1 is too strict: amounts sent as strings fail validation.
    const strict = writeTopologies([topology([{ validate: { schema: "./schemas/order.avsc" } }])]);
    const v1 = await startFleet(strict);
    const producer = scope.producer();
    await producer.connect();
    await producer.send({
      topic: input,
      messages: [
        { key: "a", value: JSON.stringify({ id: "a", amount: 1, status: "open", note: null }) },
        { key: "b", value: JSON.stringify({ id: "b", amount: "2.50", status: "open", note: null }), headers: { origin: "shop" } },
        { key: "c", value: JSON.stringify({ id: "c", amount: "3", status: "open", note: null }) },
      ],
    });
    await producer.disconnect();
    expect((await collect(scope.kafka(), dlq, 2)).map((l) => l.key).sort()).toEqual(["b", "c"]);
    expect((await collect(scope.kafka(), output, 1)).map((o) => o.key)).toEqual(["a"]);
    await v1.stop(5000);

    // The fix: version 2 of the same topology accepts them; replay, then run it.
    const fixed = writeTopologies([topology([{ map: { fields: { id: "{id}", amount: "{amount}" } } }])]);
    expect(cli(["dlq", "replay", name, "--dir", fixed])).toMatch(new RegExp(`replayed 2 record\\(s\\)\\n  ${input.replace(/\./g, "\\.")}: 2`));
    expect(cli(["dlq", "replay", name, "--dir", fixed])).toMatch(/replayed 0 record\(s\)/);
    const v2 = await startFleet(fixed);
    try {
      const out = await collect(scope.kafka(), output, 3);
      expect(out.map((o) => o.key).sort()).toEqual(["a", "b", "c"]);
      const b = out.find((o) => o.key === "b")!;
      expect(JSON.parse(b.value!.toString())).toEqual({ id: "b", amount: "2.50" });
      const replayed = await collect(scope.kafka(), input, 5);
      const again = replayed.find((m) => m.key === "b" && m.headers["sf-replayed-from"]);
      expect(again?.headers).toMatchObject({ origin: "shop", "sf-replayed-from": expect.stringMatching(new RegExp(`^${dlq.replace(/\./g, "\\.")}/\\d+/\\d+$`)) });
      expect(Object.keys(again!.headers).filter((h) => h.startsWith("sf-error"))).toEqual([]);
    } finally {
      await v2.stop(5000);
      fs.rmSync(strict, { recursive: true, force: true });
      fs.rmSync(fixed, { recursive: true, force: true });
    }
  });

  it("validate checks each Avro subject against the registry: missing, readable, unreadable", async () => {
    const topic = scope.topic("subjects");
    const dir = writeTopologies([
      { name: `${scope.id}-missing`, source: { topics: [`${topic}.none`] }, codec: { value: { type: "avro", subject: `${topic}.none-value` } }, sinks: [{ type: "null" }] },
    ]);
    let err = "";
    try {
      cli(["validate", dir]);
    } catch (e) {
      err = (e as { stderr: string }).stderr;
    }
    expect(err).toMatch(new RegExp(`\\.yaml:\\d+ codec\\.value\\.subject: subject ${topic.replace(/\./g, "\\.")}\\.none-value does not exist in the registry`));

    // Register a schema with a required field, then check a local schema that drops it as the reader.
    const { SchemaCodecs } = await import("../../lib/codecs/registry.ts");
    const codecs = new SchemaCodecs(process.env.SCHEMA_REGISTRY_URL!);
    const subject = scope.subject(topic);
    await codecs.register(subject, JSON.stringify({ type: "record", name: "Order", namespace: "streamfleet.test", fields: [{ name: "id", type: "string" }, { name: "amount", type: "double" }, { name: "status", type: "string" }, { name: "note", type: ["null", "string"], default: null }] }));
    const ok = writeTopologies([{ name: `${scope.id}-ok`, source: { topics: [topic] }, codec: { value: { type: "avro", schema: "./schemas/order.avsc" } }, sinks: [{ type: "null" }] }]);
    expect(cli(["validate", ok])).toMatch(/^ok {2}.*\.yaml/m);
    const incompatible = fs.mkdtempSync(path.join(path.dirname(ok), "sf-incompatible-"));
    fs.writeFileSync(path.join(incompatible, "order.avsc"), JSON.stringify({ type: "record", name: "Order", namespace: "streamfleet.test", fields: [{ name: "id", type: "long" }] }));
    fs.writeFileSync(path.join(incompatible, "t.yaml"), `name: ${scope.id}-bad\nsource: { topics: [${topic}] }\ncodec: { value: { type: avro, schema: ./order.avsc } }\nsinks: [{ type: "null" }]\n`);
    err = "";
    try {
      cli(["validate", incompatible]);
    } catch (e) {
      err = (e as { stderr: string }).stderr;
    }
    expect(err).toMatch(new RegExp(`t\\.yaml:3 codec\\.value\\.schema: the reader schema \\./order\\.avsc cannot read subject ${subject.replace(/\./g, "\\.")}: version 1 \\(schema id \\d+\\): field id: the reader's long cannot read the writer's string`));
  });
});
