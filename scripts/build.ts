// `npm pack` / `npm publish` (prepack): compiles lib/ to dist/ (JavaScript + type declarations,
// relative imports rewritten from .ts to .js) and copies the files the runtime reads from disk
// next to the code that reads them. The repository itself runs from the sources.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
const DIST = path.join(ROOT, "dist");

/** Files read at run time (scripts, the Kafka pom, `streamfleet init`'s templates), relative to the code that reads them (kept at the same paths under dist/). */
export const RUNTIME_FILES = ["lib/connectors/redis/scripts/*.lua", "scripts/stack/kafka-pom.xml", "scripts/stack/kafka-tools-pom.xml", "lib/cli/scaffold/*.tmpl"];

function expand(pattern: string): string[] {
  const dir = path.dirname(pattern);
  const base = path.basename(pattern);
  if (!base.includes("*")) return [pattern];
  const suffix = base.slice(base.indexOf("*") + 1);
  return fs
    .readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith(suffix))
    .map((f) => path.join(dir, f));
}

fs.rmSync(DIST, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", path.join(ROOT, "tsconfig.build.json")], { stdio: "inherit" });
if (tsc.status !== 0) {
  console.error("build: tsc failed");
  process.exit(1);
}
let copied = 0;
for (const file of RUNTIME_FILES.flatMap(expand)) {
  fs.mkdirSync(path.join(DIST, path.dirname(file)), { recursive: true });
  fs.copyFileSync(path.join(ROOT, file), path.join(DIST, file));
  copied++;
}
console.log(`build: dist/ compiled, ${copied} runtime files copied`);
