import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { SfError } from "../../errors.ts";
import type { ComponentContext, ComponentSpec, RecordFailure, Step, StreamRecord } from "../contracts.ts";

/**
 * What a transform module exports: record in, zero, one or many values (or records) out.
 * The record is read-only (its headers object may be shared and frozen): return `output({value,
 * key, headers})` to change the key or headers.
 */
export type TransformFn = (
  value: unknown,
  record: StreamRecord,
  ctx: Pick<ComponentContext, "logger" | "topology" | "now">,
) => unknown | Promise<unknown>;

/** A transform may return a full output (value plus key/headers) instead of a bare value. */
export interface TransformOutput {
  value: unknown;
  key?: unknown;
  headers?: Record<string, string>;
}

const schema = z
  .object({
    module: z.string().min(1).describe("Path of a TS/JS module, relative to the topology file"),
    export: z.string().default("default").describe("The exported function's name"),
  })
  .strict();
type Config = z.infer<typeof schema>;

const OUTPUT = Symbol.for("streamfleet.output");
/** Marks a transform result as a record (value + key/headers) rather than a bare value. */
export function output(o: TransformOutput): TransformOutput {
  return Object.assign(o, { [OUTPUT]: true });
}

async function importFn(config: Config, baseDir: string): Promise<TransformFn> {
  const file = path.resolve(baseDir, config.module);
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const fn = mod[config.export];
  if (typeof fn !== "function") throw new SfError("SF_ERR_TOPOLOGY_LOAD", `${file} does not export a function named "${config.export}"`);
  return fn as TransformFn;
}

/** `transform`: calls a user function per record; a throw is retried by the policy, then DLQ'd. */
export const transformStep: ComponentSpec<Config, Step> = {
  schema,
  description: "Call a TypeScript function per record: value in; undefined/null drops it, an array fans out, a value replaces it.",
  async verify(config, ctx) {
    const file = path.resolve(ctx.baseDir, config.module);
    if (!fs.existsSync(file)) return [{ path: ["module"], message: `expected a module file, ${file} does not exist` }];
    try {
      await importFn(config, ctx.baseDir);
      return [];
    } catch (err) {
      return [{ path: ["export"], message: (err as Error).message }];
    }
  },
  async create(config, ctx) {
    const fn = await importFn(config, ctx.baseDir);
    const fnCtx = { logger: ctx.logger, topology: ctx.topology, now: ctx.now };
    return {
      name: ctx.component,
      async process(records) {
        const out: StreamRecord[] = [];
        const failed: RecordFailure[] = [];
        let filtered = 0;
        for (const r of records) {
          let result: unknown;
          try {
            result = fn(r.value, r, fnCtx);
            // Await only what is a promise: a microtask per record costs a sync transform dearly.
            if (result instanceof Promise) result = await result;
          } catch (err) {
            failed.push({ record: r, error: err instanceof SfError ? err : new SfError("SF_ERR_STEP_FAILED", `transform ${config.export} threw: ${(err as Error)?.message ?? String(err)}`, { cause: err }) });
            continue;
          }
          if (result === undefined || result === null) filtered++;
          else if (Array.isArray(result)) result.forEach((v, i) => out.push(derive(r, v, `#${i}`)));
          else out.push(derive(r, result, ""));
        }
        return { records: out, failed, filtered };
      },
    };
  },
};

function derive(r: StreamRecord, result: unknown, suffix: string): StreamRecord {
  if (result && typeof result === "object" && (result as Record<symbol, unknown>)[OUTPUT]) {
    const o = result as TransformOutput;
    return record(r, o.key ?? r.key, o.value, o.headers ? { ...r.headers, ...o.headers } : r.headers, suffix);
  }
  return record(r, r.key, result, r.headers, suffix);
}

/** Every derived record is built in the same shape (a spread per record is slower and polymorphic). */
function record(r: StreamRecord, key: unknown, value: unknown, headers: Record<string, string>, suffix: string): StreamRecord {
  return { key, value, headers, origin: r.origin, id: suffix ? r.id + suffix : r.id, targets: r.targets };
}
