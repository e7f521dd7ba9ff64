import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import { readAvsc } from "../lib/codecs/avro.ts";
import { SchemaCodecs } from "../lib/codecs/registry.ts";
import { createTopicsReady } from "../lib/connectors/kafka/topics.ts";
import type { DemoSystem } from "../topologies/demo.ts";

/** Every `topologies/<system>/demo.ts` found, in name order. */
export async function findDemoSystems(topologiesDir: string): Promise<DemoSystem[]> {
  const systems: DemoSystem[] = [];
  for (const entry of fs.readdirSync(topologiesDir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = path.join(topologiesDir, entry.name, "demo.ts");
    if (!entry.isDirectory() || !fs.existsSync(file)) continue;
    const mod = (await import(pathToFileURL(file).href)) as { demo?: DemoSystem };
    if (mod.demo) systems.push(mod.demo);
  }
  return systems;
}

export interface DemoProducer {
  produced(): number;
  stop(): Promise<void>;
}

/**
 * Creates the demo topics, registers their schemas and produces each system's events at
 * `rate` ticks per second (Avro through the registry), until stopped.
 */
export async function startDemoProducer(o: { systems: DemoSystem[]; root: string; brokers: string[]; registryUrl: string; rate: number; onError: (err: unknown) => void }): Promise<DemoProducer> {
  const kafka = new Kafka({ clientId: "streamfleet-demo", brokers: o.brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  for (const t of o.systems.flatMap((s) => s.topics)) await createTopicsReady(admin, [t.topic], t.partitions);
  await admin.disconnect();
  const codecs = new SchemaCodecs(o.registryUrl);
  const encoders = new Map<string, (v: unknown) => Buffer>();
  for (const t of o.systems.flatMap((s) => s.topics)) {
    const { text, type } = readAvsc(t.schema, o.root);
    encoders.set(t.topic, codecs.encoder(await codecs.register(`${t.topic}-value`, text), type));
  }
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let tick = 0;
  let count = 0;
  let stopped = false;
  const intervalMs = 100;
  const perInterval = Math.max(1, Math.round((o.rate * intervalMs) / 1000));
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      const byTopic = new Map<string, { key: string; value: Buffer }[]>();
      for (let n = 0; n < perInterval; n++, tick++) {
        for (const system of o.systems) {
          for (const e of system.next(tick, Date.now())) {
            const encode = encoders.get(e.topic);
            if (!encode) throw new Error(`demo ${system.name} produced to ${e.topic}, which it does not declare in topics`);
            const list = byTopic.get(e.topic) ?? [];
            list.push({ key: e.key, value: encode(e.value) });
            byTopic.set(e.topic, list);
          }
        }
      }
      try {
        await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
        for (const list of byTopic.values()) count += list.length;
      } catch (err) {
        o.onError(err);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - started))));
    }
  })();
  return {
    produced: () => count,
    stop: async () => {
      stopped = true;
      await loop.catch(o.onError);
      await producer.disconnect();
    },
  };
}
