import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { defaultCatalogue } from "../../lib/runtime/fleet.ts";
import { loadTopologies, loadTopologyFile, TopologyValidationError } from "../../lib/topology/loader.ts";
import { fleetGraph, toMermaid } from "../../lib/topology/graph.ts";
import { writeTopologies } from "../support/fleet.ts";

const BAD = path.resolve(import.meta.dirname, "../fixtures/bad");
const ROOT = path.resolve(import.meta.dirname, "../..");
const cat = defaultCatalogue();

async function issuesOf(file: string) {
  try {
    await loadTopologyFile(path.join(BAD, file), cat);
  } catch (err) {
    if (err instanceof TopologyValidationError) return err.issues;
    throw err;
  }
  throw new Error(`${file} was accepted`);
}

describe("validating topology files", () => {
  it("names file, line and path for an unknown step kind and a transform export that does not exist", async () => {
    const issues = await issuesOf("unknown-step.yaml");
    expect(issues.map((i) => i.path)).toEqual(["steps[1].frobnicate", "steps[2].transform.export"]);
    expect(issues[0]!.message).toMatch(/expected exactly one step kind \(.*transform.*\), got frobnicate/);
    expect(issues[0]!.file).toBe(path.join(BAD, "unknown-step.yaml"));
    expect(issues[0]!.line).toBe(6);
    expect(issues[1]).toMatchObject({ line: 7, message: expect.stringMatching(/does not export a function named "doesNotExist"/) });
  });

  it("reports every problem of a file at once, each with its path and what was expected", async () => {
    const issues = await issuesOf("many-problems.yaml");
    const byPath = new Map(issues.map((i) => [i.path, i.message]));
    expect(byPath.get("name")).toMatch(/lower-case/);
    expect(byPath.get("source")).toMatch(/exactly one of `topics` or `pattern`/);
    expect(byPath.get("codec.value.type")).toMatch(/avro|json/);
    expect(byPath.get("steps[0].map.merge")).toMatch(/boolean/);
    expect(byPath.get("sinks[0].topic")).toMatch(/string/);
    expect(byPath.get("sinks[1].type")).toMatch(/expected a sink type \(.*redis.cache.*\), got "teleport"/);
    expect(byPath.get("errors.retries")).toMatch(/>=0|too small/i);
    expect(issues.length).toBeGreaterThanOrEqual(7);
    for (const i of issues) expect(i.line, i.path).toBeGreaterThan(0);
  });

  it("checks what the schema cannot: the transform's export and a route's sink names", async () => {
    const dir = writeTopologies([
      {
        name: "semantic",
        source: { topics: ["a"] },
        steps: [{ transform: { module: "./transforms.ts", export: "doesNotExist" } }, { route: { rules: [{ when: { field: "x", eq: 1 }, to: ["nowhere"] }] } }],
        sinks: [{ type: "null" }],
      },
    ]);
    const err = await loadTopologies([dir], cat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TopologyValidationError);
    const issues = (err as TopologyValidationError).issues;
    expect(issues.find((i) => i.path === "steps[0].transform.export")?.message).toMatch(/does not export a function named "doesNotExist"/);
    expect(issues.find((i) => i.path === "steps[1].route.rules[0].to[0]")?.message).toMatch(/expected a sink name of this topology \(null\), got "nowhere"/);
  });

  it("rejects broken YAML and an empty sink list, and duplicate topology names across files", async () => {
    expect((await issuesOf("not-yaml.yaml"))[0]!.message).toMatch(/not valid YAML/);
    expect((await issuesOf("no-sinks.yaml")).map((i) => [i.path, i.message])).toEqual([["sinks", "expected at least one sink"]]);
    const dir = writeTopologies([
      { name: "twin", source: { topics: ["a"] }, sinks: [{ type: "null" }] },
      { name: "twin-b", source: { topics: ["a"], group: "streamfleet.twin" }, sinks: [{ type: "null" }] },
    ]);
    const err = (await loadTopologies([dir], cat).catch((e: unknown) => e)) as TopologyValidationError;
    expect(err.issues.map((i) => i.message)).toEqual([expect.stringMatching(new RegExp(`^consumer group "streamfleet.twin" is also used by ${dir}/twin(-b)?\\.yaml$`))]);
  });

  it("`streamfleet validate` prints every problem with file and path and exits 1", () => {
    let out = "";
    let code = 0;
    try {
      execFileSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "validate", "--offline", BAD], { encoding: "utf8", stdio: "pipe" });
    } catch (err) {
      const e = err as { status: number; stderr: string };
      code = e.status;
      out = e.stderr;
    }
    expect(code).toBe(1);
    expect(out).toContain(`${path.join(BAD, "many-problems.yaml")}:1 name:`);
    expect(out).toContain(`${path.join(BAD, "unknown-step.yaml")}:6 steps[1].frobnicate:`);
    expect(out).toContain("not-yaml.yaml");
    expect(out).toContain("no-sinks.yaml");
  });
});

describe("the fleet graph", () => {
  it("draws two topologies chained through a topic as Mermaid", async () => {
    const dir = writeTopologies([
      { name: "first", source: { topics: ["raw"] }, sinks: [{ type: "kafka", topic: "clean" }] },
      { name: "second", source: { topics: ["clean"] }, sinks: [{ type: "null", name: "sink-a" }] },
    ]);
    const g = fleetGraph((await loadTopologies([dir], cat)).map((l) => l.topology));
    expect(g.edges).toEqual(
      expect.arrayContaining([
        { from: "topic:raw", to: "topology:first", kind: "consumes" },
        { from: "topology:first", to: "topic:clean", kind: "produces" },
        { from: "topic:clean", to: "topology:second", kind: "consumes" },
      ]),
    );
    const out = execFileSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "graph", dir], { encoding: "utf8" });
    expect(out.split("\n")[0]).toBe("flowchart LR");
    expect(out).toContain('(["clean"])');
    expect(out).toContain('["first"]');
    const id = (label: string) => new RegExp(`(n\\d+)[\\[(]+"${label}"`).exec(out)![1];
    expect(out).toContain(`${id("first")} --> ${id("clean")}`);
    expect(out).toContain(`${id("clean")} --> ${id("second")}`);
    expect(toMermaid(g)).toBe(out.trimEnd());
  });
});
