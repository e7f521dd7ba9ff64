/**
 * `npm start`: the demo (workers/demo.ts) — the stack, the example fleet, the feature
 * server, the receivers and a producer, until Ctrl-C.
 */
export async function startCommand(_args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { runDemo } = await import("../../workers/demo.ts");
  return runDemo(env);
}
