import { EngineMetrics } from "./metrics.ts";

interface Family {
  name: string;
  type: string;
  help: string;
  labelNames: string[];
}

/** What prom-client keeps on every metric object (not all of it is in its typings). */
function familyOf(metric: unknown): Family {
  const m = metric as { name: string; help: string; type?: string; labelNames?: string[] };
  return { name: m.name, help: m.help, type: m.type ?? "untyped", labelNames: [...(m.labelNames ?? [])] };
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function table(families: Family[]): string {
  const rows = families.map((f) => {
    const series = f.type === "histogram" ? `\`${f.name}\` (\`_bucket\`, \`_sum\`, \`_count\`)` : `\`${f.name}\``;
    const labels = f.labelNames.length ? f.labelNames.map((l) => `\`${l}\``).join(", ") : "—";
    return `| ${series} | ${f.type} | ${labels} | ${cell(f.help)} |`;
  });
  return ["| Series | Type | Labels | Meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

/** A connector's own series, as its metrics.ts registers them on an engine registry. */
export interface ConnectorSeries {
  /** The connector folder, lib/connectors/<name>/. */
  name: string;
  register(metrics: EngineMetrics): unknown;
}

function connectorTables(connectors: readonly ConnectorSeries[], engineNames: Set<string>, byName: (a: Family, b: Family) => number): string {
  return connectors
    .map((c) => {
      const m = new EngineMetrics({ processMetrics: false });
      c.register(m);
      const families = m.registry.getMetricsAsArray().map(familyOf).filter((f) => !engineNames.has(f.name)).sort(byName);
      return `### ${c.name} (\`lib/connectors/${c.name}/metrics.ts\`)\n\n${table(families)}\n\n`;
    })
    .join("")
    .trimEnd();
}

/**
 * docs/metrics.md, rendered from the registry itself: every series a worker exports, with
 * its type, labels and help, and the series each connector adds (`connectors`: the core
 * does not import connectors; scripts/gen-docs.ts passes them). Regenerate with
 * `npx node scripts/gen-docs.ts`.
 */
export function renderMetricsDoc(connectors: readonly ConnectorSeries[] = []): string {
  const engine = new EngineMetrics({ processMetrics: false });
  const withProcess = new EngineMetrics();
  const engineNames = new Set(engine.registry.getMetricsAsArray().map((m) => familyOf(m).name));
  const byName = (a: Family, b: Family) => a.name.localeCompare(b.name);
  const engineFamilies = engine.registry.getMetricsAsArray().map(familyOf).sort(byName);
  const processFamilies = withProcess.registry
    .getMetricsAsArray()
    .map(familyOf)
    .filter((f) => !engineNames.has(f.name))
    .sort(byName);
  return `<!-- Generated from lib/observability/metrics.ts and lib/connectors/*/metrics.ts by \`npx node scripts/gen-docs.ts\`; do not edit by hand. -->
# Metrics

Every worker serves these series on its admin port (\`/metrics\`, default \`:9464\`), all
prefixed \`streamfleet_\`. Labels are bounded: topology, topic, partition, sink, feature view, outcome,
result, error code (\`reason\`), feature-server route and status — never a record key or value.

Outcomes of \`streamfleet_records_processed_total\`: \`ok\` (every sink acknowledged the
record), \`filtered\` (a step dropped it), \`retried\` (an attempt that failed and was
retried; the record counts again when it finishes), \`dlq\` (sent to the dead-letter topic).

The Grafana dashboard (observability/grafana/dashboards/streamfleet.json) and the alert
rules (observability/prometheus/alerts.yml) use only these series and Prometheus's \`up\`.

## Engine series

Recorded by the runtime for every topology, step and sink.

${table(engineFamilies)}

## Connector series

A connector adds its own series (for example Redis pipeline latency, RabbitMQ refusals) to
the same registry when a topology uses it; they are declared in the connector's
\`lib/connectors/<name>/metrics.ts\`.

${connectorTables(connectors, engineNames, byName)}

## Node process series

prom-client's default metrics, with the same prefix (as measured on Linux; a few
\`process_*\` series exist only there).

${table(processFamilies)}
`;
}
