import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import type { Consumer, Kafka } from "kafkajs";
import { Fleet } from "../../lib/runtime/fleet.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { stack } from "./scope.ts";

export const FIXTURES = path.resolve(import.meta.dirname, "../fixtures");

/** Writes topology objects as YAML files in a temp dir (next to nothing), so tests go through the real loader. */
export function writeTopologies(topologies: Record<string, unknown>[], baseDir = FIXTURES): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-topologies-"));
  for (const t of topologies) {
    const abs = JSON.parse(JSON.stringify(t), (k, v) => (typeof v === "string" && (k === "module" || k === "schema") && v.startsWith("./") ? path.resolve(baseDir, v) : v));
    fs.writeFileSync(path.join(dir, `${String(t.name)}.yaml`), stringify(abs));
  }
  return dir;
}

export async function startFleet(dir: string, env: NodeJS.ProcessEnv = process.env): Promise<Fleet> {
  const fleet = await Fleet.load([dir], { env, logger: createLogger({ level: process.env.LOG_LEVEL ?? "silent" }) });
  await fleet.start();
  return fleet;
}

/** An Avro producer helper: registers the fixture schema under `<topic>-value` and encodes values. */
export async function avroEncoder(topic: string, schemaFile: string): Promise<(v: unknown) => Buffer> {
  const codecs = new SchemaCodecs(stack().SCHEMA_REGISTRY_URL);
  const { text, type } = readAvsc(schemaFile, FIXTURES);
  const id = await codecs.register(`${topic}-value`, text);
  return codecs.encoder(id, type);
}

export interface Collected {
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
  partition: number;
  offset: string;
}

/** Reads a topic from the beginning until `count` records arrived (or the timeout). */
export async function collect(kafka: Kafka, topic: string, count: number, timeoutMs = 30_000, until?: (all: Collected[]) => boolean): Promise<Collected[]> {
  const consumer: Consumer = kafka.consumer({ groupId: `collect-${topic}-${Math.random().toString(36).slice(2)}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const out: Collected[] = [];
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = v.toString();
      out.push({ key: message.key?.toString() ?? null, value: message.value, headers, partition, offset: message.offset });
      if (until ? until(out) : out.length >= count) resolveDone();
    },
  });
  const timer = setTimeout(resolveDone, timeoutMs);
  await done;
  clearTimeout(timer);
  await consumer.disconnect();
  return out;
}
