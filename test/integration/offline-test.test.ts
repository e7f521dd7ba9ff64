import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

/**
 * `streamfleet test` as a user runs it: the CLI on the example topologies' test files
 * (Redis-backed steps against the real Redis), a test file that expects something else,
 * a Redis that does not answer, and test files that are wrong.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "sf-offline-test-"));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "test", ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, ...env }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A test file in the scratch directory, for a topology of the repository. */
function testFile(name: string, topology: string, body: string): string {
  const file = path.join(TMP, name);
  fs.writeFileSync(file, `topology: ${path.join(ROOT, topology)}\n${body}`);
  return file;
}

const USER = "{ type: user.created, id: u9, email: ada@example.org, role: RESIDENT }";

describe("streamfleet test", () => {
  it("passes every example topology's test file, and writes a JUnit report of all of them", () => {
    const junit = path.join(TMP, "junit.xml");
    const r = cli(["topologies", "--junit", junit]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const files = fs.readdirSync(path.join(ROOT, "topologies"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".yaml") && !f.endsWith(".test.yaml"));
    // every example topology has its test file, and each was run
    for (const f of files) {
      expect(fs.existsSync(path.join(ROOT, "topologies", f.replace(/\.yaml$/, ".test.yaml"))), `${f} has no test file`).toBe(true);
      expect(r.stdout).toContain(`topologies/${f.replace(/\.yaml$/, ".test.yaml")} (topology `);
    }
    const summary = /(\d+) passed, 0 failed, 0 not run, 0 errors/.exec(r.stdout);
    expect(summary, r.stdout).not.toBeNull();
    const xml = fs.readFileSync(junit, "utf8");
    expect(xml).toContain(`<testsuites name="streamfleet test" tests="${summary![1]}" failures="0" errors="0" skipped="0">`);
    expect(xml.match(/<testsuite /g)).toHaveLength(files.length);
  });

  it("exits 1 with a diff naming the path, the line and both sides when a sink renders something else", () => {
    const file = testFile(
      "users-mismatch.test.yaml",
      "topologies/resident/users.yaml",
      `cases:
  - name: the cache expects another email
    input:
      - key: u9
        value: ${USER}
    expect:
      sinks:
        user-cache:
          - set: "user:u9"
            value: { id: u9, email: bob@example.org, role: RESIDENT }
            ttl_seconds: 1800
      dlq:
        - { offset: 0, code: SF_ERR_DECODE_MALFORMED }
`,
    );
    const junit = path.join(TMP, "mismatch.xml");
    const r = cli([file, "--junit", junit]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("FAIL    the cache expects another email");
    expect(r.stdout).toMatch(/sinks\.user-cache\[0\]\.value\.email \(line 11\)\n\s+expected: "bob@example.org"\n\s+actual:\s+"ada@example.org"/);
    expect(r.stdout).toMatch(/dlq\[0\] \(line 14\)\n\s+expected: \{"offset":0,"code":"SF_ERR_DECODE_MALFORMED"\}\n\s+actual:\s+\(nothing\)/);
    expect(r.stdout).toContain("0 passed, 1 failed");
    expect(r.stderr).toContain("[SF_ERR_TEST_FAILED]");
    expect(fs.readFileSync(junit, "utf8")).toMatch(/<failure message="2 difference\(s\) from the expectation" type="SF_ERR_TEST_FAILED">sinks.user-cache\[0\].value.email/);
  });

  it("reports a case whose Redis-backed step finds no Redis as not run, and fails nothing for it", () => {
    const junit = path.join(TMP, "no-redis.xml");
    const r = cli(["topologies/ml/predictions.test.yaml", "topologies/resident/users.test.yaml", "--junit", junit], { REDIS_URL: "redis://127.0.0.1:1" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/not run a request scored for the first time .*: steps\[1\]\.enrich needs redis, which does not answer: Redis at redis:\/\/127\.0\.0\.1:1 is unreachable/);
    expect(r.stdout).toContain("3 passed, 0 failed, 2 not run, 0 errors");
    expect(fs.readFileSync(junit, "utf8")).toContain('<skipped message="not run: steps[1].enrich needs redis');
  });

  it("fails a case whose input value the topology's Avro schema rejects, naming the field", () => {
    const file = testFile(
      "users-bad-input.test.yaml",
      "topologies/resident/users.yaml",
      `cases:
  - name: a user without a role
    input:
      - key: u9
        value: { type: user.created, id: u9, email: ada@example.org }
`,
    );
    const r = cli([file]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/ERROR {3}a user without a role \(.*users-bad-input\.test\.yaml:3\): input\[0\]: the value does not match its Avro schema resident\.UserEvent: role: expected string, got undefined/);
  });

  it("reports every problem of a wrong test file with file, line and path, and runs none of it", () => {
    const file = testFile(
      "users-wrong.test.yaml",
      "topologies/resident/users.yaml",
      `cases:
  - name: names a sink the topology does not have
    input:
      - key: u9
        value: ${USER}
    expect:
      sinks:
        user-store: []
`,
    );
    const bad = path.join(TMP, "users-shape.test.yaml");
    fs.writeFileSync(bad, `topology: ${path.join(ROOT, "topologies/resident/users.yaml")}\ncases:\n  - name: no inputs\n    input: []\n    expect: { filtered: -1 }\n`);
    const r = cli([file, bad]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`${file}:9 cases[0].expect.sinks.user-store: expected a sink of the topology (user-cache), got "user-store"`);
    expect(r.stdout).toMatch(/users-shape\.test\.yaml:4 cases\[0\]\.input: .*>=1/);
    expect(r.stdout).toMatch(/users-shape\.test\.yaml:5 cases\[0\]\.expect\.filtered: .*>=0/);
    expect(r.stdout).toContain("0 passed, 0 failed, 0 not run, 2 errors");
  });
});
