import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { defaultCatalogue } from "../../lib/runtime/fleet.ts";
import { loadTopologyFile, TopologyValidationError } from "../../lib/topology/loader.ts";

/**
 * The corpus of bad topologies (test/fixtures/bad/): one file per kind of fault, and
 * all-faults.yaml with all of them. Each fault is reported with its path, line and what was
 * expected; a file with many is reported whole, in line order, not up to its first failing stage.
 */
const BAD = path.resolve(import.meta.dirname, "../fixtures/bad");
const ROOT = path.resolve(import.meta.dirname, "../..");
const cat = defaultCatalogue();

type Fault = [path: string, line: number, message: RegExp];
const ORDER_FIELDS = /expected a field of the value \(record streamfleet\.test\.Order: id, amount, status, note\)/;
const SINK_TYPE = /^expected a sink type \(.*redis\.cache.*\), got "teleport"$/;
const NO_MODULE = /^expected a module file, .*fixtures\/bad\/no-such-transform\.ts does not exist$/;
const UNCLOSED = /^expected a template such as "user:\{id\}": the "\{" at column 1 is never closed$/;

const CORPUS: Record<string, Fault[]> = {
  "unknown-sink-type.yaml": [["sinks[1].type", 10, SINK_TYPE]],
  "negative-backoff.yaml": [["errors.backoff_ms", 11, /expected number to be >=1/]],
  "missing-transform-module.yaml": [["steps[0].transform.module", 8, NO_MODULE]],
  "route-to-missing-sink.yaml": [["steps[0].route.default[0]", 12, /^expected a sink name of this topology \(open-orders\), got "archive"$/]],
  "unclosed-template.yaml": [["sinks[0].views[0].key", 12, UNCLOSED]],
  "unknown-template-field.yaml": [
    ["steps[0].filter.keep.field", 8, new RegExp(`${ORDER_FIELDS.source}, got "stauts"$`)],
    ["sinks[0].key", 11, new RegExp(`${ORDER_FIELDS.source}, got "order_id" in "order:\\{order_id\\}"$`)],
    ["sinks[1].routing_key", 14, /^expected one of \$key, \$topic, .*, got "\$partiton" \(placeholder at column 16\)$/],
  ],
  "all-faults.yaml": [
    ["steps[0].dedupe.key", 8, new RegExp(`${ORDER_FIELDS.source}, got "order_id"$`)],
    ["steps[1].transform.module", 9, NO_MODULE],
    ["steps[2].route.rules[0].to[0]", 13, /^expected a sink name of this topology \(redis\.features, teleport\), got "nowhere"$/],
    ["sinks[0].views[0].key", 19, UNCLOSED],
    ["sinks[1].type", 22, SINK_TYPE],
    ["errors.backoff_ms", 24, /expected number to be >=1/],
  ],
};

async function issuesOf(file: string) {
  const err = await loadTopologyFile(path.join(BAD, file), cat).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${file} was accepted`).toBeInstanceOf(TopologyValidationError);
  return (err as TopologyValidationError).issues;
}

describe("the corpus of bad topologies", () => {
  for (const [file, faults] of Object.entries(CORPUS)) {
    it(`${file}: ${faults.map(([p]) => p).join(", ")}`, async () => {
      const issues = await issuesOf(file);
      expect(issues.map((i) => [i.path, i.line])).toEqual(faults.map(([p, line]) => [p, line]));
      issues.forEach((issue, n) => {
        expect(issue.file).toBe(path.join(BAD, file));
        expect(issue.message, issue.path).toMatch(faults[n]![2]);
      });
    });
  }

  it("all-faults.yaml holds a fault of every other file's kind", () => {
    const kinds = (file: string) => CORPUS[file]!.map(([, , m]) => m.source);
    const all = new Set(kinds("all-faults.yaml"));
    for (const file of ["unknown-sink-type.yaml", "negative-backoff.yaml", "missing-transform-module.yaml", "unclosed-template.yaml"]) {
      for (const k of kinds(file)) expect(all.has(k), `${file}: ${k}`).toBe(true);
    }
    expect([...all].some((k) => k.includes("expected a sink name of this topology"))).toBe(true);
    expect([...all].some((k) => k.includes("expected a field of the value"))).toBe(true);
  });

  it("`streamfleet validate --offline` prints every fault of all-faults.yaml with file:line and path, in line order, and exits 1", () => {
    const file = path.join(BAD, "all-faults.yaml");
    let result: { status: number; stderr: string } = { status: 0, stderr: "" };
    try {
      execFileSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "validate", "--offline", file], { encoding: "utf8", stdio: "pipe" });
    } catch (err) {
      result = err as { status: number; stderr: string };
    }
    expect(result.status).toBe(1);
    const lines = result.stderr.split("\n").filter((l) => l.startsWith(`  ${file}:`));
    expect(lines.map((l) => l.slice(file.length + 3).split(":")[0])).toEqual(CORPUS["all-faults.yaml"]!.map(([p, line]) => `${line} ${p}`));
  });
});
