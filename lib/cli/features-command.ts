import fs from "node:fs";
import { once } from "node:events";
import pg from "pg";
import { createRedisClient } from "../connectors/redis/client.ts";
import { pgTarget } from "../connectors/postgres/connection.ts";
import { SfError, errorMessage } from "../errors.ts";
import { FeatureClient, chosenNames } from "../features/client.ts";
import { checkAsks, historicalChunks, offlineTableOf, parseTime } from "../features/historical.ts";
import type { LoggedViewDef } from "../features/historical.ts";
import { csvField, csvValue, parseCsv } from "../features/historical-csv.ts";
import { parseDuration, storeOf } from "../features/layout.ts";
import { buildSnapshots, DAY_MS } from "../features/snapshots.ts";
import { Connections } from "../runtime/connections.ts";
import { parseCommand } from "./args.ts";

function required(values: Record<string, unknown>, flag: string, verb = "export"): string {
  const v = values[flag];
  if (typeof v !== "string" || v === "") throw new SfError("SF_ERR_CLI_USAGE", `features ${verb} needs --${flag} (see \`streamfleet features --help\`)`);
  return v;
}

/** The rows file: header, entity and time columns found, every row as long as the header. */
function readRows(file: string, entityColumn: string, timeColumn: string): { header: string[]; cells: string[][]; entity: number; time: number } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new SfError("SF_ERR_CLI_USAGE", `cannot read --rows ${file}: ${errorMessage(err)}`);
  }
  let rows: string[][];
  try {
    rows = parseCsv(text);
  } catch (err) {
    throw new SfError("SF_ERR_CLI_USAGE", `${file}: ${errorMessage(err)}`);
  }
  const [header, ...cells] = rows;
  if (!header || cells.length === 0) throw new SfError("SF_ERR_CLI_USAGE", `${file}: expected a header line and at least one row`);
  const entity = header.indexOf(entityColumn);
  const time = header.indexOf(timeColumn);
  if (entity < 0 || time < 0) throw new SfError("SF_ERR_CLI_USAGE", `${file}: expected columns "${entityColumn}" and "${timeColumn}" in the header (got ${header.join(", ")}); see --entity-column, --time-column`);
  cells.forEach((r, i) => {
    if (r.length !== header.length) throw new SfError("SF_ERR_CLI_USAGE", `${file}, line ${i + 2}: ${r.length} fields, the header has ${header.length}`);
  });
  return { header, cells, entity, time };
}

/**
 * `streamfleet features export --view V --rows rows.csv --out training.csv`: each row of the
 * CSV with every feature of the view as of the row's time, from the view's offline feature
 * log (REDIS_URL: the view registry; DATABASE_URL: the log). Same rows, same order.
 */
/**
 * `streamfleet features rebuild <topology> --view V --from TIME [--no-follow]`: a new version of
 * the view from the source topic's history (lib/features/rebuild.ts), readers switched to it.
 */
async function rebuildCommand(values: Record<string, unknown>, positionals: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const file = positionals[1];
  if (!file) throw new SfError("SF_ERR_CLI_USAGE", "features rebuild needs the topology file: streamfleet features rebuild <topology> --view V --from TIME");
  const view = required(values, "view", "rebuild");
  const fromText = required(values, "from", "rebuild");
  const from = parseTime(fromText);
  if (!Number.isFinite(from)) throw new SfError("SF_ERR_CLI_USAGE", `--from ${fromText}: expected epoch ms or an ISO 8601 time`);
  // a time to come would switch readers to a version holding nothing yet
  if (from > Date.now()) throw new SfError("SF_ERR_CLI_USAGE", `--from ${fromText} is in the future: a rebuild reads the history from a past time`);
  const { rebuildView } = await import("../features/rebuild.ts");
  const { createLogger } = await import("../observability/logger.ts");
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const r = await rebuildView({ file, view, from, env, logger: createLogger({ level: env.LOG_LEVEL ?? "warn" }), follow: values["no-follow"] !== true, signal: stop.signal, report: (line) => console.log(line) });
    return r.switched ? 0 : 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** `streamfleet features drop-version --view V --version N`: deletes a version's Redis keys (REDIS_URL). */
async function dropVersionCommand(values: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<number> {
  const view = required(values, "view", "drop-version");
  const version = values.version;
  if (typeof version !== "number") throw new SfError("SF_ERR_CLI_USAGE", "features drop-version needs --version N");
  const { dropVersion } = await import("../features/rebuild.ts");
  const redis = createRedisClient(new Connections(env), "default");
  try {
    const n = await dropVersion(redis, (values["key-prefix"] as string | undefined) ?? "", view, version);
    console.log(`deleted ${n} entity key(s) of version ${version} of ${view}`);
    return 0;
  } finally {
    redis.disconnect();
  }
}

/**
 * `streamfleet features compact --view V [--every 1d] [--grace 1h] [--cluster]`: the snapshots
 * of the view's offline log (of the version readers read) built up to the last period that ended
 * `grace` ago (lib/features/snapshots.ts); with --cluster its partition rewritten in (entity,
 * event_time) order first (lib/features/compact.ts).
 */
async function compactCommand(values: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<number> {
  const viewName = required(values, "view", "compact");
  const every = durationFlag(values, "every", DAY_MS);
  const grace = durationFlag(values, "grace", 3_600_000);
  const connections = new Connections(env);
  const redis = createRedisClient(connections, "default");
  const client = new pg.Client(pgTarget(connections, "default").config);
  try {
    const view = (await new FeatureClient({ redis, keyPrefix: (values["key-prefix"] as string | undefined) ?? "" }).known(viewName)) as LoggedViewDef;
    const table = offlineTableOf(view);
    await client.connect();
    if (values.cluster === true) {
      const { compactLog } = await import("../features/compact.ts");
      const done = await compactLog(client, table, storeOf(view));
      console.log(`clustered ${done.partition}: ${done.rows.toLocaleString("en-US")} row(s) in (entity, event_time) order (index ${done.index}) in ${(done.ms / 1000).toFixed(1)} s`);
    }
    const built = await buildSnapshots(client, view, { every, grace });
    console.log(
      `snapshots of ${storeOf(view)} up to ${new Date(built.horizon).toISOString()}: ${built.written.toLocaleString("en-US")} written` +
        `${built.rebuilt ? " (all built again: the view's definition or the period changed)" : ""}${built.repaired > 0 ? `, ${built.repaired} entit${built.repaired === 1 ? "y" : "ies"} repaired after late rows` : ""} in ${(built.ms / 1000).toFixed(1)} s`,
    );
    return 0;
  } finally {
    redis.disconnect();
    await client.end().catch(() => undefined);
  }
}

/** A duration flag ("1d", "6h", "90m", or ms); SF_ERR_CLI_USAGE when unreadable. */
function durationFlag(values: Record<string, unknown>, name: string, fallback: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const ms = parseDuration(String(v));
  if (!Number.isFinite(ms)) throw new SfError("SF_ERR_CLI_USAGE", `--${name}: expected a duration such as 1d, 6h or 30m, got ${JSON.stringify(v)}`);
  return ms;
}

export async function featuresCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseCommand("features", args);
  if (positionals[0] === "rebuild") return rebuildCommand(values, positionals, env);
  if (positionals[0] === "drop-version") return dropVersionCommand(values, env);
  if (positionals[0] === "compact") return compactCommand(values, env);
  if (positionals.length > 1) throw new SfError("SF_ERR_CLI_USAGE", `features export takes no argument besides its flags, got "${positionals[1]}"`);
  const viewName = required(values, "view");
  const rowsFile = required(values, "rows");
  const outFile = required(values, "out");
  const { header, cells, entity, time } = readRows(rowsFile, (values["entity-column"] as string | undefined) ?? "entity", (values["time-column"] as string | undefined) ?? "timestamp");
  const asks = cells.map((r) => ({ entity: r[entity]!, t: parseTime(r[time]) }));
  try {
    checkAsks(asks);
  } catch (err) {
    throw new SfError("SF_ERR_CLI_USAGE", `${rowsFile}: ${errorMessage(err).replace(/^row (\d+)/, (_, n: string) => `line ${Number(n) + 1}`)}`);
  }
  const connections = new Connections(env);
  const redis = createRedisClient(connections, "default"); // REDIS_URL, or REDIS_CLUSTER_NODES for a Redis Cluster
  const pool = new pg.Pool({ ...pgTarget(connections, "default").config, max: 2 });
  try {
    const client = new FeatureClient({ redis, keyPrefix: (values["key-prefix"] as string | undefined) ?? "", offline: pool });
    const view = await client.known(viewName);
    const names = chosenNames(view, typeof values.names === "string" ? values.names.split(",").map((n) => n.trim()).filter(Boolean) : undefined);
    const out = fs.createWriteStream(outFile);
    out.write(`${[...header, ...names].map(csvField).join(",")}\n`);
    let i = 0;
    for await (const chunk of historicalChunks(pool, view as LoggedViewDef, asks, { names })) {
      let text = "";
      for (const v of chunk) text += `${[...cells[i++]!.map(csvField), ...v.map(csvValue)].join(",")}\n`;
      if (!out.write(text)) await once(out, "drain");
    }
    out.end();
    await once(out, "finish");
    console.log(`wrote ${i} row(s) with ${names.length} feature(s) of ${viewName} to ${outFile}`);
    return 0;
  } finally {
    redis.disconnect();
    await pool.end();
  }
}
