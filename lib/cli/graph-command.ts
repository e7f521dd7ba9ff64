import { defaultCatalogue } from "../runtime/fleet.ts";
import { fleetGraph, toMermaid } from "../topology/graph.ts";
import { loadTopologies } from "../topology/loader.ts";
import { parseCommand } from "./args.ts";

/** `streamfleet graph [files|dirs]`: the fleet's DAG as Mermaid. */
export async function graphCommand(args: string[]): Promise<number> {
  const { positionals } = parseCommand("graph", args);
  const loaded = await loadTopologies(positionals.length ? positionals : ["topologies"], defaultCatalogue());
  console.log(toMermaid(fleetGraph(loaded.map((l) => l.topology))));
  return 0;
}
