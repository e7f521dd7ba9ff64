import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { LineCounter, parseDocument } from "yaml";
import { SfError } from "../errors.ts";
import type { Catalogue, Topology } from "./model.ts";
import { topologySchema } from "./model.ts";

export interface LoadedTopology {
  file: string;
  baseDir: string;
  topology: Readonly<Topology>;
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

/** Expands files and directories (recursively) into topology files, sorted. */
export function findTopologyFiles(inputs: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) throw new SfError("SF_ERR_TOPOLOGY_LOAD", `${p} does not exist`);
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p).sort()) {
        const child = path.join(p, e);
        if (fs.statSync(child).isDirectory() || TOPOLOGY_FILE.test(e)) walk(child);
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

/** Loads, validates and freezes one topology file; throws with every problem in it. */
export async function loadTopologyFile(file: string, cat: Catalogue): Promise<LoadedTopology> {
  let read: Awaited<ReturnType<typeof readRaw>>;
  try {
    read = await readRaw(file);
  } catch (err) {
    if (err instanceof SfError) throw err;
    throw new SfError("SF_ERR_TOPOLOGY_LOAD", `${file} cannot be loaded: ${(err as Error).message}`, { cause: err });
  }
  const result = topologySchema(cat).safeParse(read.raw);
  if (!result.success) {
    throw new TopologyValidationError(
      result.error.issues.map((i) => ({ file, line: read.lineOf(i.path), path: formatPath(i.path), message: i.message })),
    );
  }
  const topology = result.data;
  const baseDir = path.dirname(file);
  const issues: TopologyIssue[] = [];
  const sinkNames = topology.sinks.map((s) => s.name);
  const verifyCtx = { baseDir, sinkNames };
  const components = [
    ...topology.steps.map((s, i) => ({ spec: cat.steps.get(s.kind)!, config: s.config, prefix: ["steps", i, s.kind] as PropertyKey[] })),
    ...topology.sinks.map((s, i) => ({ spec: cat.sinks.get(s.type)!, config: s.config, prefix: ["sinks", i] as PropertyKey[] })),
  ];
  for (const c of components) {
    for (const v of (await c.spec.verify?.(c.config, verifyCtx)) ?? []) {
      const p = [...c.prefix, ...v.path];
      issues.push({ file, line: read.lineOf(p), path: formatPath(p), message: v.message });
    }
  }
  if (issues.length) throw new TopologyValidationError(issues);
  return { file, baseDir, topology: deepFreeze(topology) };
}

/** Loads every topology under the inputs; reports every problem of every file at once. */
export async function loadTopologies(inputs: string[], cat: Catalogue): Promise<LoadedTopology[]> {
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
    if (byName.has(name)) issues.push({ file: l.file, path: "name", message: `topology name "${name}" is also used by ${byName.get(name)}` });
    if (byGroup.has(group)) issues.push({ file: l.file, path: "source.group", message: `consumer group "${group}" is also used by ${byGroup.get(group)}` });
    byName.set(name, l.file);
    byGroup.set(group, l.file);
  }
  if (issues.length) throw new TopologyValidationError(issues);
  return loaded;
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
