import fs from "node:fs";
import path from "node:path";
import { SfError } from "../errors.ts";
import { parseCommand } from "./args.ts";

/** The templates, beside this module (scripts/build.ts copies them next to the compiled one). */
const SCAFFOLD = path.join(import.meta.dirname, "scaffold");

/** Each template and where it goes in the new project (`NAME` is the project's name). */
const FILES: ReadonlyArray<readonly [template: string, target: string]> = [
  ["package.json.tmpl", "package.json"],
  ["tsconfig.json.tmpl", "tsconfig.json"],
  ["README.md.tmpl", "README.md"],
  ["topology.yaml.tmpl", "topologies/NAME.yaml"],
  ["topology.test.yaml.tmpl", "topologies/NAME.test.yaml"],
  ["price.ts.tmpl", "topologies/transforms/price.ts"],
  ["order-event.avsc.tmpl", "schemas/order-event.avsc"],
  ["Dockerfile.tmpl", "Dockerfile"],
  ["dockerignore.tmpl", ".dockerignore"],
  ["deployment.yaml.tmpl", "k8s/deployment.yaml"],
  ["gitignore.tmpl", ".gitignore"],
];

/** A topology name (lower-case letters, digits, '.', '_', '-'; a letter first) from a directory or given name. */
export function projectName(raw: string): string {
  const name = raw
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/[-._]+$/, "");
  return name || "pipeline";
}

/** streamfleet's own version (the dependency the project gets), from its package.json above this module. */
function ownVersion(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "streamfleet" && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) return "0.1.0";
  }
}

/**
 * `streamfleet init [dir] [--name NAME] [--from SPEC]`: writes a project whose two commands,
 * `npx streamfleet test` and `npx streamfleet run`, work as written. Refuses to overwrite
 * any file. `--from` sets the streamfleet dependency (a tarball path, a git URL) instead of
 * the published version this command belongs to.
 */
export async function initCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand("init", args);
  const dir = path.resolve(positionals[0] ?? ".");
  const name = projectName(typeof values.name === "string" ? values.name : path.basename(dir));
  const from = typeof values.from === "string" ? values.from : undefined;
  const dependency = from === undefined ? `^${ownVersion()}` : /^[a-z+]+:/.test(from) ? from : `file:${path.resolve(from)}`;
  const targets = FILES.map(([template, target]) => [template, path.join(dir, target.replace("NAME", name))] as const);
  const existing = targets.filter(([, t]) => fs.existsSync(t)).map(([, t]) => path.relative(dir, t));
  if (existing.length) throw new SfError("SF_ERR_INIT_NOT_EMPTY", `${dir} already holds ${existing.join(", ")}; streamfleet init overwrites nothing: choose an empty or new directory`);
  const fill = (text: string) =>
    text
      .replaceAll("__NAMESPACE__", name.replace(/[^a-z0-9_]/g, "_"))
      .replaceAll("__NAME__", name)
      .replaceAll("__STREAMFLEET__", dependency);
  for (const [template, target] of targets) {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, fill(fs.readFileSync(path.join(SCAFFOLD, template), "utf8")), { flag: "wx" });
  }
  const cd = path.relative(process.cwd(), dir);
  console.log(
    [
      `streamfleet: project ${name} written to ${dir}:`,
      ...targets.map(([, t]) => `  ${path.relative(dir, t)}`),
      "",
      "next:",
      ...(cd ? [`  cd ${cd}`] : []),
      "  npm install",
      "  npx streamfleet test     # offline tests of the topology",
      "  npx streamfleet run      # the worker, against the servers in the environment (default: the local stack)",
    ].join("\n"),
  );
  return 0;
}
