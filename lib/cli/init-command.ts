import { parseCommand } from "./args.ts";

/** `streamfleet init [dir]`: scaffolds a project (lib/cli/scaffold/). */
export async function initCommand(args: string[]): Promise<number> {
  parseCommand("init", args);
  return 1;
}
