import { redact, stackDown, stackOptionsFromEnv, stackStatus, stackUp } from "../stack/stack.ts";
import type { ServiceStatus } from "../stack/stack.ts";
import { parseCommand } from "./args.ts";
import { secureEnv, secureOptionsFromEnv, secureStackDown, secureStackStatus, secureStackUp } from "../stack/secure/stack.ts";

function printStatus(status: ServiceStatus[]): void {
  for (const s of status) {
    console.log(`${s.name.padEnd(9)} ${(s.up ? "up" : "DOWN").padEnd(5)} ${s.address.padEnd(48)} ${s.note}`);
  }
}

/** `streamfleet stack up|down|status|env`. */
export async function stackCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const o = stackOptionsFromEnv(env);
  const parsed = parseCommand("stack", args);
  const verb = parsed.positionals[0] ?? "status";
  if (parsed.values.secure) return secureCommand(verb, env);
  const brokers = parsed.values["kafka-brokers"];
  if (typeof brokers === "number") return (await import("../stack/kafka-cluster.ts")).clusterCommand(verb, env, brokers);
  if (parsed.values["redis-cluster"]) return (await import("../stack/redis-cluster.ts")).redisClusterCommand(verb, env);
  switch (verb) {
    case "up": {
      const status = await stackUp(o, (line) => console.log(line));
      printStatus(status);
      console.log(`state in ${o.stateDir}; stop with: npm run stack -- down`);
      return 0;
    }
    case "down": {
      const stopped = await stackDown(o);
      console.log(stopped.length ? `stopped: ${stopped.join(", ")}` : "nothing of ours was running");
      return 0;
    }
    case "status": {
      const status = await stackStatus(o);
      printStatus(status);
      return status.every((s) => s.up) ? 0 : 1;
    }
    case "env": {
      for (const [k, v] of Object.entries(o.addresses)) console.log(`${k}=${k === "KAFKA_BROKERS" ? v : redact(v)}`);
      return 0;
    }
    default:
      throw new Error(`unreachable: stack ${verb}`); // parseCommand admits only the verbs above
  }
}

/** `stack up|down|status|env --secure`: the secured stack (lib/stack/secure). `env` prints paths of secret files, never a secret. */
async function secureCommand(verb: string, env: NodeJS.ProcessEnv): Promise<number> {
  const o = secureOptionsFromEnv(env);
  switch (verb) {
    case "up":
      printStatus(await secureStackUp(o, (line) => console.log(line)));
      console.log(`state in ${o.stateDir}; variables: npm run stack -- env --secure; stop with: npm run stack -- down --secure`);
      return 0;
    case "down": {
      const stopped = await secureStackDown(o);
      console.log(stopped.length ? `stopped: ${stopped.join(", ")}` : "nothing of the secured stack was running");
      return 0;
    }
    case "env":
      for (const [k, v] of Object.entries(secureEnv(o))) console.log(`${k}=${v}`);
      return 0;
    default: {
      const status = await secureStackStatus(o);
      printStatus(status);
      return status.every((s) => s.up) ? 0 : 1;
    }
  }
}
