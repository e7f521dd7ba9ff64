/**
 * Topology test files (`<topology>.test.yaml`, docs/testing.md): the model, and the loader
 * that reports every problem with file, line and path, as the topology loader does.
 */
import fs from "node:fs";
import path from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { SfError } from "../errors.ts";
import type { TopologyIssue } from "../topology/loader.ts";
import { formatIssue, formatPath, sortIssues } from "../topology/loader.ts";

/** An instant: epoch ms or ISO-8601 text. */
const instant = z
  .union([z.number().int().min(0), z.string().refine((s) => !Number.isNaN(Date.parse(s)), { message: 'expected an ISO-8601 time such as "2026-01-01T12:00:00Z"' })])
  .transform((v) => (typeof v === "number" ? v : Date.parse(v)));

export const inputSchema = z
  .object({
    topic: z.string().min(1).optional().describe("Topic the record is read from; default the topology's first topic"),
    key: z.unknown().optional().describe("The record key (encoded by the topology's key codec); default none"),
    value: z.unknown().optional().describe("The record value as JSON, encoded by the topology's value codec (Avro: its schema); null is a tombstone"),
    raw_value: z.string().optional().describe("Instead of `value`: the value's bytes as UTF-8 text, not encoded (a poison record)"),
    schema: z.string().min(1).optional().describe("Avro: the writer schema (.avsc, relative to the test file) to encode `value` with; default the topology's"),
    headers: z.record(z.string(), z.string()).default({}).describe("Kafka headers"),
    timestamp: instant.optional().describe("Kafka record timestamp; default the case's `now`"),
  })
  .strict()
  .refine((i) => (i.value !== undefined ? 1 : 0) + (i.raw_value !== undefined ? 1 : 0) === 1, { message: "expected exactly one of `value` or `raw_value`" });

export const deadLetterSchema = z
  .object({
    offset: z.number().int().min(0).describe("The input's position in the case (the first is 0): its offset"),
    code: z.string().regex(/^SF_ERR_[A-Z_]+$/, "expected an error code such as SF_ERR_VALIDATE_FAILED").describe("The dead letter's error code"),
    step: z.string().min(1).optional().describe("Where it failed: codec, steps[i].<kind> or sinks[i]; unchecked when absent"),
    message: z.string().min(1).optional().describe("Text the reason must contain; unchecked when absent"),
  })
  .strict();

export const caseSchema = z
  .object({
    name: z.string().min(1).describe("What the case shows"),
    now: instant.optional().describe("The clock steps read and the default record timestamp; default the file's"),
    redis: z.record(z.string(), z.unknown()).optional().describe("Cache entries (key -> JSON value) present before the case, in its scratch key space; needs Redis"),
    input: z.array(inputSchema).min(1).describe("The records, in partition order"),
    expect: z
      .object({
        sinks: z.record(z.string(), z.array(z.unknown())).default({}).describe("Sink name -> the effects it renders, in order; a sink not named must render none"),
        filtered: z.number().int().min(0).default(0).describe("Inputs dropped on purpose (filter, dedupe, rate-limit)"),
        dlq: z.array(deadLetterSchema).default([]).describe("Inputs sent to the dead-letter topic, by offset"),
      })
      .strict()
      .default({ sinks: {}, filtered: 0, dlq: [] }),
  })
  .strict();

export const testFileSchema = z
  .object({
    topology: z.string().min(1).optional().describe("The topology file, relative to this one; default this file's name without `.test`"),
    now: instant.default(Date.parse("2026-01-01T00:00:00Z")).describe("Default clock of every case"),
    cases: z.array(caseSchema).min(1),
  })
  .strict();

export type TestInput = z.output<typeof inputSchema>;
export type TestCase = z.output<typeof caseSchema>;
export interface TestFile {
  file: string;
  topologyFile: string;
  now: number;
  cases: TestCase[];
  /** The line of a path in the file. */
  lineOf(p: readonly PropertyKey[]): number | undefined;
}

/** Every problem of one test file, each naming file, line and path. */
export class TestFileError extends SfError {
  readonly issues: TopologyIssue[];
  constructor(issues: TopologyIssue[]) {
    super("SF_ERR_TEST_INVALID", `${issues.length} problem(s) in test files:\n${issues.map(formatIssue).join("\n")}`);
    this.issues = issues;
  }
}

export const TEST_FILE = /\.test\.ya?ml$/;

/** Expands files and directories (recursively) into test files, sorted. */
export function findTestFiles(inputs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (p: string, given: boolean) => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) throw new SfError("SF_ERR_TEST_INVALID", `${p} does not exist`);
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p).sort()) if (e !== "node_modules") walk(path.join(p, e), false);
    } else if (given || TEST_FILE.test(p)) out.push(path.resolve(p));
  };
  for (const i of inputs) walk(i, true);
  return out;
}

/** Reads and checks a test file; throws TestFileError with every problem, by line. */
export function loadTestFile(file: string): TestFile {
  const text = fs.readFileSync(file, "utf8");
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new TestFileError([{ file, line: lc.linePos(e.pos[0]).line, path: "", message: `not valid YAML: ${e.message.split("\n")[0]}` }]);
  }
  const lineOf = (p: readonly PropertyKey[]) => {
    for (let n = p.length; n >= 0; n--) {
      const node = doc.getIn(p.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === "object" && node.range) return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
  const parsed = testFileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    throw new TestFileError(sortIssues(parsed.error.issues.map((i) => ({ file, line: lineOf(i.path as PropertyKey[]), path: formatPath(i.path as PropertyKey[]), message: i.message }))));
  }
  const t = parsed.data;
  const topologyFile = path.resolve(path.dirname(file), t.topology ?? path.basename(file).replace(TEST_FILE, ".yaml"));
  if (!fs.existsSync(topologyFile)) {
    throw new TestFileError([{ file, line: lineOf(["topology"]) ?? 1, path: "topology", message: `expected a topology file, ${topologyFile} does not exist${t.topology ? "" : " (name it with `topology:`)"}` }]);
  }
  return { file, topologyFile, now: t.now, cases: t.cases, lineOf };
}
