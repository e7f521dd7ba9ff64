import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StackError } from "../../lib/stack/errors.ts";
import { registryRunner } from "../../lib/stack/registry.ts";
import { requireStackTools } from "../../lib/stack/stack.ts";
import { installCommand, missingTools, missingToolsLine } from "../../lib/stack/tools.ts";
import { needTools } from "../support/tools.ts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sf-tools-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A PATH directory holding executables with these names (and a non-executable `python3`). */
function pathWith(...names: string[]): string {
  const dir = fs.mkdtempSync(path.join(tmp, "bin-"));
  for (const n of names) fs.writeFileSync(path.join(dir, n), "#!/bin/sh\n", { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "python3"), "not executable", { mode: 0o644 });
  return dir;
}

describe("which tools exist", () => {
  it("finds executables on PATH only, each tool once", () => {
    const dir = pathWith("java", "promtool");
    expect(missingTools(["java", "mvn", "promtool", "python3", "mvn"], dir)).toEqual(["mvn", "python3"]);
    expect(missingTools(["java"], `${pathWith()}${path.delimiter}${dir}`)).toEqual([]);
  });

  it("says in one line what is missing and the Debian command that installs it", () => {
    expect(missingToolsLine(["java", "promtool"], pathWith("java", "promtool"))).toBeUndefined();
    expect(missingToolsLine(["java"], "")).toBe("Java 17+ is not on PATH: install it (`apt-get install openjdk-17-jre-headless`)");
    expect(missingToolsLine(["java", "mvn"], "")).toBe(
      "Java 17+ and Maven are not on PATH: install them (`apt-get install openjdk-17-jre-headless maven`)",
    );
    const line = missingToolsLine(["prometheus", "promtool", "python3"], "")!;
    expect(line).toBe("Prometheus, promtool and Python 3 are not on PATH: install them (`apt-get install prometheus python3`)");
    expect(line.split("\n")).toHaveLength(1);
    expect(installCommand(["java", "mvn", "prometheus", "promtool", "python3"])).toBe("apt-get install openjdk-17-jre-headless maven prometheus python3");
  });
});

describe("stack up asks for the tools of what it starts", () => {
  const codeOf = (fn: () => void): string | undefined => {
    try {
      fn();
      return undefined;
    } catch (err) {
      expect(err).toBeInstanceOf(StackError);
      return (err as StackError).code;
    }
  };

  it("nothing to start: nothing needed", () => {
    expect(codeOf(() => requireStackTools(path.join(tmp, "state-a"), false, false, ""))).toBeUndefined();
  });

  it("a first start needs Java and Maven, named together in one line", () => {
    const state = path.join(tmp, "state-b");
    expect(() => requireStackTools(state, true, false, "")).toThrow(
      /^Java 17\+ and Maven are not on PATH: install them \(`apt-get install openjdk-17-jre-headless maven`\), or set STREAMFLEET_STACK=docker/,
    );
    expect(codeOf(() => requireStackTools(state, true, false, pathWith("java")))).toBe("SF_ERR_STACK_NO_MAVEN");
    expect(codeOf(() => requireStackTools(state, false, true, pathWith("mvn")))).toBe("SF_ERR_STACK_NO_JAVA");
  });

  it("with the jars cached, Java alone", () => {
    const state = path.join(tmp, "state-c");
    fs.mkdirSync(path.join(state, "kafka", "libs"), { recursive: true });
    fs.writeFileSync(path.join(state, "kafka", "libs", ".complete"), "hash");
    fs.mkdirSync(path.dirname(registryRunner(state)), { recursive: true });
    fs.writeFileSync(registryRunner(state), "");
    expect(codeOf(() => requireStackTools(state, true, true, pathWith("java")))).toBeUndefined();
    expect(codeOf(() => requireStackTools(state, true, true, ""))).toBe("SF_ERR_STACK_NO_JAVA");
  });
});

describe("tests that need a tool", () => {
  it("are skipped outside CI, their name carrying the install line", () => {
    const gate = needTools(["prometheus"], { PATH: pathWith() });
    expect(gate.skip).toBe(true);
    expect(gate.title("scrapes a worker")).toBe("scrapes a worker (skipped: Prometheus is not on PATH: install it (`apt-get install prometheus`))");
  });

  it("run and fail with that line under CI", () => {
    const gate = needTools(["prometheus"], { PATH: pathWith(), CI: "true" });
    expect(gate.skip).toBe(false);
    expect(gate.title("scrapes a worker")).toBe("scrapes a worker");
    expect(() => gate.check()).toThrow("Prometheus is not on PATH: install it (`apt-get install prometheus`)");
  });

  it("run when the tool is there", () => {
    const gate = needTools(["prometheus"], { PATH: pathWith("prometheus") });
    expect(gate.skip).toBe(false);
    expect(() => gate.check()).not.toThrow();
  });
});
