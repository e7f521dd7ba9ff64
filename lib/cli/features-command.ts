import fs from "node:fs";
import { once } from "node:events";
import pg from "pg";
import { createRedisClient } from "../connectors/redis/client.ts";
import { pgTarget } from "../connectors/postgres/connection.ts";
import { SfError, errorMessage } from "../errors.ts";
import { FeatureClient, chosenNames } from "../features/client.ts";
import { checkAsks, historicalChunks, parseTime } from "../features/historical.ts";
import type { LoggedViewDef } from "../features/historical.ts";
import { csvField, csvValue, parseCsv } from "../features/historical-csv.ts";
import { Connections } from "../runtime/connections.ts";
import { parseCommand } from "./args.ts";

function required(values: Record<string, unknown>, flag: string): string {
  const v = values[flag];
  if (typeof v !== "string" || v === "") throw new SfError("SF_ERR_CLI_USAGE", `features export needs --${flag} (see \`streamfleet features --help\`)`);
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
export async function featuresCommand(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseCommand("features", args);
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
