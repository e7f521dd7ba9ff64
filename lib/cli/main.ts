import { StackError } from "../stack/errors.ts";
import { SfError } from "../errors.ts";
import { boundWorkerHeap } from "./worker-heap.ts";

// kafkajs 2.2 hands Node a negative timeout in its request queue (harmless, known upstream):
// keep that one warning off the terminal, print every other.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name !== "TimeoutNegativeWarning") console.error(`${w.name}: ${w.message}`);
});

type Command = (args: string[], env: NodeJS.ProcessEnv) => Promise<number>;

// Each command is loaded when it runs: a worker loads only what `run` needs, and `stack` works
// before topologies or services exist.
const commands: Record<string, { load: () => Promise<Command>; help: string }> = {
  run: { load: async () => (await import("./run-command.ts")).runCommand, help: "run [files|dirs] [--admin-port N] [--json]   run topologies until SIGTERM" },
  validate: { load: async () => (await import("./validate-command.ts")).validateCommand, help: "validate [files|dirs] [--offline]          check topologies (and subjects in the registry)" },
  graph: { load: async () => (await import("./graph-command.ts")).graphCommand, help: "graph [files|dirs]                         the fleet's DAG as Mermaid" },
  dlq: { load: async () => (await import("./dlq-command.ts")).dlqCommand, help: "dlq replay <topology> [--dir D] [--dry-run] send dead letters back to their source" },
  stack: { load: async () => (await import("./stack-command.ts")).stackCommand, help: "stack up|down|status|env                   start, stop or check the local services" },
};

const late: Record<string, () => Promise<Command>> = {
  start: async () => (await import("./start-command.ts")).startCommand,
};

const USAGE = `usage: streamfleet <command> [args]\n  start                                      the demo: stack, example fleet, feature server, receivers, producer\n${Object.values(commands)
  .map((c) => `  ${c.help}`)
  .join("\n")}`;

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === "help" || name === "--help") {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const load = commands[name]?.load ?? late[name];
  if (!load) {
    console.error(`unknown command "${name}"\n${USAGE}`);
    return 2;
  }
  // A worker's heap is bounded (lib/cli/worker-heap.ts): this process may start again here, in place.
  if (name === "run") boundWorkerHeap();
  const command = await load();
  // Connection variables the user did not set default to the local stack's addresses — except
  // for the commands that manage the stack, which must tell given servers from their own.
  const manageStack = name === "stack" || name === "start";
  if (manageStack) return command(args, process.env);
  const { stackOptionsFromEnv } = await import("../stack/stack.ts");
  return command(args, { ...process.env, ...stackOptionsFromEnv(process.env).addresses });
}

/** A finished command exits even if a client library left a socket open (a probe of a silent port). */
function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2000).unref();
}

main(process.argv.slice(2)).then(finish, (err: unknown) => {
  if (err instanceof StackError || err instanceof SfError) console.error(`streamfleet: ${err.message} [${err.code}]`);
  else console.error(err);
  finish(1);
});
