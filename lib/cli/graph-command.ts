import { defaultCatalogue } from "../runtime/fleet.ts";
import { fleetGraph, toMermaid } from "../topology/graph.ts";
import { loadTopologies } from "../topology/loader.ts";

/** `streamfleet graph [files|dirs]`: the fleet's DAG as Mermaid. */
export async function graphCommand(args: string[]): Promise<number> {
  const loaded = await loadTopologies(args.length ? args : ["topologies"], defaultCatalogue());
  console.log(toMermaid(fleetGraph(loaded.map((l) => l.topology))));
  return 0;
}
