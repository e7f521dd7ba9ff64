/**
 * Regenerates the docs derived from code: docs/topology.md, docs/topology.schema.json,
 * docs/errors.md and docs/metrics.md (`npx node scripts/gen-docs.ts`); with --check, exits 1
 * naming the stale files instead of writing.
 */
import fs from "node:fs";
import path from "node:path";
import { refusedCounter } from "../lib/connectors/rabbitmq/metrics.ts";
import { redisMetrics } from "../lib/connectors/redis/metrics.ts";
import { renderMetricsDoc } from "../lib/observability/docs.ts";
import type { ConnectorSeries } from "../lib/observability/docs.ts";
import { defaultCatalogue } from "../lib/runtime/fleet.ts";
import { renderErrorsDoc, renderTopologyDoc, topologyJsonSchema } from "../lib/topology/docs.ts";

/** Connectors with series of their own (a metrics.ts), documented in docs/metrics.md. */
export const CONNECTOR_SERIES: ConnectorSeries[] = [
  { name: "redis", register: redisMetrics },
  { name: "rabbitmq", register: refusedCounter },
];

export function generatedDocs(): Record<string, string> {
  const cat = defaultCatalogue();
  return {
    "docs/topology.md": renderTopologyDoc(cat),
    "docs/topology.schema.json": `${JSON.stringify(topologyJsonSchema(cat), null, 2)}\n`,
    "docs/errors.md": renderErrorsDoc(),
    "docs/metrics.md": renderMetricsDoc(CONNECTOR_SERIES),
  };
}

if (import.meta.main) {
  const root = path.resolve(import.meta.dirname, "..");
  const stale: string[] = [];
  for (const [file, text] of Object.entries(generatedDocs())) {
    const full = path.join(root, file);
    const current = fs.existsSync(full) ? fs.readFileSync(full, "utf8") : "";
    if (current === text) continue;
    if (process.argv.includes("--check")) stale.push(file);
    else {
      fs.writeFileSync(full, text);
      console.log(`wrote ${file}`);
    }
  }
  if (stale.length) {
    console.error(`stale: ${stale.join(", ")}; regenerate with \`npx node scripts/gen-docs.ts\``);
    process.exitCode = 1;
  }
}
