import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { LineCounter, parseDocument } from "yaml";
import { SfError } from "../errors.ts";
import type { Catalogue, Topology } from "./model.ts";
import { checkTopology } from "./verify.ts";

export interface LoadedTopology {
  file: string;
  baseDir: string;
  topology: Readonly<Topology>;
  /** The line of a path in the file (YAML), for problems found after loading. */
  lineOf?: (path: readonly PropertyKey[]) => number | undefined;
}

export interface TopologyIssue {
  file: string;
  line?: number;
  /** e.g. steps[2].transform.module */
  path: string;
  message: string;
}

/** Every problem found in a set of topology files, each naming file, path and expectation. */
export class TopologyValidationError extends SfError {
  readonly issues: TopologyIssue[];
  constructor(issues: TopologyIssue[]) {
    super("SF_ERR_TOPOLOGY_INVALID", `${issues.length} problem(s) in topology files:\n${issues.map(formatIssue).join("\n")}`);
    this.issues = issues;
  }
}

export function formatIssue(i: TopologyIssue): string {
  const where = i.line ? `${i.file}:${i.line}` : i.file;
  return `  ${where} ${i.path || "(top level)"}: ${i.message}`;
}

export function formatPath(parts: readonly PropertyKey[]): string {
  let out = "";
  for (const p of parts) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

const TOPOLOGY_FILE = /\.(ya?ml|topology\.ts)$/;
const TEST_FILE = /\.test\.ya?ml$/;

/** Expands files and directories (recursively) into topology files, sorted. */
export function findTopologyFiles(inputs: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) throw new SfError("SF_ERR_TOPOLOGY_LOAD", `${p} does not exist`);
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p).sort()) {
        const child = path.join(p, e);
        // `*.test.yaml` beside a topology is its offline test (docs/testing.md), not a topology
        if (fs.statSync(child).isDirectory() || (TOPOLOGY_FILE.test(e) && !TEST_FILE.test(e))) walk(child);
      }
    } else out.push(path.resolve(p));
  };
  inputs.forEach(walk);
  return out;
}

async function readRaw(file: string): Promise<{ raw: unknown; lineOf: (p: readonly PropertyKey[]) => number | undefined }> {
  if (file.endsWith(".ts") || file.endsWith(".js") || file.endsWith(".mjs")) {
    const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
    if (mod.default === undefined) throw new SfError("SF_ERR_TOPOLOGY_LOAD", `${file} has no default export (export default defineTopology({...}))`);
    return { raw: mod.default, lineOf: () => undefined };
  }
  const text = fs.readFileSync(file, "utf8");
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new TopologyValidationError([{ file, line: lc.linePos(e.pos[0]).line, path: "", message: `not valid YAML: ${e.message.split("\n")[0]}` }]);
  }
  const lineOf = (p: readonly PropertyKey[]) => {
    for (let n = p.length; n >= 0; n--) {
      const node = doc.getIn(p.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === "object" && node.range) return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
  return { raw: doc.toJS(), lineOf };
}

/** Issues file by file (in the order files first appear), by line within a file (those without last), each once. */
export function sortIssues(issues: readonly TopologyIssue[]): TopologyIssue[] {
  const seen = new Set<string>();
  const fileOrder = new Map<string, number>();
  for (const i of issues) if (!fileOrder.has(i.file)) fileOrder.set(i.file, fileOrder.size);
  return issues
    .filter((i) => {
      const k = `${i.file}\n${i.path}\n${i.message}`;
      return seen.has(k) ? false : (seen.add(k), true);
    })
    .map((i, n) => ({ i, n }))
    .sort((a, b) => fileOrder.get(a.i.file)! - fileOrder.get(b.i.file)! || (a.i.line ?? Infinity) - (b.i.line ?? Infinity) || a.n - b.n)
    .map(({ i }) => i);
}

/** Loads, validates and freezes one topology file; throws with every problem in it, in line order. */
export async function loadTopologyFile(file: string, cat: Catalogue): Promise<LoadedTopology> {
  let read: Awaited<ReturnType<typeof readRaw>>;
  try {
    read = await readRaw(file);
  } catch (err) {
    if (err instanceof SfError) throw err;
    throw new SfError("SF_ERR_TOPOLOGY_LOAD", `${file} cannot be loaded: ${(err as Error).message}`, { cause: err });
  }
  const baseDir = path.dirname(file);
  const { topology, issues } = await checkTopology(read.raw, cat, baseDir);
  if (!topology) {
    const located = issues.map((i) => ({ file, line: read.lineOf(i.path), path: formatPath(i.path), message: i.message }));
    throw new TopologyValidationError(sortIssues(located));
  }
  return { file, baseDir, topology: deepFreeze(topology), lineOf: read.lineOf };
}

/** Loads every topology under the inputs; throws with every problem of every file at once. */
export async function loadTopologies(inputs: string[], cat: Catalogue): Promise<LoadedTopology[]> {
  const { loaded, issues } = await checkTopologies(inputs, cat);
  if (issues.length) throw new TopologyValidationError(issues);
  return loaded;
}

/** Every file under the inputs: those that load, and every problem of the others and across them, sorted. */
export async function checkTopologies(inputs: string[], cat: Catalogue): Promise<{ loaded: LoadedTopology[]; issues: TopologyIssue[] }> {
  const files = findTopologyFiles(inputs);
  if (files.length === 0) throw new SfError("SF_ERR_TOPOLOGY_LOAD", `no topology files (*.yaml, *.topology.ts) under ${inputs.join(", ")}`);
  const loaded: LoadedTopology[] = [];
  const issues: TopologyIssue[] = [];
  for (const file of files) {
    try {
      loaded.push(await loadTopologyFile(file, cat));
    } catch (err) {
      if (err instanceof TopologyValidationError) issues.push(...err.issues);
      else if (err instanceof SfError) issues.push({ file, path: "", message: err.message });
      else throw err;
    }
  }
  const byName = new Map<string, string>();
  const byGroup = new Map<string, string>();
  for (const l of loaded) {
    const { name } = l.topology;
    const group = groupOf(l.topology);
    if (byName.has(name)) issues.push({ file: l.file, line: l.lineOf?.(["name"]), path: "name", message: `topology name "${name}" is also used by ${byName.get(name)}` });
    if (byGroup.has(group)) issues.push({ file: l.file, line: l.lineOf?.(["source", "group"]), path: "source.group", message: `consumer group "${group}" is also used by ${byGroup.get(group)}` });
    byName.set(name, l.file);
    byGroup.set(group, l.file);
  }
  return { loaded, issues: sortIssues(issues) };
}

export function groupOf(t: Pick<Topology, "name" | "source">): string {
  return t.source.group ?? `streamfleet.${t.name}`;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
