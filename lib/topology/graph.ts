import type { Topology } from "./model.ts";

/**
 * The fleet as a DAG: topics feed topologies, topologies write topics (kafka sinks) and
 * other sinks. Chains appear where one topology's output topic is another's source.
 */
export interface FleetGraph {
  topologies: string[];
  topics: string[];
  edges: { from: string; to: string; kind: "consumes" | "produces" | "dlq" | "sink" }[];
  sinks: { id: string; topology: string; label: string }[];
}

export function fleetGraph(topologies: readonly Topology[]): FleetGraph {
  const g: FleetGraph = { topologies: [], topics: [], edges: [], sinks: [] };
  const topics = new Set<string>();
  for (const t of topologies) {
    g.topologies.push(t.name);
    for (const topic of t.source.topics ?? [`/${t.source.pattern}/`]) {
      topics.add(topic);
      g.edges.push({ from: `topic:${topic}`, to: `topology:${t.name}`, kind: "consumes" });
    }
    for (const s of t.sinks) {
      const cfg = s.config as { topic?: string };
      if (s.type === "kafka" && cfg.topic) {
        topics.add(cfg.topic);
        g.edges.push({ from: `topology:${t.name}`, to: `topic:${cfg.topic}`, kind: "produces" });
      } else {
        const id = `sink:${t.name}:${s.name}`;
        g.sinks.push({ id, topology: t.name, label: s.name === s.type ? s.type : `${s.name} (${s.type})` });
        g.edges.push({ from: `topology:${t.name}`, to: id, kind: "sink" });
      }
    }
    const dlq = t.errors.dlq.topic ?? `${t.name}.dlq`;
    topics.add(dlq);
    g.edges.push({ from: `topology:${t.name}`, to: `topic:${dlq}`, kind: "dlq" });
  }
  g.topics = [...topics].sort();
  return g;
}

/** Mermaid flowchart of the graph: topics as stadiums, topologies as boxes, sinks as cylinders. */
export function toMermaid(g: FleetGraph): string {
  const ids = new Map<string, string>();
  const id = (key: string) => {
    let v = ids.get(key);
    if (!v) ids.set(key, (v = `n${ids.size}`));
    return v;
  };
  const esc = (s: string) => s.replace(/"/g, "'");
  const lines = ["flowchart LR"];
  for (const t of g.topics) lines.push(`  ${id(`topic:${t}`)}(["${esc(t)}"])`);
  for (const t of g.topologies) lines.push(`  ${id(`topology:${t}`)}["${esc(t)}"]`);
  for (const s of g.sinks) lines.push(`  ${id(s.id)}[("${esc(s.label)}")]`);
  const arrow = { consumes: "-->", produces: "-->", sink: "-->", dlq: "-. dlq .->" } as const;
  for (const e of g.edges) lines.push(`  ${id(e.from)} ${arrow[e.kind]} ${id(e.to)}`);
  return lines.join("\n");
}
