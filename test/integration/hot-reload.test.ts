import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { stringify } from "yaml";
import { afterAll, beforeAll, expect, it } from "vitest";
import { avroEncoder } from "../support/fleet.ts";
import { describeStack, stack, TestScope } from "../support/scope.ts";
import { waitUntil } from "../support/worker.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const FIXTURES = path.join(ROOT, "test/fixtures/hot-reload");
const scope = new TestScope("hotreload");
const dirs: string[] = [];
let db: pg.Client;

beforeAll(async () => {
  db = new pg.Client({ connectionString: stack().DATABASE_URL });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await scope.cleanup();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "sf-hot-reload-"));
  dirs.push(d);
  return d;
}

interface LogLine {
  msg: string;
  topology?: string;
  [k: string]: unknown;
}
/**
 * `streamfleet run <dir> --watch --json` as a child process. Its log goes to a file in the
 * watched directory: writes the watcher must ignore (they would otherwise keep postponing a reload).
 */
async function startWatching(dir: string) {
  const logFile = path.join(dir, "worker.log");
  const out = fs.openSync(logFile, "a");
  const child = spawn(process.execPath, [path.join(ROOT, "lib/cli/main.ts"), "run", dir, "--watch", "--json", "--admin-port", "0"], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", STREAMFLEET_SHUTDOWN_MS: "20000" },
    stdio: ["ignore", out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const logs = (): LogLine[] =>
    fs
      .readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as LogLine);
  await waitUntil(() => logs().some((l) => l.msg === "watching topologies for changes") || child.exitCode !== null, 60_000, "the worker to start");
  if (child.exitCode !== null) throw new Error(`the worker exited at start:\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
  const admin = logs().find((l) => l.msg === "worker started")!.admin as string;
  return {
    logs,
    admin,
    /** The value of one series (0 when absent); `labels` as written in /metrics, comma-separated. */
    metric: async (name: string, labels: string): Promise<number> => {
      const text = await (await fetch(`${admin}/metrics`)).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && labels.split(",").every((p) => l.includes(p)));
      return line ? Number(line.split(" ").pop()) : 0;
    },
    /** Stops the worker (SIGTERM) and returns its exit code; on a failed test, prints its log's tail. */
    stop: async (failed: boolean): Promise<number | null> => {
      if (failed) console.error(`worker log (tail):\n${fs.readFileSync(logFile, "utf8").slice(-4000)}`);
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/**
 * Tables whose BEFORE INSERT trigger counts every row the sink tries to insert, also those
 * its ON CONFLICT DO NOTHING drops: the table shows loss, `writes` shows a record written twice.
 */
async function createTables(s: string): Promise<void> {
  await db.query(`CREATE SCHEMA "${s}"`);
  await db.query(`CREATE TABLE "${s}".writes (tbl text, record_id text, n int NOT NULL, PRIMARY KEY (tbl, record_id))`);
  await db.query(`CREATE FUNCTION "${s}".count_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO "${s}".writes VALUES (TG_TABLE_NAME, NEW.record_id, 1) ON CONFLICT (tbl, record_id) DO UPDATE SET n = writes.n + 1;
      RETURN NEW;
    END $$`);
  await db.query(`CREATE TABLE "${s}".a_events (record_id text PRIMARY KEY, id bigint, version text, stage text, written_at timestamptz DEFAULT clock_timestamp())`);
  await db.query(`CREATE TABLE "${s}".b_events (record_id text PRIMARY KEY, id bigint, written_at timestamptz DEFAULT clock_timestamp())`);
  for (const t of ["a_events", "b_events"]) await db.query(`CREATE TRIGGER count_write BEFORE INSERT ON "${s}".${t} FOR EACH ROW EXECUTE FUNCTION "${s}".count_write()`);
}

describeStack("streamfleet run --watch", () => {
  it("swaps a changed topology while records flow: three changes (one refused by the registry check), every record written exactly once, the other topology never stopped", async () => {
    const [inA, inB] = [scope.topic("a"), scope.topic("b")];
    await scope.createTopics([inA, inB], 3);
    const s = scope.pgSchema;
    await createTables(s);
    // The duplicate detector works: a key inserted twice (the second dropped) counts 2.
    await db.query(`INSERT INTO "${s}".b_events (record_id, id) VALUES ('probe', 0) ON CONFLICT DO NOTHING`);
    await db.query(`INSERT INTO "${s}".b_events (record_id, id) VALUES ('probe', 0) ON CONFLICT DO NOTHING`);
    expect((await db.query(`SELECT n FROM "${s}".writes WHERE record_id = 'probe'`)).rows).toEqual([{ n: 2 }]);
    await db.query(`DELETE FROM "${s}".b_events; DELETE FROM "${s}".writes`);

    const dir = tempDir();
    for (const f of fs.readdirSync(FIXTURES)) fs.copyFileSync(path.join(FIXTURES, f), path.join(dir, f));
    const [nameA, nameB] = [`${scope.id}-a`, `${scope.id}-b`];
    const topologyA = (over: { schema?: string; stage: string }) => ({
      name: nameA,
      source: { topics: [inA], commit_interval_ms: 200 },
      codec: { value: { type: "avro", schema: over.schema ?? "./event.avsc" } },
      steps: [{ transform: { module: "./stamp.ts" } }, { map: { fields: { stage: over.stage }, merge: true } }],
      sinks: [{ type: "postgres", pg_schema: s, table: "a_events", columns: [{ name: "id", type: "bigint" }, { name: "version", type: "text" }, { name: "stage", type: "text" }] }],
      errors: { dlq: { topic: scope.topic("a-dlq") } },
    });
    const writeA = (over: { schema?: string; stage: string }) => fs.writeFileSync(path.join(dir, "a.yaml"), stringify(topologyA(over)));
    writeA({ stage: "one" });
    fs.writeFileSync(
      path.join(dir, "b.yaml"),
      stringify({
        name: nameB,
        source: { topics: [inB], commit_interval_ms: 200 },
        codec: { value: { type: "json" } },
        sinks: [{ type: "postgres", pg_schema: s, table: "b_events", columns: [{ name: "id", type: "bigint" }] }],
        errors: { dlq: { topic: scope.topic("b-dlq") } },
      }),
    );
    scope.subject(inA);
    const encode = await avroEncoder(inA, path.join(FIXTURES, "event.avsc"));

    const { logs, admin, metric, stop } = await startWatching(dir);
    const producer = scope.producer();
    let producing = true;
    let sent = 0;
    let pump: Promise<void> = Promise.resolve();
    let failed = true;
    let exitCode: number | null;
    try {
      const rows = async (where = "true") => Number((await db.query(`SELECT count(*) FROM "${s}".a_events WHERE ${where}`)).rows[0].count);
      const reloads = (msg: string) => logs().filter((l) => l.msg.startsWith(msg) && l.topology === nameA);

      // Records flow into both topologies the whole time: 25 to each every 50 ms.
      await producer.connect();
      pump = (async () => {
        for (let i = 0; producing; i++) {
          const ids = Array.from({ length: 25 }, (_, j) => i * 25 + j);
          await producer.send({ topic: inA, messages: ids.map((id) => ({ key: String(id), value: encode({ id, source: "a" }) })) });
          await producer.send({ topic: inB, messages: ids.map((id) => ({ key: String(id), value: JSON.stringify({ id }) })) });
          sent += 25;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await waitUntil(async () => (await rows("version = 'v1' AND stage = 'one'")) >= 50, 60_000, "records through the first version");
      const rebalancesB = await metric("streamfleet_rebalances_total", `topology="${nameB}"`);
      expect(rebalancesB).toBeGreaterThan(0);

      // 1. The transform module changes: re-imported, swapped in.
      fs.writeFileSync(path.join(dir, "stamp.ts"), fs.readFileSync(path.join(FIXTURES, "stamp.ts"), "utf8").replace('"v1"', '"v2"'));
      await waitUntil(() => reloads("topology reloaded").length === 1, 30_000, "the first reload");
      expect(reloads("topology reloaded")[0]!.changed).toEqual([path.join(dir, "stamp.ts")]);
      await waitUntil(async () => (await rows("version = 'v2'")) >= 50, 30_000, "records through the new module");

      // 2. A topology edit that only the registry check refuses: its reader cannot read the subject.
      writeA({ schema: "./event-strict.avsc", stage: "one" });
      await waitUntil(() => reloads("topology reload refused").length === 1, 30_000, "the refused change to be logged");
      const refused = reloads("topology reload refused")[0]!;
      expect(refused).toMatchObject({ code: "SF_ERR_TOPOLOGY_RELOAD", cause: "SF_ERR_TOPOLOGY_INVALID", outcome: "failed", file: path.join(dir, "a.yaml") });
      expect(refused.reason).toMatch(/event-strict\.avsc cannot read subject .* region/);
      // the running version keeps going
      const before = await rows("version = 'v2' AND stage = 'one'");
      await waitUntil(async () => (await rows("version = 'v2' AND stage = 'one'")) >= before + 100, 30_000, "the kept version to go on processing");

      // 3. A valid topology edit: a changed step.
      writeA({ stage: "two" });
      await waitUntil(() => reloads("topology reloaded").length === 2, 30_000, "the third change to be swapped in");
      await waitUntil(async () => (await rows("version = 'v2' AND stage = 'two'")) >= 50, 30_000, "records through the edited step");

      producing = false;
      await pump;
      await waitUntil(async () => (await rows()) >= sent, 60_000, `all ${sent} records of the changed topology`);
      await waitUntil(async () => Number((await db.query(`SELECT count(*) FROM "${s}".b_events`)).rows[0].count) >= sent, 60_000, `all ${sent} records of the other topology`);

      for (const t of ["a_events", "b_events"]) {
        const ids = (await db.query(`SELECT id FROM "${s}".${t} ORDER BY id`)).rows.map((r: { id: string }) => Number(r.id));
        expect(ids, `${t}: every record, none lost`).toEqual(Array.from({ length: sent }, (_, i) => i));
        const w = (await db.query(`SELECT count(*)::int AS records, max(n) AS most FROM "${s}".writes WHERE tbl = $1`, [t])).rows[0];
        expect(w, `${t}: each record written once`).toEqual({ records: sent, most: 1 });
      }
      expect(await rows("version = 'v1' AND stage = 'one'")).toBeGreaterThan(0);
      expect(await metric("streamfleet_topology_reloads_total", `topology="${nameA}",outcome="ok"`)).toBe(2);
      expect(await metric("streamfleet_topology_reloads_total", `topology="${nameA}",outcome="failed"`)).toBe(1);
      // The other topology was never stopped, started again or rebalanced.
      expect(await metric("streamfleet_rebalances_total", `topology="${nameB}"`)).toBe(rebalancesB);
      expect(logs().filter((l) => l.topology === nameB && /topology (started|stopped)/.test(l.msg)).map((l) => l.msg)).toEqual(["topology started"]);
      expect((await fetch(`${admin}/readyz`)).status).toBe(200);
      failed = false;
    } finally {
      producing = false;
      await pump.catch(() => {});
      await producer.disconnect();
      exitCode = await stop(failed);
    }
    expect(exitCode).toBe(0);
  }, 240_000);

  it("keeps the running version (and its module) when its file is deleted, unparsable or does not start; a new file adds a topology; a renamed one is refused", async () => {
    const input = scope.topic("c");
    await scope.createTopics([input], 1);
    const s = scope.pgSchema;
    const dir = tempDir();
    fs.copyFileSync(path.join(FIXTURES, "stamp.ts"), path.join(dir, "stamp.ts"));
    const [x, y] = [`${scope.id}-x`, `${scope.id}-y`];
    const dlq = (name: string) => ({ dlq: { topic: scope.topic(`${name}-dlq`) } });
    const xTopology = (connection = "default") =>
      stringify({
        name: x,
        source: { topics: [input], commit_interval_ms: 100 },
        codec: { value: { type: "json" } },
        steps: [{ transform: { module: "./stamp.ts" } }],
        sinks: [{ type: "postgres", connection, pg_schema: s, table: "x_events", columns: [{ name: "id", type: "bigint" }, { name: "version", type: "text" }] }],
        errors: dlq(x),
      });
    const yTopology = stringify({ name: y, source: { topics: [input] }, codec: { value: { type: "json" } }, sinks: [{ type: "null" }], errors: dlq(y) });
    const xFile = path.join(dir, "x.yaml");
    fs.writeFileSync(xFile, xTopology());
    const { logs, admin, metric, stop } = await startWatching(dir);
    const refusals = () => logs().filter((l) => l.msg.startsWith("topology reload refused"));
    const xReady = async () => (await metric("streamfleet_topology_ready", `topology="${x}"`)) === 1 && (await fetch(`${admin}/readyz`)).status === 200;
    const producer = scope.producer();
    await producer.connect();
    /** Sends record `id` and returns the version of the module that processed it. */
    const versionOf = async (id: number): Promise<string> => {
      await producer.send({ topic: input, messages: [{ value: JSON.stringify({ id }) }] });
      let version: string | undefined;
      await waitUntil(async () => (version = (await db.query(`SELECT version FROM "${s}".x_events WHERE id = $1`, [id])).rows[0]?.version) !== undefined, 30_000, `record ${id} to be written`);
      return version!;
    };
    let failed = true;
    let exitCode: number | null;
    try {
      await waitUntil(xReady, 30_000, `${x} to join its group`);
      expect(await versionOf(1)).toBe("v1");

      // saved as many editors save: a new file renamed over the old one (the edits after it are in place)
      fs.writeFileSync(`${xFile}.tmp`, "name: [unclosed\n");
      fs.renameSync(`${xFile}.tmp`, xFile);
      await waitUntil(() => refusals().length === 1, 30_000, "the unparsable file to be refused");
      expect(refusals()[0]!.reason).toContain(`${xFile}:2 (top level): not valid YAML`);
      expect(await xReady()).toBe(true);
      // the file that replaced it is watched too: an edit in place is seen
      fs.writeFileSync(xFile, "name: x\nsource: {topics: [a]\n");
      await waitUntil(() => refusals().length === 2, 30_000, "the edit in place to be refused");
      expect(refusals()[1]!.reason).toContain(`${xFile}:3 (top level): not valid YAML`);
      expect(await xReady()).toBe(true);

      fs.rmSync(xFile);
      await waitUntil(() => refusals().length === 3, 30_000, "the deletion to be refused");
      expect(refusals()[2]).toMatchObject({ topology: x, file: xFile, cause: "SF_ERR_TOPOLOGY_LOAD", reason: expect.stringMatching(/deleted or renamed; the running version is kept/) });
      expect(await xReady()).toBe(true);

      // A new module and a sink that cannot open (connections are not part of validation), saved
      // together: the new version does not start, the old one starts again with the old module.
      fs.writeFileSync(path.join(dir, "stamp.ts"), fs.readFileSync(path.join(FIXTURES, "stamp.ts"), "utf8").replace('"v1"', '"v2"'));
      fs.writeFileSync(xFile, xTopology("nowhere"));
      await waitUntil(() => logs().some((l) => l.msg === "the running version started again" && l.topology === x), 30_000, "the old version to be started again");
      expect(refusals()[3]).toMatchObject({ topology: x, cause: "SF_ERR_CONFIG_MISSING", reason: expect.stringContaining("DATABASE_URL__NOWHERE") });
      await waitUntil(xReady, 30_000, `${x} to join its group again`);
      expect(await versionOf(2)).toBe("v1");

      // Fixed: the module on disk now goes in with it.
      fs.writeFileSync(xFile, xTopology());
      await waitUntil(() => logs().some((l) => l.msg === "topology reloaded" && l.topology === x), 30_000, "the fixed version to be swapped in");
      expect(await versionOf(3)).toBe("v2");

      fs.writeFileSync(path.join(dir, "y.yaml"), yTopology);
      await waitUntil(() => logs().some((l) => l.msg === "topology added" && l.topology === y), 30_000, "the new file's topology to start");
      await waitUntil(async () => (await metric("streamfleet_topology_ready", `topology="${y}"`)) === 1, 30_000, `${y} to join its group`);

      fs.renameSync(path.join(dir, "y.yaml"), path.join(dir, "z.yaml"));
      await waitUntil(() => refusals().length === 6, 30_000, "both sides of the rename to be refused");
      expect(refusals().slice(4).map((l) => [l.file, l.reason])).toEqual([
        [path.join(dir, "y.yaml"), expect.stringMatching(/deleted or renamed/)],
        [path.join(dir, "z.yaml"), expect.stringContaining(`topology name "${y}" is also used by ${path.join(dir, "y.yaml")}`)],
      ]);
      expect(await metric("streamfleet_topology_reloads_total", `topology="${x}",outcome="failed"`)).toBe(4);
      expect(await metric("streamfleet_topology_reloads_total", `topology="${x}",outcome="ok"`)).toBe(1);
      expect(await metric("streamfleet_topology_reloads_total", `topology="${y}",outcome="ok"`)).toBe(1);
      expect(await metric("streamfleet_topology_reloads_total", `topology="${y}",outcome="failed"`)).toBe(1);
      expect(await metric("streamfleet_topology_reloads_total", `topology="z",outcome="failed"`)).toBe(1);
      expect((await fetch(`${admin}/readyz`)).status).toBe(200);
      failed = false;
    } finally {
      await producer.disconnect();
      exitCode = await stop(failed);
    }
    expect(exitCode).toBe(0);
  }, 180_000);
});
