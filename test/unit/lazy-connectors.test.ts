import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** The npm packages a fresh process has loaded after importing `modules` (CommonJS ones, as all our clients are). */
function packagesLoadedBy(...modules: string[]): string[] {
  const code = `
import { createRequire } from "node:module";
for (const m of ${JSON.stringify(modules.map((m) => path.join(ROOT, m)))}) await import(m);
const names = Object.keys(createRequire(import.meta.url).cache).map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(f)?.[1]);
console.log(JSON.stringify([...new Set(names.filter(Boolean))]));`;
  const out = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, encoding: "utf8" });
  if (out.status !== 0) throw new Error(out.stderr);
  return JSON.parse(out.stdout) as string[];
}

describe("connectors load their client library when a topology uses them", () => {
  it("a worker's fleet loads neither bullmq, amqplib nor pg until a topology has such a sink", () => {
    const loaded = packagesLoadedBy("lib/runtime/fleet.ts");
    expect(loaded).toContain("pino"); // the logger: CommonJS packages are seen at all
    for (const client of ["bullmq", "amqplib", "pg"]) expect(loaded).not.toContain(client);
  });

  it("nor either Kafka client until a connection uses it (each worker holds only its own)", () => {
    expect(packagesLoadedBy("lib/runtime/fleet.ts")).not.toContain("kafkajs");
    expect(packagesLoadedBy("lib/runtime/fleet.ts", "lib/connectors/kafka/kafkajs-side.ts")).toContain("kafkajs");
  });
});
