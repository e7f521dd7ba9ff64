import { StackError } from "../stack/errors.ts";
import { SfError } from "../errors.ts";
import { commandHelp, isCommand, parseCommand, topLevelHelp } from "./args.ts";
import type { CommandName } from "./args.ts";
import { stopSignal } from "./stop-signal.ts";
import { boundWorkerHeap, setWorkerV8Flags } from "./worker-heap.ts";

// kafkajs 2.2 hands Node a negative timeout in its request queue (harmless, known upstream):
// keep that one warning off the terminal, print every other.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name !== "TimeoutNegativeWarning") console.error(`${w.name}: ${w.message}`);
});

type Command = (args: string[], env: NodeJS.ProcessEnv) => Promise<number>;

// Each command is loaded when it runs: a worker loads only what `run` needs, and `stack` works
// before topologies or services exist. Their arguments and help are declared in args.ts.
const commands: Record<CommandName, () => Promise<Command>> = {
  run: async () => (await import("./run-command.ts")).runCommand,
  validate: async () => (await import("./validate-command.ts")).validateCommand,
  graph: async () => (await import("./graph-command.ts")).graphCommand,
  k8s: async () => (await import("./k8s-command.ts")).k8sCommand,
  test: async () => (await import("./test-command.ts")).testCommand,
  init: async () => (await import("./init-command.ts")).initCommand,
  dlq: async () => (await import("./dlq-command.ts")).dlqCommand,
  features: async () => (await import("./features-command.ts")).featuresCommand,
  stack: async () => (await import("./stack-command.ts")).stackCommand,
  start: async () => (await import("./start-command.ts")).startCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    const about = name === "help" && args[0] && isCommand(args[0]) ? commandHelp(args[0]) : topLevelHelp();
    (name ? console.log : console.error)(about);
    return name ? 0 : 2;
  }
  if (!isCommand(name)) throw new SfError("SF_ERR_CLI_USAGE", `unknown command "${name}" (see \`streamfleet --help\`)`);
  // Checked before anything loads: a bad flag or number stops here, with one line.
  if (parseCommand(name, args).help) {
    console.log(commandHelp(name));
    return 0;
  }
  const load = commands[name];
  // A worker's heap is bounded (lib/cli/worker-heap.ts): this process may start again here, in place.
  if (name === "run") {
    boundWorkerHeap();
    setWorkerV8Flags();
    void stopSignal();
  }
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
  finish(err instanceof SfError && err.code === "SF_ERR_CLI_USAGE" ? 2 : 1);
});
