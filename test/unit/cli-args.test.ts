import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { COMMANDS, commandHelp, parseCommand, topLevelHelp } from "../../lib/cli/args.ts";
import type { CommandName } from "../../lib/cli/args.ts";
import { SfError } from "../../lib/errors.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** The one-line message of the usage error `parseCommand` throws. */
function rejection(name: CommandName, args: string[]): string {
  try {
    parseCommand(name, args);
  } catch (err) {
    expect(err).toBeInstanceOf(SfError);
    expect((err as SfError).code).toBe("SF_ERR_CLI_USAGE");
    return (err as SfError).message;
  }
  throw new Error(`streamfleet ${name} ${args.join(" ")} was accepted`);
}

describe("parsing each command's arguments", () => {
  it("keeps every existing form working", () => {
    expect(parseCommand("run", ["topologies/resident", "--json", "--admin-port", "0"])).toEqual({ help: false, values: { json: true, "admin-port": 0 }, positionals: ["topologies/resident"] });
    expect(parseCommand("run", ["--admin-port=9500", "a", "b"]).values["admin-port"]).toBe(9500);
    expect(parseCommand("run", []).positionals).toEqual([]);
    expect(parseCommand("validate", ["--offline", "x.yaml", "dir"])).toMatchObject({ values: { offline: true }, positionals: ["x.yaml", "dir"] });
    expect(parseCommand("graph", ["topologies"]).positionals).toEqual(["topologies"]);
    expect(parseCommand("dlq", ["replay", "orders", "--dir", "t", "--dry-run"])).toMatchObject({ values: { dir: "t", "dry-run": true }, positionals: ["replay", "orders"] });
    for (const verb of ["up", "down", "status", "env"]) expect(parseCommand("stack", [verb]).positionals).toEqual([verb]);
    expect(parseCommand("stack", []).positionals).toEqual([]);
    expect(parseCommand("start", []).help).toBe(false);
  });

  it("answers --help and -h for every command, before checking anything else", () => {
    for (const name of Object.keys(COMMANDS) as CommandName[]) {
      expect(parseCommand(name, ["--help"]).help).toBe(true);
      expect(parseCommand(name, ["-h"]).help).toBe(true);
    }
    expect(parseCommand("dlq", ["--help"]).help).toBe(true); // no topology needed to ask
  });

  it("rejects unknown flags, bad numbers, missing values, unknown verbs and extra arguments with one line", () => {
    const cases: [CommandName, string[], string][] = [
      ["run", ["--admin-port", "abc"], '--admin-port must be an integer from 0 to 65535, got "abc"'],
      ["run", ["--admin-port", "70000"], '--admin-port must be an integer from 0 to 65535, got "70000"'],
      ["run", ["--admin-port=-1"], '--admin-port must be an integer from 0 to 65535, got "-1"'],
      ["run", ["--admin-port", "-1"], "Option '--admin-port' argument is ambiguous"],
      ["run", ["--admin-port", "9.5"], '--admin-port must be an integer from 0 to 65535, got "9.5"'],
      ["run", ["--admin-port"], "--admin-port needs a value"],
      ["run", ["--jsn"], "unknown option --jsn"],
      ["run", ["--json=yes"], "'--json' does not take an argument"],
      ["validate", ["--admin-port", "1"], "unknown option --admin-port"],
      ["dlq", ["replay"], "missing argument: streamfleet dlq replay <topology>"],
      ["dlq", ["purge", "orders"], 'unknown dlq command "purge": use replay'],
      ["dlq", ["replay", "a", "b"], 'unexpected argument "b"'],
      ["stack", ["sideways"], 'unknown stack command "sideways": use up, down, status, env'],
      ["start", ["now"], 'unexpected argument "now"'],
    ];
    for (const [name, args, message] of cases) {
      const m = rejection(name, args);
      expect(m, `${name} ${args.join(" ")}`).toContain(message);
      expect(m).toContain(`(see \`streamfleet ${name} --help\`)`);
      expect(m.split("\n")).toHaveLength(1);
    }
  });

  it("prints help from the same declarations: every flag of the command, every command at the top", () => {
    expect(commandHelp("run")).toMatch(/^usage: streamfleet run \[files\|dirs\] \[options\]/);
    expect(commandHelp("run")).toMatch(/--admin-port N +port of/);
    expect(commandHelp("dlq")).toContain("--dry-run");
    expect(commandHelp("dlq")).toContain("--dir DIR");
    const top = topLevelHelp();
    for (const name of Object.keys(COMMANDS)) expect(top).toMatch(new RegExp(`^  ${name}\\b`, "m"));
  });
});

describe("the real CLI", () => {
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), ...args], { encoding: "utf8", timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
  };

  it("exits 2 with one line for each kind of bad command line", () => {
    const cases: [string[], RegExp][] = [
      [["run", "--admin-port", "abc", "topologies"], /^streamfleet: --admin-port must be an integer from 0 to 65535, got "abc" \(see `streamfleet run --help`\) \[SF_ERR_CLI_USAGE\]$/],
      [["validate", "--ofline"], /^streamfleet: unknown option --ofline \(see `streamfleet validate --help`\) \[SF_ERR_CLI_USAGE\]$/],
      [["run", "--admin-port"], /^streamfleet: --admin-port needs a value/],
      [["dlq", "replay"], /^streamfleet: missing argument: streamfleet dlq replay <topology>/],
      [["stack", "sideways"], /^streamfleet: unknown stack command "sideways"/],
      [["frobnicate"], /^streamfleet: unknown command "frobnicate" \(see `streamfleet --help`\) \[SF_ERR_CLI_USAGE\]$/],
    ];
    for (const [args, message] of cases) {
      const r = cli(...args);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.stderr.split("\n")).toHaveLength(1);
      expect(r.stdout).toBe("");
      expect(r.code).toBe(2);
    }
  });

  it("prints a command's help and the top-level help, exit 0", () => {
    const run = cli("run", "--help");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("--admin-port N");
    const top = cli("--help");
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("dlq replay <topology>");
    expect(cli("help", "stack").stdout).toContain("usage: streamfleet stack up|down|status|env");
    const none = cli();
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("usage: streamfleet <command>");
  });
});
