import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { which } from "../../lib/stack/daemon.ts";
import { writeTopologies } from "../support/fleet.ts";
import { describeStack, TestScope } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const scope = new TestScope("terminal");
afterAll(() => scope.cleanup());

const hasScript = which("script") !== undefined;

describeStack("streamfleet run on a terminal", () => {
  it.skipIf(!hasScript)(`shows live per-topology throughput, lag and DLQ count, and stops on Ctrl-C${hasScript ? "" : " (skipped: no `script` command from util-linux to give it a terminal)"}`, async () => {
    const input = scope.topic("in");
    await scope.createTopics([input], 1);
    const name = `${scope.id}-live`;
    const dir = writeTopologies([{ name, source: { topics: [input] }, codec: { value: { type: "json" } }, sinks: [{ type: "null" }], errors: { dlq: { topic: scope.topic("dlq") } } }]);
    const producer = scope.producer();
    await producer.connect();
    await producer.send({ topic: input, messages: Array.from({ length: 500 }, (_, i) => ({ value: JSON.stringify({ i }) })) });
    await producer.disconnect();
    // `script` gives the worker a pseudo-terminal, as a person's shell would. It runs the
    // command through $SHELL; `exec` makes the worker the terminal's foreground process
    // whatever that shell is (dash would otherwise stay as parent and die of the Ctrl-C itself).
    const command = `exec ${process.execPath} ${path.join(ROOT, "lib/cli/main.ts")} run ${dir} --admin-port 0`;
    const child = spawn("script", ["-qfec", command, "/dev/null"], { cwd: ROOT, env: { ...process.env, COLUMNS: "120", LINES: "40" }, stdio: ["pipe", "pipe", "pipe"] });
    let screen = "";
    child.stdout.on("data", (d: Buffer) => (screen += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await waitUntil(() => new RegExp(`${name}\\s+[\\d.]+\\s+500\\s+0\\s+0`).test(screen), 60_000, `the live table to show 500 records for ${name}; screen:\n${screen.slice(-800)}`);
      expect(screen).toMatch(/topology\s+rec\/s\s+total\s+lag\s+dlq/);
      expect(screen).toMatch(/metrics http:\/\/127\.0\.0\.1:\d+\/metrics/);
    } finally {
      child.stdin.write("\x03"); // Ctrl-C through the terminal
    }
    expect(await exited).toBe(0);
  });
});
