import path from "node:path";
import { describe, expect, it } from "vitest";
import { defaultCatalogue, defineTopology } from "../../lib/index.ts";
import { loadTopologyFile } from "../../lib/topology/loader.ts";

describe("defineTopology", () => {
  it("loads a *.topology.ts file through the same validation as YAML", async () => {
    const loaded = await loadTopologyFile(path.resolve(import.meta.dirname, "../fixtures/typed.topology.ts"), defaultCatalogue());
    expect(loaded.topology.name).toBe("typed-example");
    expect(loaded.topology.sinks.map((s) => s.type)).toEqual(["redis.cache", "kafka"]);
    expect(loaded.topology.steps.map((s) => s.path)).toEqual(["steps[0].filter", "steps[1].map"]);
    expect(Object.isFrozen(loaded.topology)).toBe(true);
  });

  it("is typed by the connectors' schemas", () => {
    const t = defineTopology({
      name: "t",
      source: { topics: ["a"] },
      // @ts-expect-error -- `ttl` is not a field of redis.cache (ttl_seconds is)
      sinks: [{ type: "redis.cache", key: "k:{id}", ttl: 5 }],
    });
    expect(t.name).toBe("t");
    // @ts-expect-error -- "teleport" is not a registered sink type
    defineTopology({ name: "u", source: { topics: ["a"] }, sinks: [{ type: "teleport" }] });
  });
});
