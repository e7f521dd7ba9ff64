import fs from "node:fs";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { avroType } from "../../lib/codecs/avro.ts";
import { groupOf } from "../../lib/topology/loader.ts";
import type { Fleet } from "../../lib/runtime/fleet.ts";
import { collect, startFleet, writeTopologies } from "../support/fleet.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { spawnWorker, waitUntil } from "../support/worker.ts";
import type { WorkerProcess } from "../support/worker.ts";

/**
 * What a worker with a local reader schema does to the registry at start, on the real
 * registry: it reads what a producer registered first whatever the subject's compatibility
 * level and however many workers start at once, and stops before consuming when it cannot.
 */
const scope = new TestScope("reader");
afterAll(() => scope.cleanup());

const WRITER = { type: "record", name: "Order", namespace: "streamfleet.test", fields: [{ name: "id", type: "string" }, { name: "amount", type: "double" }] };
/** Reads WRITER: one field fewer, one with a default. */
const READER = { ...WRITER, fields: [{ name: "id", type: "string" }, { name: "currency", type: "string", default: "EUR" }] };
/** Cannot read WRITER: `currency` has no default. */
const STRICT_READER = { ...WRITER, fields: [...WRITER.fields, { name: "currency", type: "string" }] };

const codecs = () => new SchemaCodecs(stack().SCHEMA_REGISTRY_URL);

/** The subject registered first, as a producer's serializer does (a plain POST: the level stays the registry's default). */
async function producerRegisters(topic: string): Promise<{ subject: string; encode: (v: unknown) => Buffer }> {
  const subject = scope.subject(topic);
  const c = codecs();
  const id = await c.register(subject, JSON.stringify(WRITER));
  return { subject, encode: c.encoder(id, avroType(WRITER, "writer")) };
}

/** A topology reading `input` with a local reader schema and writing JSON to `output`. */
function readerTopology(name: string, input: string, output: string, reader: unknown): string {
  const dir = writeTopologies([{ name, source: { topics: [input] }, codec: { value: { type: "avro", schema: "./reader.avsc" } }, sinks: [{ type: "kafka", topic: output, key: "{id}", value: { type: "json" } }], errors: { dlq: { topic: scope.topic(`${name}.dlq`) } } }]);
  fs.writeFileSync(path.join(dir, "reader.avsc"), JSON.stringify(reader));
  // writeTopologies resolves ./ paths against the fixtures: point the file at the schema beside it.
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace(/schema: .*reader\.avsc/, "schema: ./reader.avsc"));
  return dir;
}

async function produce(topic: string, encode: (v: unknown) => Buffer, n: number, partitions = 1) {
  const producer = scope.producer();
  await producer.connect();
  await producer.send({ topic, messages: Array.from({ length: n }, (_, i) => ({ key: `o${i}`, partition: i % partitions, value: encode({ id: `o${i}`, amount: i }) })) });
  await producer.disconnect();
}

const versions = async (subject: string) => (await codecs().versions(subject)).map((v) => v.version);
const logOf = (w: WorkerProcess) => fs.readFileSync(w.logFile, "utf8");

async function consumedBy(w: WorkerProcess): Promise<number> {
  const admin = /"admin":"(http:\/\/[^"]+)"/.exec(logOf(w))![1];
  const text = await (await fetch(`${admin}/metrics`)).text();
  return [...text.matchAll(/^streamfleet_records_consumed_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

describeStack("a worker's reader schema and the registry at start", () => {
  it("three workers started at once after a producer registered the subject all join and consume; none registers", async () => {
    const [input, output] = [scope.topic("three.in"), scope.topic("three.out")];
    await scope.createTopics([input, output], 3);
    const { subject, encode } = await producerRegisters(input);
    const name = `${scope.id}-three`;
    const dir = readerTopology(name, input, output, READER);
    const workers = [0, 1, 2].map((i) => spawnWorker(dir, {}, path.join(dir, `worker-${i}.log`)));
    const admin = scope.kafka().admin();
    await admin.connect();
    try {
      const exited = () => workers.find((w) => w.child.exitCode !== null);
      await waitUntil(async () => {
        if (exited()) throw new Error(`a worker exited: ${logOf(exited()!)}`);
        const [g] = (await admin.describeGroups([groupOf({ name, source: { topics: [input] } } as never)])).groups;
        return g!.state === "Stable" && g!.members.length === 3 && workers.every((w) => logOf(w).includes('"msg":"worker started"'));
      }, 60_000, "three workers in one stable group");
      await produce(input, encode, 30, 3);
      const out = await collect(scope.kafka(), output, 30);
      expect(out.map((o) => JSON.parse(o.value!.toString()) as unknown)).toEqual(expect.arrayContaining([{ id: "o7", currency: "EUR" }]));
      expect(new Set(out.map((o) => o.key)).size).toBe(30);
      for (const w of workers) expect(await consumedBy(w)).toBeGreaterThan(0);
      expect(await versions(subject)).toEqual([1]);
    } finally {
      await admin.disconnect();
      for (const w of workers) w.child.kill("SIGTERM");
    }
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0]);
  });

  it("starts and reads whatever the subject's compatibility level: BACKWARD, FULL, NONE", async () => {
    for (const level of ["BACKWARD", "FULL", "NONE"]) {
      const [input, output] = [scope.topic(`${level}.in`), scope.topic(`${level}.out`)];
      await scope.createTopics([input, output], 1);
      const { subject, encode } = await producerRegisters(input);
      const put = await fetch(`${stack().SCHEMA_REGISTRY_URL}/config/${encodeURIComponent(subject)}`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ compatibility: level }) });
      expect(put.status).toBe(200);
      expect(await (await fetch(`${stack().SCHEMA_REGISTRY_URL}/config/${encodeURIComponent(subject)}`)).json()).toEqual({ compatibilityLevel: level });
      await produce(input, encode, 2);
      const fleet = await startFleet(readerTopology(`${scope.id}-${level.toLowerCase()}`, input, output, READER));
      try {
        const out = await collect(scope.kafka(), output, 2);
        expect(out.map((o) => JSON.parse(o.value!.toString()) as unknown), level).toEqual([{ id: "o0", currency: "EUR" }, { id: "o1", currency: "EUR" }]);
        expect(await versions(subject), level).toEqual([1]);
      } finally {
        await fleet.stop(5000);
      }
    }
  });

  it("three workers started at once on a subject nobody registered yet register the reader once and all start", async () => {
    const [input, output] = [scope.topic("new.in"), scope.topic("new.out")];
    await scope.createTopics([input, output], 3);
    const subject = scope.subject(input);
    const dir = readerTopology(`${scope.id}-new`, input, output, READER);
    const started = await Promise.allSettled([0, 1, 2].map(() => startFleet(dir)));
    const fleets = started.filter((s): s is PromiseFulfilledResult<Fleet> => s.status === "fulfilled").map((s) => s.value);
    try {
      expect(started.map((s) => (s.status === "rejected" ? String(s.reason) : "started"))).toEqual(["started", "started", "started"]);
      const registered = await codecs().versions(subject);
      expect(registered.map((v) => [v.version, JSON.parse(v.schema)])).toEqual([[1, READER]]);
      await produce(input, codecs().encoder(registered[0]!.id, avroType(READER, "reader")), 6, 3);
      expect((await collect(scope.kafka(), output, 6)).length).toBe(6);
    } finally {
      await Promise.all(fleets.map((f) => f.stop(5000)));
    }
  });

  it("a reader that cannot read the registered writer schema: `streamfleet run` exits 1 naming the subject and the field, and consumes nothing", async () => {
    const [input, output] = [scope.topic("strict.in"), scope.topic("strict.out")];
    await scope.createTopics([input, output], 1);
    const { subject, encode } = await producerRegisters(input);
    await produce(input, encode, 3);
    const name = `${scope.id}-strict`;
    const worker = spawnWorker(readerTopology(name, input, output, STRICT_READER));
    const timer = setTimeout(() => worker.child.kill("SIGKILL"), 45_000);
    const code = await worker.exited;
    clearTimeout(timer);
    const log = logOf(worker);
    expect(code, log).toBe(1);
    expect(log).toContain(`cannot read subject ${subject}: version 1`);
    expect(log).toMatch(/field currency \(string\) has no default in the reader schema and the writer schema has no such field/);
    expect(log).toContain("[SF_ERR_SCHEMA_INCOMPATIBLE]");
    expect(log).not.toContain('"msg":"topology started"');
    const admin = scope.kafka().admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId: `streamfleet.${name}`, topics: [input] });
      expect(offsets!.partitions.map((p) => p.offset)).toEqual(["-1"]);
      const [g] = (await admin.describeGroups([`streamfleet.${name}`])).groups;
      expect(g!.members).toEqual([]);
    } finally {
      await admin.disconnect();
    }
    expect(await versions(subject)).toEqual([1]);
  });
});
