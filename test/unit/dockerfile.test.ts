import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

/**
 * The Dockerfile, checked statically: no Docker engine runs on the project's machines, so the
 * image has never been built here. What can be known without building it is checked.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");
const text = fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
/** Instructions with their continuation lines joined, comments dropped. */
const lines = text
  .replace(/\\\n\s*/g, " ")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith("#"));
const instr = (name: string) => lines.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string>; bin: Record<string, string>; files: string[]; scripts: Record<string, string> };
const froms = instr("FROM");
const finalStage = text.slice(text.lastIndexOf("\nFROM "));

describe("Dockerfile", () => {
  it("builds in one stage and runs in another, both on Node LTS slim of the project's Node major", () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const major = pkg.devDependencies.node!.split(".")[0];
    for (const f of froms) expect(f).toMatch(new RegExp(`^node:${major}-slim\\b`));
    expect(froms[0]).toMatch(/ AS build$/);
  });

  it("copies only paths that exist in the repository (or from the build stage)", () => {
    const sources = instr("COPY").flatMap((c) => {
      const parts = c.split(/\s+/).filter((p) => !p.startsWith("--"));
      return c.includes("--from=") ? [] : parts.slice(0, -1);
    });
    expect(sources.length).toBeGreaterThan(5);
    for (const s of sources) expect(fs.existsSync(path.join(ROOT, s)), s).toBe(true);
    const ignored = fs.readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const s of sources) expect(ignored, `${s} is not sent to the build`).not.toContain(s);
  });

  it("installs the packed package with runtime dependencies only and runs it as a non-root user", () => {
    expect(text).toMatch(/RUN npm pack /);
    expect(pkg.scripts.prepack).toBeDefined(); // npm pack compiles dist/
    expect(finalStage).toMatch(/npm install --omit=dev /);
    expect(finalStage).not.toMatch(/npm ci(?! --omit=dev)/);
    const user = instr("USER").at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)$/);
  });

  it("has `streamfleet run` as entry point, a file the package ships as its bin", () => {
    const entry = JSON.parse(instr("ENTRYPOINT").at(-1)!) as string[];
    expect(entry[0]).toBe("node");
    expect(entry.at(-1)).toBe("run");
    const prefix = "node_modules/streamfleet/";
    expect(entry[1]!.startsWith(prefix)).toBe(true);
    const inPackage = entry[1]!.slice(prefix.length);
    expect(`./${inPackage}`).toBe(pkg.bin.streamfleet);
    expect(fs.existsSync(path.join(ROOT, inPackage))).toBe(true);
    expect(pkg.files).toContain(`${path.dirname(inPackage)}/`);
    const cmd = JSON.parse(instr("CMD").at(-1)!) as string[];
    expect(fs.existsSync(path.join(ROOT, cmd[0]!))).toBe(true); // the default topologies are copied in
  });

  it("exposes the admin port and checks /healthz on it", () => {
    const port = /STREAMFLEET_ADMIN_PORT=(\d+)/.exec(text)![1];
    expect(instr("EXPOSE")).toEqual([port]);
    expect(text).toMatch(/STREAMFLEET_ADMIN_HOST=0\.0\.0\.0/);
    expect(instr("HEALTHCHECK").at(-1)).toMatch(/\/healthz/);
  });

  it("is the image docker-compose.yml's worker and the k8s worker Deployment run, through its entry point", () => {
    const compose = parse(fs.readFileSync(path.join(ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, { image?: string; build?: string; command?: string[] }> };
    expect(compose.services.worker).toMatchObject({ image: "streamfleet:latest", build: "." });
    type Deployment = { kind: string; spec: { template: { spec: { containers: Array<{ image: string; command?: string[]; args?: string[] }> } } } };
    const docs = parseAllDocuments(fs.readFileSync(path.join(ROOT, "k8s/worker-deployment.yaml"), "utf8")).map((d) => d.toJS() as Deployment);
    const deployment = docs.find((d) => d.kind === "Deployment")!;
    const worker = deployment.spec.template.spec.containers[0]!;
    expect(worker.image).toBe("streamfleet:latest");
    expect(worker.command).toBeUndefined(); // the image's ENTRYPOINT runs
    expect(worker.args).toContain("--json");
  });
});
