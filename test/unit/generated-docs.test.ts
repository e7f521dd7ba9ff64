import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { generatedDocs } from "../../scripts/gen-docs.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

describe("docs generated from the code", () => {
  for (const [file, text] of Object.entries(generatedDocs())) {
    it(`${file} is up to date (regenerate with \`npx node scripts/gen-docs.ts\`)`, () => {
      const current = fs.existsSync(path.join(ROOT, file)) ? fs.readFileSync(path.join(ROOT, file), "utf8") : "";
      expect(current === text, `${file} is stale; run \`npx node scripts/gen-docs.ts\``).toBe(true);
    });
  }

  it("the topology reference lists every step kind and sink type", () => {
    const doc = generatedDocs()["docs/topology.md"]!;
    for (const kind of ["transform", "map", "filter", "validate", "route", "enrich", "dedupe", "rate-limit"]) expect(doc).toContain(`### \`${kind}\``);
    for (const type of ["kafka", "null", "redis.features", "redis.cache", "redis.publish", "bullmq", "rabbitmq", "postgres"]) expect(doc).toContain(`### \`${type}\``);
  });
});
