import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stack } from "../support/scope.ts";
import { needTools } from "../support/tools.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "sf-stack-faults-"));
afterAll(() => fs.rmSync(stateDir, { recursive: true, force: true }));

function stackUp(env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "stack", "up"], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: process.env.HOME, STREAMFLEET_STACK_DIR: stateDir, ...stack(), ...env },
    timeout: 60_000,
  });
  return { code: r.status, stderr: r.stderr.trim(), stdout: r.stdout };
}

function runningDaemons(): string[] {
  const run = path.join(stateDir, "run");
  if (!fs.existsSync(run)) return [];
  return fs.readdirSync(run).filter((f) => {
    try {
      process.kill(Number(fs.readFileSync(path.join(run, f), "utf8")), 0);
      return true;
    } catch {
      return false;
    }
  });
}

describe("stack faults give one line that says what to do, exit non-zero, and leave nothing running", () => {
  const java = needTools(["java"]);
  it.skipIf(java.skip)(java.title("a port in use"), async () => {
    const server = net.createServer().listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const r = stackUp({ KAFKA_BROKERS: "", STREAMFLEET_KAFKA_PORT: String(port) });
      expect(r.code).toBe(1);
      expect(r.stderr.split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`port ${port} is in use by another process, so Kafka cannot start: stop it, set STREAMFLEET_KAFKA_PORT.*\\[SF_ERR_STACK_PORT_IN_USE\\]`));
      expect(runningDaemons()).toEqual([]);
    } finally {
      server.close();
    }
  });

  it("Java missing", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "sf-nopath-"));
    const free = net.createServer().listen(0, "127.0.0.1");
    await new Promise((r) => free.once("listening", r));
    const port = (free.address() as net.AddressInfo).port;
    free.close();
    const r = stackUp({ KAFKA_BROKERS: "", STREAMFLEET_KAFKA_PORT: String(port), PATH: empty });
    expect(r.code).toBe(1);
    expect(r.stderr.split("\n")).toHaveLength(1);
    // One line naming both tools a first start needs, with the command that installs them.
    expect(r.stderr).toMatch(/^streamfleet: Java 17\+ and Maven are not on PATH: install them \(`apt-get install openjdk-17-jre-headless maven`\), or set STREAMFLEET_STACK=docker.*\[SF_ERR_STACK_NO_JAVA\]$/);
    expect(runningDaemons()).toEqual([]);
  });

  it("a service that does not answer, with its address and how to point elsewhere", () => {
    const r = stackUp({ DATABASE_URL: "postgres://postgres@127.0.0.1:1/test" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PostgreSQL does not answer on 127\.0\.0\.1:1: .* or set DATABASE_URL \[SF_ERR_STACK_NO_POSTGRES\]/);
    expect(runningDaemons()).toEqual([]);
  });
});
