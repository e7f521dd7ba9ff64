import fs from "node:fs";
import path from "node:path";
import type { ChainableCommander } from "ioredis";
import type { RedisClient } from "./cluster.ts";

/** The Lua scripts of this connector: one file per operation under scripts/, each with a KEYS/ARGV/returns header. */
/** `keys: null`: a variable number of keys, passed first as numkeys. */
const SCRIPTS: Record<string, { file: string; keys: number | null }> & {
  featuresApply: { file: string; keys: null };
  dedupe: { file: string; keys: 1 };
  rateLimit: { file: string; keys: 1 };
  publishBatch: { file: string; keys: 0 };
} = {
  featuresApply: { file: "features-apply.lua", keys: null },
  dedupe: { file: "dedupe.lua", keys: 1 },
  rateLimit: { file: "rate-limit.lua", keys: 1 },
  publishBatch: { file: "publish-batch.lua", keys: 0 },
};

export type ScriptName = "featuresApply" | "dedupe" | "rateLimit" | "publishBatch";

/** Key and argument arity per script, checked at compile time by `callScript`. */
export interface ScriptArgs {
  featuresApply: { keys: string[]; args: Array<string | number> };
  dedupe: { keys: [key: string]; args: [recordId: string, windowMs: number] };
  rateLimit: { keys: [key: string]; args: [recordId: string, limit: number, ttlMs: number] };
  publishBatch: { keys: []; args: string[] };
}

const sources = new Map<ScriptName, string>();
function source(name: ScriptName): string {
  let s = sources.get(name);
  if (!s) {
    s = fs.readFileSync(path.join(import.meta.dirname, "scripts", SCRIPTS[name].file), "utf8");
    sources.set(name, s);
  }
  return s;
}

const DEFINED = Symbol("sfScriptsDefined");

/**
 * Defines every script on a client once (ioredis then sends EVALSHA, and loads the script
 * with SCRIPT LOAD ahead of a pipeline that needs it, so NOSCRIPT never reaches a batch).
 */
export function defineScripts(client: RedisClient): void {
  const c = client as RedisClient & { [DEFINED]?: true };
  if (c[DEFINED]) return;
  for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
    const keys = SCRIPTS[name].keys;
    client.defineCommand(`sf_${name}`, keys === null ? { lua: source(name) } : { numberOfKeys: keys, lua: source(name) });
  }
  c[DEFINED] = true;
}

/** The one typed way to call a script, on a client or inside a pipeline. */
export function callScript<N extends ScriptName>(target: RedisClient | ChainableCommander, name: N, keys: ScriptArgs[N]["keys"], args: ScriptArgs[N]["args"]): unknown {
  const fn = (target as unknown as Record<string, (...a: Array<string | number>) => unknown>)[`sf_${name}`];
  if (!fn) throw new Error(`script ${name} is not defined on this client; call defineScripts first`);
  return SCRIPTS[name].keys === null ? fn.call(target, keys.length, ...keys, ...args) : fn.call(target, ...keys, ...args);
}

/** The header comment of a script (its contract), for docs and tests. */
export function scriptHeader(name: ScriptName): string {
  return /--\[\[([\s\S]*?)\]\]/.exec(source(name))?.[1]?.trim() ?? "";
}
