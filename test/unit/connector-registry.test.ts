import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { connectors } from "../../lib/connectors/index.ts";

const DIR = path.resolve(import.meta.dirname, "../../lib/connectors");

describe("connector registry", () => {
  it("registers every folder under lib/connectors/ exactly once", () => {
    const folders = fs.readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
    const names = connectors.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const folder of folders) expect(names, `lib/connectors/${folder} is missing from lib/connectors/index.ts`).toContain(folder);
  });

  it("keeps each client library inside its connector folder", () => {
    const clients: Record<string, string> = { kafkajs: "kafka", "@platformatic/kafka": "kafka", ioredis: "redis|bullmq", bullmq: "bullmq", amqplib: "rabbitmq", pg: "postgres" };
    // The feature store reads what the sinks wrote: the online store in Redis and the offline feature log in PostgreSQL.
    const featureStore = (pkg: string, rel: string) => (pkg === "ioredis" || pkg === "pg") && (rel.startsWith("features/") || rel === "cli/features-command.ts");
    const libRoot = path.resolve(DIR, "..");
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) walk(full);
        else if (e.name.endsWith(".ts")) {
          const rel = path.relative(libRoot, full);
          const text = fs.readFileSync(full, "utf8");
          for (const [pkg, owners] of Object.entries(clients)) {
            if (!new RegExp(`from ["']${pkg}["']`).test(text)) continue;
            const allowed = new RegExp(`^connectors/(${owners})/`).test(rel) || featureStore(pkg, rel);
            if (!allowed) offenders.push(`${rel} imports ${pkg}`);
          }
        }
      }
    };
    walk(libRoot);
    expect(offenders).toEqual([]);
  });
});
