import { SchemaCodecs } from "../codecs/registry.ts";
import { readAvsc } from "../codecs/avro.ts";
import { unreadableError, unreadableVersions } from "../codecs/reader-check.ts";
import { errorMessage, SfError } from "../errors.ts";
import { parseCommand } from "./args.ts";
import { defaultCatalogue } from "../runtime/fleet.ts";
import type { LoadedTopology, TopologyIssue } from "../topology/loader.ts";
import { checkTopologies, formatIssue, formatPath, sortIssues } from "../topology/loader.ts";

/**
 * `streamfleet validate [--offline] [files|dirs]`: every problem of every file (offline:
 * the schema, modules, sink names, templates against the value schema, .avsc files), then
 * each Avro subject of the files that load, against the registry; all sorted by file and line.
 */
export async function validateCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals: inputs } = parseCommand("validate", args);
  const offline = values.offline === true;
  const { loaded, issues } = await checkTopologies(inputs.length ? inputs : ["topologies"], defaultCatalogue());
  const notes: string[] = [];
  if (!offline) {
    const url = env.SCHEMA_REGISTRY_URL;
    if (!url) notes.push("SCHEMA_REGISTRY_URL is not set: pass --offline to skip the registry checks");
    else {
      const r = await checkSubjects(loaded, new SchemaCodecs(url));
      issues.push(...r.problems);
      for (const w of r.warnings) console.log(`warn ${formatIssue(w).trim()}`);
    }
  }
  const failed = new Set(issues.map((i) => i.file));
  for (const l of loaded) if (!failed.has(l.file)) console.log(`ok  ${l.file} (${l.topology.name}: ${l.topology.steps.length} steps, ${l.topology.sinks.length} sinks)`);
  if (issues.length + notes.length === 0) return 0;
  console.error(`problems:\n${[...sortIssues(issues).map(formatIssue), ...notes.map((n) => `  ${n}`)].join("\n")}`);
  return 1;
}

/**
 * Problems (a named subject missing, a local reader schema that cannot read a version of its
 * subject) and warnings (a subject no producer has registered yet: records are read with
 * their writer schema, and a worker registers a local reader schema as the first version).
 */
export async function checkSubjects(loaded: LoadedTopology[], codecs: SchemaCodecs): Promise<{ problems: TopologyIssue[]; warnings: TopologyIssue[] }> {
  const problems: TopologyIssue[] = [];
  const warnings: TopologyIssue[] = [];
  for (const l of loaded) {
    const t = l.topology;
    for (const side of ["key", "value"] as const) {
      const codec = t.codec[side];
      if (codec.type !== "avro") continue;
      const implied = (t.source.topics ?? [t.name]).map((topic) => `${topic}-${side}`);
      const subjects = codec.subject ? [codec.subject] : codec.schema ? implied.slice(0, 1) : implied;
      const at = ["codec", side, codec.schema ? "schema" : codec.subject ? "subject" : "type"];
      const issue = (message: string): TopologyIssue => ({ file: l.file, line: l.lineOf?.(at), path: formatPath(at), message });
      for (const subject of subjects) {
        try {
          if (codec.schema) {
            const { type } = readAvsc(codec.schema, l.baseDir);
            const versions = await codecs.versions(subject);
            const bad = unreadableVersions(type, versions);
            if (versions.length === 0) warnings.push(issue(`subject ${subject} does not exist yet; a worker registers ${codec.schema} as its first version at start`));
            else if (bad.length) problems.push(issue(unreadableError(subject, codec.schema, bad).message));
          } else {
            await codecs.latest(subject);
          }
        } catch (err) {
          const missing = err instanceof SfError && err.code === "SF_ERR_SCHEMA_NOT_FOUND";
          if (missing && !codec.subject) warnings.push(issue(`subject ${subject} is not registered yet (its producer registers it on first write)`));
          else problems.push(issue(errorMessage(err)));
        }
      }
    }
  }
  return { problems, warnings };
}
