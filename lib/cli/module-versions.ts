import crypto from "node:crypto";
import fs from "node:fs";
import { registerHooks } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Module identity by content, for `streamfleet run --watch`. Node's ES module loader caches a
 * module by its URL for the life of the process, so `import()` of a changed transform module
 * would return the old one. Once enabled, every user module (a `file:` URL outside
 * node_modules and outside streamfleet's own code) is imported as `<url>?sfv=<hash of its
 * content>`: a changed file is a new URL and is evaluated again, an unchanged one stays the
 * module already loaded. The hash is read when the module is resolved, unless pinned.
 *
 * Memory: the loader never frees a module, so every distinct content of a module that was
 * imported stays in memory (its code and top-level state) until the process exits; reverting
 * a file to an earlier content reuses that earlier module.
 */

/** Module file -> content tag, as resolved (or pinned) while a topology version was loaded. */
export type ModuleTags = Map<string, string>;

const OWN_CODE = path.resolve(import.meta.dirname, "..") + path.sep;
let enabled = false;
let pins: ReadonlyMap<string, string> = new Map();
let recording: ModuleTags | undefined;

/** Installs the resolve hook (once per process). */
export function enableModuleVersions(): void {
  if (enabled) return;
  enabled = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (!resolved.url.startsWith("file:") || resolved.url.includes("?")) return resolved;
      const file = fileURLToPath(resolved.url);
      if (file.startsWith(OWN_CODE) || file.includes(`${path.sep}node_modules${path.sep}`)) return resolved;
      const tag = pins.get(file) ?? contentTag(file);
      if (tag === undefined) return resolved; // missing: let the loader report it as usual
      recording?.set(file, tag);
      return { ...resolved, url: `${resolved.url}?sfv=${tag}` };
    },
  });
}

function contentTag(file: string): string | undefined {
  try {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 16);
  } catch {
    return undefined;
  }
}

/**
 * Runs `load` (a topology being loaded or started) with `pinned` modules resolving to the
 * tags given (so a restart gets the exact modules a version was validated with, not what is on
 * disk now) and returns the tag of every user module it resolved. Loads run one at a time.
 */
export async function withModuleTags<T>(pinned: ReadonlyMap<string, string>, load: () => Promise<T>): Promise<{ result: T; tags: ModuleTags }> {
  const tags: ModuleTags = new Map(pinned);
  pins = pinned;
  recording = tags;
  try {
    return { result: await load(), tags };
  } finally {
    pins = new Map();
    recording = undefined;
  }
}
