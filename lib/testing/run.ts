/**
 * `streamfleet test`: finds test files, runs every case of each against its topology and
 * judges what came out against what the file expects.
 */
import type { Logger } from "pino";
import { errorMessage, SfError } from "../errors.ts";
import type { TopologyIssue } from "../topology/loader.ts";
import { formatIssue, loadTopologyFile, TopologyValidationError } from "../topology/loader.ts";
import type { Catalogue } from "../topology/model.ts";
import type { Difference } from "./compare.ts";
import { differences } from "./compare.ts";
import type { Observed } from "./harness.ts";
import { testDirOf, TopologyHarness } from "./harness.ts";
import { LocalRegistry } from "./local-registry.ts";
import type { TestCase, TestFile } from "./spec.ts";
import { findTestFiles, loadTestFile, TestFileError } from "./spec.ts";

export interface CaseResult {
  name: string;
  line?: number;
  status: "passed" | "failed" | "not run" | "error";
  /** Why it was not run, or what stopped it. */
  reason?: string;
  differences?: (Difference & { line?: number })[];
  ms: number;
}

export interface FileResult {
  file: string;
  topology?: string;
  /** Where the Avro schemas of the inputs came from. */
  notes: string[];
  cases: CaseResult[];
  /** Problems that kept the file from running (a bad test file, a topology that does not load). */
  problems?: string[];
}

export interface TestRunOptions {
  catalogue: Catalogue;
  env: Readonly<Record<string, string | undefined>>;
  logger: Logger;
}

/** Runs every test file under the inputs, one after the other. */
export async function runTests(inputs: readonly string[], o: TestRunOptions): Promise<FileResult[]> {
  const files = findTestFiles(inputs);
  if (files.length === 0) throw new SfError("SF_ERR_TEST_INVALID", `no test files (*.test.yaml) under ${inputs.join(", ")}`);
  const results: FileResult[] = [];
  for (const file of files) results.push(await runTestFile(file, o));
  return results;
}

export async function runTestFile(file: string, o: TestRunOptions): Promise<FileResult> {
  let spec: TestFile;
  let harness: TopologyHarness;
  const registry = new LocalRegistry();
  try {
    spec = loadTestFile(file);
    const loaded = await loadTopologyFile(spec.topologyFile, o.catalogue);
    checkSinkNames(spec, loaded.topology.sinks.map((s) => s.name));
    await registry.start();
    harness = new TopologyHarness(loaded, { ...o, registry, testDir: testDirOf(file) });
    await harness.open();
  } catch (err) {
    await registry.stop();
    const issues = err instanceof TestFileError || err instanceof TopologyValidationError ? err.issues.map((i) => formatIssue(i).trim()) : [errorMessage(err)];
    return { file, notes: [], cases: [], problems: issues };
  }
  const cases: CaseResult[] = [];
  try {
    for (const [i, c] of spec.cases.entries()) {
      const t0 = performance.now();
      const outcome = await harness.run(c, c.now ?? spec.now);
      const ms = performance.now() - t0;
      const line = spec.lineOf(["cases", i]);
      if (outcome.status !== "ran") {
        cases.push({ name: c.name, line, status: outcome.status, reason: outcome.reason, ms });
        continue;
      }
      const diffs = judge(c, outcome.observed).map((d) => ({ ...d, line: spec.lineOf(["cases", i, "expect", ...d.parts]) }));
      cases.push({ name: c.name, line, status: diffs.length ? "failed" : "passed", ...(diffs.length ? { differences: diffs } : {}), ms });
    }
  } finally {
    await registry.stop();
  }
  return { file, topology: harness.name, notes: harness.encoder.notes, cases };
}

/** Sinks named in `expect` must be the topology's. */
function checkSinkNames(spec: TestFile, names: readonly string[]): void {
  const issues: TopologyIssue[] = [];
  spec.cases.forEach((c, i) => {
    for (const n of Object.keys(c.expect.sinks)) {
      if (names.includes(n)) continue;
      const at = ["cases", i, "expect", "sinks", n];
      issues.push({ file: spec.file, line: spec.lineOf(at), path: `cases[${i}].expect.sinks.${n}`, message: `expected a sink of the topology (${names.join(", ")}), got "${n}"` });
    }
  });
  if (issues.length) throw new TestFileError(issues);
}

/**
 * What differs between a case's expectation and what it produced. Every sink is judged (a
 * sink the case does not name must render nothing); a dead letter's `step` and `message`
 * only when the case states them (`message`: a part of the reason).
 */
export function judge(c: TestCase, o: Observed): Difference[] {
  const out: Difference[] = [];
  const sinks = new Set([...Object.keys(c.expect.sinks), ...Object.keys(o.sinks)]);
  for (const n of sinks) out.push(...differences(c.expect.sinks[n] ?? [], o.sinks[n] ?? [], ["sinks", n]));
  out.push(...differences(c.expect.filtered, o.filtered, ["filtered"]));
  const dlq = o.dlq.map((a, i) => {
    const e = c.expect.dlq[i];
    if (!e) return a;
    return {
      offset: a.offset,
      code: a.code,
      ...(e.step !== undefined ? { step: a.step } : {}),
      ...(e.message !== undefined ? { message: a.message.includes(e.message) ? e.message : a.message } : {}),
    };
  });
  out.push(...differences(c.expect.dlq, dlq, ["dlq"]));
  return out;
}
