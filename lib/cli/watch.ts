import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import { parse as parseYaml } from "yaml";
import { errorMessage, SfError } from "../errors.ts";
import type { Fleet } from "../runtime/fleet.ts";
import type { LoadedTopology, TopologyIssue } from "../topology/loader.ts";
import { findTopologyFiles, groupOf, loadTopologyFile, sortIssues, TopologyValidationError } from "../topology/loader.ts";
import type { ModuleTags } from "./module-versions.ts";
import { withModuleTags } from "./module-versions.ts";
import { checkSubjects } from "./validate-command.ts";

/**
 * `streamfleet run --watch`: hot reload. Each topology file is watched with the files it names
 * (transform modules, .avsc schemas). When what they hold changes, the new version is checked
 * as `streamfleet validate` checks it — registry included — and, only if it passes, the running
 * version is drained (its offsets committed, its group left) and the new one started; it reads
 * on from the committed offsets. A change that fails keeps the running version and logs why.
 * Other topologies are not touched. Changes are handled one at a time.
 */

/** A topology file and the files it names: path -> content hash, "missing" when absent. */
type Snapshot = Map<string, string>;

interface Version {
  loaded: LoadedTopology;
  snapshot: Snapshot;
  key: string;
  /** The module contents it was started with (see module-versions.ts), for a restart. */
  modules: ModuleTags;
  /** Stopped for a swap whose new version and restart both failed. */
  down?: boolean;
}

const TOPOLOGY_FILE = /\.(ya?ml|topology\.ts)$/;
const NAMED_FILE = /\.(avsc|json|[cm]?[jt]s)$/;

export interface WatchOptions {
  inputs: string[];
  logger: Logger;
  /** How long a file must stay quiet before it is read (editors write in several steps). */
  debounceMs?: number;
}

export class TopologyWatcher {
  private readonly inputs: string[];
  private readonly logger: Logger;
  private readonly debounceMs: number;
  private readonly versions = new Map<string, Version>();
  /** The last refused snapshot of a file: it is not tried again until it changes. */
  private readonly refused = new Map<string, string>();
  private readonly taken = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, fs.FSWatcher>();
  private fleet: Fleet | undefined;
  private deadlineMs = 30_000;
  private timer: NodeJS.Timeout | undefined;
  /** When the first event of the current quiet-period wait came (0: none waiting). */
  private waitingSince = 0;
  private pending = false;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  /** Takes the files' contents and starts watching before the fleet loads them, so no change is missed. */
  constructor(options: WatchOptions) {
    this.inputs = options.inputs;
    this.logger = options.logger.child({ component: "watch" });
    this.debounceMs = options.debounceMs ?? 300;
    for (const file of this.topologyFiles()) this.taken.set(file, snapshot(file));
    this.watchDirs();
  }

  /** The fleet started: its topologies are the running versions; changes are handled from now on. */
  attach(fleet: Fleet, modules: ModuleTags, deadlineMs: number): void {
    this.fleet = fleet;
    this.deadlineMs = deadlineMs;
    for (const loaded of fleet.loaded()) {
      const snap = loaded.file.endsWith(".ts") ? snapshot(loaded.file, loaded.topology) : (this.taken.get(loaded.file) ?? snapshot(loaded.file));
      this.versions.set(loaded.file, { loaded, snapshot: snap, key: keyOf(snap), modules });
    }
    this.taken.clear();
    this.watchDirs();
    if (this.pending) this.schedule();
  }

  /** Stops watching and waits for a reload under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
    await this.queue;
  }

  private topologyFiles(): string[] {
    try {
      return findTopologyFiles(this.inputs);
    } catch {
      return []; // an input directory removed: its topologies keep running
    }
  }

  /**
   * Scans once the files have been quiet for `debounceMs`; a file written without pause (a
   * generator, a sync tool) postpones it at most ten times that.
   */
  private schedule(): void {
    if (this.closed) return;
    if (!this.fleet) {
      this.pending = true;
      return;
    }
    const now = performance.now();
    if (this.waitingSince === 0) this.waitingSince = now;
    else if (now - this.waitingSince > 10 * this.debounceMs) return; // the pending timer fires
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.waitingSince = 0;
      this.queue = this.queue.then(() => this.scan()).catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, "hot reload failed unexpectedly"));
    }, this.debounceMs);
  }

  /**
   * Watches every directory under the inputs and the directory of every named file, each on
   * its own: a directory watch sees a file replaced by a rename (how many editors save), which
   * Linux's recursive watch (one watch per file) misses. Called again after each scan, for new
   * directories; a watch whose directory is gone is dropped.
   */
  private watchDirs(): void {
    if (this.closed) return;
    const dirs = new Set<string>();
    for (const input of this.inputs) {
      const full = path.resolve(input);
      if (fs.statSync(full, { throwIfNoEntry: false })?.isDirectory()) subdirectories(full, dirs);
      else dirs.add(path.dirname(full));
    }
    for (const snap of [...[...this.versions.values()].map((v) => v.snapshot), ...this.taken.values()]) for (const f of snap.keys()) dirs.add(path.dirname(f));
    for (const [dir, watcher] of this.watchers) {
      if (fs.existsSync(dir)) continue;
      watcher.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir) || !fs.existsSync(dir)) continue;
      try {
        const watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
          const file = name === null ? undefined : path.join(dir, name);
          if (this.relevant(file)) this.schedule();
          else if (file && !this.watchers.has(file) && fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) this.watchDirs();
        });
        watcher.on("error", () => {
          watcher.close(); // the directory went away; a later scan watches it again if it is back
          this.watchers.delete(dir);
        });
        this.watchers.set(dir, watcher);
      } catch (err) {
        this.logger.warn({ dir, err: errorMessage(err) }, "cannot watch a directory; changes in it are not seen");
      }
    }
  }

  /** A file that may be a topology or one it names (other writes, such as logs, are ignored). */
  private relevant(file: string | undefined): boolean {
    return file === undefined || TOPOLOGY_FILE.test(file) || NAMED_FILE.test(file);
  }

  /** Compares every topology file (known or new) with what runs, and reloads those that changed. */
  private async scan(): Promise<void> {
    const files = new Set([...this.versions.keys(), ...this.topologyFiles()]);
    for (const file of files) {
      if (this.closed) return;
      const running = this.versions.get(file);
      const snap = snapshot(file, running?.loaded.topology);
      const key = keyOf(snap);
      if ((key === running?.key && !running.down) || key === this.refused.get(file)) continue;
      await this.reload(file, snap, key, running);
    }
    this.watchDirs();
  }

  private async reload(file: string, snap: Snapshot, key: string, running: Version | undefined): Promise<void> {
    const fleet = this.fleet!;
    const started = performance.now();
    const label = running?.loaded.topology.name ?? path.basename(file).replace(TOPOLOGY_FILE, "");
    let candidate: LoadedTopology;
    let validated: ModuleTags;
    try {
      ({ result: candidate, tags: validated } = await this.validate(file, running));
    } catch (err) {
      return this.refuse(file, key, label, err);
    }
    const name = candidate.topology.name;
    if (running && fleet.runners.some((r) => r.name === running.loaded.topology.name)) {
      await fleet.stopTopology(running.loaded.topology.name, this.deadlineMs).catch((err: unknown) => this.logger.warn({ topology: label, err: errorMessage(err) }, "stopping the running version failed"));
    }
    let modules: ModuleTags;
    try {
      // the modules exactly as validated, whatever the disk holds by now
      ({ tags: modules } = await withModuleTags(validated, () => fleet.startTopology(candidate, { replaces: running?.loaded.topology.name, deadlineMs: this.deadlineMs })));
    } catch (err) {
      this.refuse(file, key, name, err);
      if (running) await this.restart(running);
      return;
    }
    this.versions.set(file, { loaded: candidate, snapshot: snap, key, modules });
    this.refused.delete(file);
    fleet.metrics.reloads.inc({ topology: name, outcome: "ok" });
    const changed = [...snap].filter(([f, hash]) => running?.snapshot.get(f) !== hash).map(([f]) => f);
    this.logger.info({ topology: name, file, outcome: "ok", changed, ms: Math.round(performance.now() - started) }, running ? "topology reloaded" : "topology added");
  }

  /**
   * Every check `streamfleet validate` makes, on one file: the file (schema, modules, sink
   * names, templates, .avsc files), its name and group against the other topologies, and its
   * Avro subjects against the registry. Returns the loaded topology and the modules it imported.
   */
  private async validate(file: string, running: Version | undefined): Promise<{ result: LoadedTopology; tags: ModuleTags }> {
    if (!fs.existsSync(file)) {
      throw new SfError("SF_ERR_TOPOLOGY_LOAD", `${file} was deleted or renamed; the running version is kept (restart the worker without it to remove a topology)`);
    }
    const fleet = this.fleet!;
    const out = await withModuleTags(new Map(), () => loadTopologyFile(file, fleet.catalogue));
    const l = out.result;
    const issues: TopologyIssue[] = [];
    for (const other of this.versions.values()) {
      if (other === running) continue;
      const o = other.loaded;
      if (o.topology.name === l.topology.name) issues.push({ file, line: l.lineOf?.(["name"]), path: "name", message: `topology name "${l.topology.name}" is also used by ${o.file}` });
      if (groupOf(o.topology) === groupOf(l.topology)) issues.push({ file, line: l.lineOf?.(["source", "group"]), path: "source.group", message: `consumer group "${groupOf(l.topology)}" is also used by ${o.file}` });
    }
    const { problems, warnings } = await checkSubjects([l], fleet.codecs);
    for (const w of warnings) this.logger.warn({ topology: l.topology.name, file, path: w.path }, w.message);
    issues.push(...problems);
    if (issues.length) throw new TopologyValidationError(sortIssues(issues));
    return out;
  }

  private refuse(file: string, key: string, topology: string, err: unknown): void {
    this.refused.set(file, key);
    this.fleet!.metrics.reloads.inc({ topology, outcome: "failed" });
    const reason = errorMessage(err);
    this.logger.warn({ code: "SF_ERR_TOPOLOGY_RELOAD", cause: err instanceof SfError ? err.code : undefined, topology, file, outcome: "failed", reason }, `topology reload refused, the running version is kept: ${reason}`);
  }

  /** The new version did not start: the one that ran before starts again, with its own modules. */
  private async restart(running: Version): Promise<void> {
    const name = running.loaded.topology.name;
    try {
      ({ tags: running.modules } = await withModuleTags(running.modules, () => this.fleet!.startTopology(running.loaded, { deadlineMs: this.deadlineMs })));
      running.down = false;
      this.logger.info({ topology: name }, "the running version started again");
    } catch (err) {
      running.down = true;
      this.logger.error({ code: "SF_ERR_TOPOLOGY_RELOAD", cause: err instanceof SfError ? err.code : undefined, topology: name, reason: errorMessage(err) }, "the running version did not start again either; the topology is stopped (/readyz answers 503) until a change of its files starts it");
    }
  }
}

/**
 * What a topology file and every file it names hold. The named files are the strings of the
 * topology (YAML as written, or a .topology.ts file's loaded model) that end like a module or
 * schema file, resolved from the topology's directory; one that is missing counts too, so
 * creating it is a change.
 */
function snapshot(file: string, loaded?: unknown): Snapshot {
  const snap: Snapshot = new Map([[file, hashOf(file)]]);
  let model = loaded;
  if (!file.endsWith(".ts")) {
    try {
      model = parseYaml(fs.readFileSync(file, "utf8"));
    } catch {
      model = undefined; // unreadable or not YAML: the load says why
    }
  }
  for (const named of namedFiles(model, path.dirname(file))) if (!snap.has(named)) snap.set(named, hashOf(named));
  return snap;
}

/** A directory and every directory under it. */
function subdirectories(dir: string, out: Set<string>): void {
  out.add(dir);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return; // removed meanwhile
  }
  for (const e of entries) if (e.isDirectory()) subdirectories(path.join(dir, e.name), out);
}

function namedFiles(node: unknown, baseDir: string, out: string[] = []): string[] {
  if (typeof node === "string" && NAMED_FILE.test(node)) out.push(path.resolve(baseDir, node));
  else if (Array.isArray(node)) for (const n of node) namedFiles(n, baseDir, out);
  else if (node !== null && typeof node === "object") for (const n of Object.values(node)) namedFiles(n, baseDir, out);
  return out;
}

function hashOf(file: string): string {
  try {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
  } catch {
    return "missing";
  }
}

function keyOf(snap: Snapshot): string {
  return JSON.stringify([...snap].sort(([a], [b]) => a.localeCompare(b)));
}
