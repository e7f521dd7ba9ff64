import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EngineMetrics } from "../../lib/observability/metrics.ts";

const DOC = path.resolve(import.meta.dirname, "../../docs/metrics.md");

describe("docs/metrics.md", () => {
  it("documents every engine series with its labels", () => {
    const text = fs.readFileSync(DOC, "utf8");
    for (const metric of new EngineMetrics({ processMetrics: false }).registry.getMetricsAsArray()) {
      const { name, labelNames } = metric as unknown as { name: string; labelNames: string[] };
      const row = text.split("\n").find((l) => l.startsWith(`| \`${name}\``));
      expect(row, name).toBeDefined();
      for (const label of labelNames) expect(row, `${name} label ${label}`).toContain(`\`${label}\``);
    }
  });
});
