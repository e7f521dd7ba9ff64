import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EngineMetrics } from "../../lib/observability/metrics.ts";
import { CONNECTOR_SERIES } from "../../scripts/gen-docs.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DOC = path.join(ROOT, "docs/metrics.md");

function expectDocumented(metrics: EngineMetrics): void {
  const text = fs.readFileSync(DOC, "utf8");
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const { name, labelNames } = metric as unknown as { name: string; labelNames: string[] };
    const row = text.split("\n").find((l) => l.startsWith(`| \`${name}\``));
    expect(row, name).toBeDefined();
    for (const label of labelNames) expect(row, `${name} label ${label}`).toContain(`\`${label}\``);
  }
}

describe("docs/metrics.md", () => {
  it("documents every engine series with its labels", () => {
    expectDocumented(new EngineMetrics({ processMetrics: false }));
  });

  it("documents every connector series with its labels, for every connector that has a metrics.ts", () => {
    const withMetrics = fs.readdirSync(path.join(ROOT, "lib/connectors")).filter((d) => fs.existsSync(path.join(ROOT, "lib/connectors", d, "metrics.ts")));
    expect(CONNECTOR_SERIES.map((c) => c.name).sort()).toEqual(withMetrics.sort());
    for (const c of CONNECTOR_SERIES) {
      const m = new EngineMetrics({ processMetrics: false });
      c.register(m);
      expectDocumented(m);
    }
    const text = fs.readFileSync(DOC, "utf8");
    for (const name of ["streamfleet_feature_freshness_seconds", "streamfleet_feature_freshness_slo_seconds", "streamfleet_feature_apply_lag_seconds"]) expect(text).toContain(`| \`${name}\``);
  });
});
