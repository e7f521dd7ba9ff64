import { spawnSync } from "node:child_process";
import type { SpawnSyncReturns } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stack } from "../support/scope.ts";

/**
 * The package as another project gets it: `npm pack` (which builds dist/ in prepack), the
 * tarball installed from the npm registry's dependencies into a fresh project, and the
 * installed `streamfleet` command and types used there.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sf-package-"));
const project = path.join(tmp, "project");
// npm and the package's bin run on this Node (24), whatever `node` is first on the caller's PATH.
const PATH = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH}`;
let packed: { filename: string; files: Array<{ path: string }> };

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 180_000, env: { ...process.env, PATH, ...env } });
}

function ok(r: SpawnSyncReturns<string>): string {
  if (r.status !== 0) throw new Error(`exit ${r.status} ${r.error?.message ?? ""}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  const out = ok(sh("npm", ["pack", "--json", "--pack-destination", tmp], ROOT));
  packed = (JSON.parse(out.slice(out.indexOf("[\n"))) as (typeof packed)[])[0]!;
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "my-pipelines", private: true, type: "module" }));
  ok(sh("npm", ["install", "--no-audit", "--no-fund", path.join(tmp, packed.filename)], project));
  fs.mkdirSync(path.join(project, "topologies"));
  fs.writeFileSync(
    path.join(project, "topologies/orders.yaml"),
    ["name: pkg-orders", "source: { topics: [pkg.orders] }", "codec: { value: { type: json } }", "steps:", "  - transform: { module: ./enrich.ts, export: enrich }", "sinks:", '  - { type: redis.cache, key: "order:{id}", ttl_seconds: 60 }', ""].join("\n"),
  );
  fs.writeFileSync(path.join(project, "topologies/enrich.ts"), "export function enrich(value: { id: string }): { id: string; seen: boolean } {\n  return { ...value, seen: true };\n}\n");
  fs.writeFileSync(
    path.join(project, "topologies/totals.topology.ts"),
    'import { defineTopology } from "streamfleet";\n\nexport default defineTopology({\n  name: "pkg-totals",\n  source: { topics: ["pkg.orders"] },\n  codec: { value: { type: "json" } },\n  sinks: [{ type: "redis.cache", key: "total:{id}", ttl_seconds: 60 }],\n});\n',
  );
  fs.writeFileSync(
    path.join(project, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { module: "nodenext", target: "es2024", strict: true, noEmit: true, allowImportingTsExtensions: true, typeRoots: [path.join(ROOT, "node_modules/@types")], types: ["node"] }, include: ["topologies"] }),
  );
}, 300_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("the npm package", () => {
  it("holds compiled JavaScript, type declarations, the bin and the files read at run time — no sources, tests or examples", () => {
    const files = packed.files.map((f) => f.path);
    for (const f of ["bin/streamfleet.mjs", "dist/lib/index.js", "dist/lib/index.d.ts", "dist/lib/cli/main.js", "dist/lib/runtime/contracts.d.ts", "dist/lib/features/client.js", "dist/scripts/stack/kafka-pom.xml", "package.json", "README.md"]) {
      expect(files).toContain(f);
    }
    for (const lua of fs.readdirSync(path.join(ROOT, "lib/connectors/redis/scripts"))) expect(files).toContain(`dist/lib/connectors/redis/scripts/${lua}`);
    const devOnly = files.filter((f) => /^(lib|test|topologies|schemas|docs|k8s|observability|scripts|\.ci)\//.test(f) || (f.endsWith(".ts") && !f.endsWith(".d.ts")));
    expect(devOnly).toEqual([]);
    const manifest = JSON.parse(fs.readFileSync(path.join(project, "node_modules/streamfleet/package.json"), "utf8")) as { dependencies: Record<string, string>; engines: { node: string } };
    expect(Object.values(manifest.dependencies).filter((v) => v.startsWith("file:"))).toEqual([]);
    expect(manifest.engines.node).toBe(">=22.18.0");
  });

  it("`npx streamfleet --help` lists the commands", () => {
    const out = ok(sh("npx", ["--no-install", "streamfleet", "--help"], project));
    for (const cmd of ["run", "validate", "graph", "dlq replay", "stack"]) expect(out).toContain(cmd);
  });

  it("`streamfleet validate` checks a YAML topology with a TS transform and a TS topology importing streamfleet", () => {
    const out = ok(sh("npx", ["--no-install", "streamfleet", "validate", "topologies"], project, { ...stack() }));
    expect(out).toMatch(/pkg-orders/);
    expect(out).toMatch(/pkg-totals/);
    fs.writeFileSync(path.join(project, "bad.yaml"), "name: pkg-bad\nsource: { topics: [x] }\nsinks: [{ type: redis.cache }]\n");
    const bad = sh("npx", ["--no-install", "streamfleet", "validate", "--offline", "bad.yaml"], project);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/bad\.yaml.*sinks\[0\]/);
  });

  it("types `defineTopology` from \"streamfleet\": a good topology type-checks, a wrong sink type does not", () => {
    // One compiler run over both files (each run takes ~20 s on this machine): errors only in the wrong one.
    fs.writeFileSync(path.join(project, "topologies/wrong.topology.ts"), 'import { defineTopology } from "streamfleet";\nexport default defineTopology({ name: "w", source: { topics: ["t"] }, sinks: [{ type: "redis.nope" }] });\n');
    try {
      const r = sh(process.execPath, [path.join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], project);
      const errors = r.stdout.split("\n").filter((l) => /error TS\d+/.test(l));
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.filter((l) => !l.startsWith("topologies/wrong.topology.ts"))).toEqual([]);
      expect(r.stdout).toContain('"redis.nope"');
    } finally {
      fs.rmSync(path.join(project, "topologies/wrong.topology.ts"));
    }
  });
});

const oldNode = ["/usr/bin/node", "/usr/local/bin/node"].find((n) => fs.existsSync(n) && Number(spawnSync(n, ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8" }).stdout.trim()) < 22);
describe("on a Node older than engines.node", () => {
  it.skipIf(!oldNode)(`the bin fails with one line that says which Node it needs${oldNode ? "" : " (skipped: no Node older than 22 on this machine)"}`, () => {
    const r = spawnSync(oldNode!, [path.join(project, "node_modules/.bin/streamfleet"), "--help"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^streamfleet needs Node\.js >=22\.18\.0 .* but this is v\d+\.\d+\.\d+: install Node 24 LTS/);
  });
});
