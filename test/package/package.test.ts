import { spawn, spawnSync } from "node:child_process";
import type { SpawnSyncReturns } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readAvsc } from "../../lib/codecs/avro.ts";
import { SchemaCodecs } from "../../lib/codecs/registry.ts";
import { stack, TestScope } from "../support/scope.ts";

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
    JSON.stringify({ compilerOptions: { module: "nodenext", target: "es2024", strict: true, noEmit: true, skipLibCheck: true, allowImportingTsExtensions: true, typeRoots: [path.join(ROOT, "node_modules/@types")], types: ["node"] }, include: ["topologies"] }),
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

/**
 * The README's quick start, as a new user takes it: `npx streamfleet init` from the installed
 * tarball, `npm install` in the scaffold, then its own commands untouched — `streamfleet test`
 * and `streamfleet validate`, `streamfleet run` against the real stack until records flow — and a
 * TS topology importing `defineTopology` type-checked by the scaffold's own tsconfig and compiler.
 */
describe("streamfleet init: the quick start", () => {
  const name = `sfinit-${Math.random().toString(36).slice(2, 8)}`;
  const app = path.join(project, name);
  const scope = new TestScope("init");
  const env = (): NodeJS.ProcessEnv => ({ ...stack(), LOG_LEVEL: "warn" });

  afterAll(async () => {
    const s = stack();
    const admin = scope.kafka().admin();
    await admin.connect();
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${name}.`));
    if (mine.length) await admin.deleteTopics({ topics: mine }).catch(() => {});
    await admin.disconnect();
    for (const q of ["", "?permanent=true"]) await fetch(`${s.SCHEMA_REGISTRY_URL}/subjects/${name}.orders-value${q}`, { method: "DELETE" }).then((r) => r.arrayBuffer(), () => {});
    const redis = new Redis(s.REDIS_URL);
    for (const pattern of [`${name}:order:*`, `sf:v1:fv:${name}.customers:*`]) {
      const keys = await redis.keys(pattern);
      if (keys.length) await redis.del(...keys);
    }
    await redis.hdel("sf:v1:views", `${name}.customers`);
    redis.disconnect();
  }, 60_000);

  it("scaffolds the project, installs it from the tarball, and its offline test and validate pass untouched", () => {
    const out = ok(sh("npx", ["--no-install", "streamfleet", "init", name, "--from", path.join(tmp, packed.filename)], project));
    expect(out).toContain(`project ${name} written`);
    for (const f of ["package.json", "README.md", `topologies/${name}.yaml`, `topologies/${name}.test.yaml`, "topologies/transforms/price.ts", "schemas/order-event.avsc", "Dockerfile", "k8s/deployment.yaml"]) {
      expect(fs.existsSync(path.join(app, f)), f).toBe(true);
    }
    const readme = fs.readFileSync(path.join(app, "README.md"), "utf8");
    expect(readme).toContain("npx streamfleet test");
    expect(readme).toContain("npx streamfleet run");
    ok(sh("npm", ["install", "--no-audit", "--no-fund"], app));
    const test = ok(sh("npx", ["--no-install", "streamfleet", "test"], app, env()));
    expect(test).toContain("2 passed, 0 failed, 0 not run, 0 errors");
    const validate = ok(sh("npx", ["--no-install", "streamfleet", "validate"], app, env()));
    expect(validate).toContain(`ok  ${path.join(app, "topologies", `${name}.yaml`)} (${name}: 2 steps, 2 sinks)`);
    // the scaffold's test is a real one: an expectation changed makes it fail with a diff
    const testFile = path.join(app, "topologies", `${name}.test.yaml`);
    const original = fs.readFileSync(testFile, "utf8");
    fs.writeFileSync(testFile, original.replace("spent_cents: 13049", "spent_cents: 13050"));
    const broken = sh("npx", ["--no-install", "streamfleet", "test"], app, env());
    fs.writeFileSync(testFile, original);
    expect(broken.status).toBe(1);
    expect(broken.stdout).toMatch(/sinks\.customer-features\[0\]\.features\.spent_cents .*\n\s+expected: 13050\n\s+actual:\s+13049/);
  }, 600_000);

  it("`npx streamfleet run` in the scaffold consumes Avro orders from the stack and caches them in Redis", async () => {
    const port = await freePort();
    // The installed bin itself, not `npx`: npm exec re-raises a forwarded SIGTERM on itself, so its
    // exit code would say nothing about how the worker ended.
    const worker = spawn(path.join(app, "node_modules/.bin/streamfleet"), ["run"], { cwd: app, env: { ...process.env, PATH, ...env(), STREAMFLEET_ADMIN_PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    worker.stdout.on("data", (d: Buffer) => (log += d.toString()));
    worker.stderr.on("data", (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => worker.on("exit", (code) => resolve(code)));
    const redis = new Redis(stack().REDIS_URL);
    const producer = scope.producer();
    try {
      await until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok === true, 90_000, () => `the worker did not become ready:\n${log}`);
      const { text, type } = readAvsc(path.join(app, "schemas/order-event.avsc"), "/");
      const codecs = new SchemaCodecs(stack().SCHEMA_REGISTRY_URL);
      const encode = codecs.encoder(await codecs.register(`${name}.orders-value`, text), type);
      await producer.connect();
      const order = (id: string, status: string) => ({ id, customer: "c1", amount: 42.5, status, note: null, at: Date.now() });
      await producer.send({ topic: `${name}.orders`, messages: [order("o1", "PLACED"), order("o2", "TEST")].map((o) => ({ key: o.id, value: encode(o) })) });
      await until(async () => (await redis.get(`${name}:order:o1`)) !== null, 60_000, () => `no order reached Redis:\n${log}`);
      expect(JSON.parse((await redis.get(`${name}:order:o1`))!)).toMatchObject({ id: "o1", amount_cents: 4250, large: false });
      expect(await redis.hget(`sf:v1:fv:${name}.customers:c1`, "orders")).toBe("1");
      expect(await redis.get(`${name}:order:o2`)).toBeNull(); // filtered, as the offline test says
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`streamfleet_records_consumed_total\\{[^}]*topology="${name}"[^}]*\\} 2`));
    } finally {
      await producer.disconnect().catch(() => {});
      redis.disconnect();
      // the worker drains, commits and exits 0 on SIGTERM
      if (worker.exitCode === null) worker.kill("SIGTERM");
    }
    expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r("still running"), 45_000))])).toBe(0);
  }, 300_000);

  it("type-checks a TS topology importing `defineTopology` with the scaffold's tsconfig and TypeScript", () => {
    fs.writeFileSync(
      path.join(app, "topologies/totals.topology.ts"),
      `import { defineTopology } from "streamfleet";\n\nexport default defineTopology({\n  name: "${name}-totals",\n  source: { topics: ["${name}.orders"] },\n  sinks: [{ type: "redis.cache", key: "${name}:total:{customer}", ttl_seconds: 60 }],\n});\n`,
    );
    fs.writeFileSync(path.join(app, "topologies/wrong.topology.ts"), 'import { defineTopology } from "streamfleet";\nexport default defineTopology({ name: "w", source: { topics: ["t"] }, sinks: [{ type: "redis.nope" }] });\n');
    try {
      const r = sh("npm", ["run", "--silent", "typecheck"], app);
      const errors = r.stdout.split("\n").filter((l) => /error TS\d+/.test(l));
      expect(errors.length, r.stdout + r.stderr).toBeGreaterThan(0);
      expect(errors.filter((l) => !l.startsWith("topologies/wrong.topology.ts"))).toEqual([]);
    } finally {
      fs.rmSync(path.join(app, "topologies/wrong.topology.ts"));
    }
    ok(sh("npm", ["run", "--silent", "typecheck"], app));
  }, 300_000);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function until(check: () => Promise<boolean>, ms: number, why: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(why());
    await new Promise((r) => setTimeout(r, 250));
  }
}

const oldNode = ["/usr/bin/node", "/usr/local/bin/node"].find((n) => fs.existsSync(n) && Number(spawnSync(n, ["-p", "process.versions.node.split('.')[0]"], { encoding: "utf8" }).stdout.trim()) < 22);
describe("on a Node older than engines.node", () => {
  it.skipIf(!oldNode)(`the bin fails with one line that says which Node it needs${oldNode ? "" : " (skipped: no Node older than 22 on this machine)"}`, () => {
    const r = spawnSync(oldNode!, [path.join(project, "node_modules/.bin/streamfleet"), "--help"], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^streamfleet needs Node\.js >=22\.18\.0 .* but this is v\d+\.\d+\.\d+: install Node 24 LTS/);
  });
});
