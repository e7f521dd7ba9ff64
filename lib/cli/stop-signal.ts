/**
 * The signal that stops a worker (SIGTERM or SIGINT), listened for from the moment `main.ts`
 * knows it runs one — before the worker's modules load — so a signal that comes while it starts
 * (a rollout, a scale-in right after a scale-out) is kept instead of killing it mid-join.
 * Kept free of imports, like worker-heap.ts.
 */
let signalled: Promise<NodeJS.Signals> | undefined;

/** Starts listening (once) and resolves with the first SIGTERM or SIGINT. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return (signalled ??= new Promise((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  }));
}
