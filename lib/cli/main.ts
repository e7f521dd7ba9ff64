import { StackError } from "../stack/errors.ts";
import { stackOptionsFromEnv } from "../stack/stack.ts";
import { SfError } from "../errors.ts";
import { dlqCommand } from "./dlq-command.ts";
import { graphCommand } from "./graph-command.ts";
import { runCommand } from "./run-command.ts";
import { stackCommand } from "./stack-command.ts";
import { validateCommand } from "./validate-command.ts";

// kafkajs 2.2 hands Node a negative timeout in its request queue (harmless, known upstream):
// keep that one warning off the terminal, print every other.
process.removeAllListeners("warning");
process.on("warning", (w) => {
  if (w.name !== "TimeoutNegativeWarning") console.error(`${w.name}: ${w.message}`);
});

type Command = (args: string[], env: NodeJS.ProcessEnv) => Promise<number>;

const commands: Record<string, { run: Command; help: string }> = {
  run: { run: runCommand, help: "run [files|dirs] [--admin-port N] [--json]   run topologies until SIGTERM" },
  validate: { run: validateCommand, help: "validate [files|dirs] [--offline]          check topologies (and subjects in the registry)" },
  graph: { run: (a) => graphCommand(a), help: "graph [files|dirs]                         the fleet's DAG as Mermaid" },
  dlq: { run: dlqCommand, help: "dlq replay <topology> [--dir D] [--dry-run] send dead letters back to their source" },
  stack: { run: stackCommand, help: "stack up|down|status|env                   start, stop or check the local services" },
};

/** Loaded lazily so that `stack` works before topologies or services exist. */
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
  const command = commands[name]?.run ?? (await late[name]?.());
  if (!command) {
    console.error(`unknown command "${name}"\n${USAGE}`);
    return 2;
  }
  // Connection variables the user did not set default to the local stack's addresses — except
  // for the commands that manage the stack, which must tell given servers from their own.
  const manageStack = name === "stack" || name === "start";
  return command(args, manageStack ? process.env : { ...process.env, ...stackOptionsFromEnv(process.env).addresses });
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
