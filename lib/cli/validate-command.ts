import { SchemaCodecs } from "../codecs/registry.ts";
import { readAvsc } from "../codecs/avro.ts";
import { unreadableError, unreadableVersions } from "../codecs/reader-check.ts";
import { errorMessage, SfError } from "../errors.ts";
import { defaultCatalogue } from "../runtime/fleet.ts";
import type { LoadedTopology } from "../topology/loader.ts";
import { formatIssue, loadTopologies, TopologyValidationError } from "../topology/loader.ts";

/**
 * `streamfleet validate [--offline] [files|dirs]`: every problem of every file, then each
 * Avro subject against the registry (it exists, or the local schema is compatible with it).
 */
export async function validateCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const offline = args.includes("--offline");
  const inputs = args.filter((a) => !a.startsWith("--"));
  let loaded: LoadedTopology[];
  try {
    loaded = await loadTopologies(inputs.length ? inputs : ["topologies"], defaultCatalogue());
  } catch (err) {
    if (err instanceof TopologyValidationError) {
      console.error(`invalid topologies:\n${err.issues.map(formatIssue).join("\n")}`);
      return 1;
    }
    throw err;
  }
  const problems: string[] = [];
  if (!offline) {
    const url = env.SCHEMA_REGISTRY_URL;
    if (!url) problems.push("SCHEMA_REGISTRY_URL is not set: pass --offline to skip the registry checks");
    else {
      const r = await checkSubjects(loaded, new SchemaCodecs(url));
      problems.push(...r.problems);
      for (const w of r.warnings) console.log(`warn ${w}`);
    }
  }
  for (const l of loaded) console.log(`ok  ${l.file} (${l.topology.name}: ${l.topology.steps.length} steps, ${l.topology.sinks.length} sinks)`);
  if (problems.length) {
    console.error(`registry problems:\n${problems.map((p) => `  ${p}`).join("\n")}`);
    return 1;
  }
  return 0;
}

/**
 * Problems (a named subject missing, a local schema incompatible with its subject) and
 * warnings (an implied `<topic>-value` subject no producer has registered yet: records are
 * read with their writer schema, so that is not an error).
 */
async function checkSubjects(loaded: LoadedTopology[], codecs: SchemaCodecs): Promise<{ problems: string[]; warnings: string[] }> {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const l of loaded) {
    const t = l.topology;
    for (const side of ["key", "value"] as const) {
      const codec = t.codec[side];
      if (codec.type !== "avro") continue;
      const implied = (t.source.topics ?? [t.name]).map((topic) => `${topic}-${side}`);
      const subjects = codec.subject ? [codec.subject] : codec.schema ? implied.slice(0, 1) : implied;
      const where = `${l.file} codec.${side}`;
      for (const subject of subjects) {
        try {
          if (codec.schema) {
            const { type } = readAvsc(codec.schema, l.baseDir);
            const versions = await codecs.versions(subject);
            const bad = unreadableVersions(type, versions);
            if (versions.length === 0) warnings.push(`${where}: subject ${subject} does not exist yet; a worker registers ${codec.schema} as its first version at start`);
            else if (bad.length) problems.push(`${where}: ${unreadableError(subject, codec.schema, bad).message}`);
          } else {
            await codecs.latest(subject);
          }
        } catch (err) {
          const missing = err instanceof SfError && err.code === "SF_ERR_SCHEMA_NOT_FOUND";
          if (missing && !codec.subject) warnings.push(`${where}: subject ${subject} is not registered yet (its producer registers it on first write)`);
          else problems.push(`${where}: ${errorMessage(err)}`);
        }
      }
    }
  }
  return { problems, warnings };
}
