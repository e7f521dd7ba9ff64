/**
 * POST /v1/historical/{view} of the feature server: point-in-time features for a training
 * set. The body is `{"rows": [{"entity", "timestamp", ...labels}], "names"?: [...]}`; the
 * answer streams as NDJSON, one line per row in the order asked — the row as given plus
 * `"features": {name: value}` — written chunk by chunk as the offline log is read, so a
 * large request neither waits for its last row nor is held in memory as one string. An
 * error after the first line ends the stream with a line `{"error": {code, message}}`.
 */
import type http from "node:http";
import type pg from "pg";
import { SfError, errorMessage } from "../errors.ts";
import { chosenNames } from "./client.ts";
import type { FeatureClient } from "./client.ts";
import { checkAsks, historicalChunks, parseTime } from "./historical.ts";
import type { HistoricalAsk, LoggedViewDef } from "./historical.ts";
import { HttpError, badRequest } from "./http.ts";

/** Request bodies up to 64 MB: 100,000 rows with a few labels fit several times over. */
const MAX_BODY = 64 << 20;
export const MAX_HISTORICAL_ROWS = 1_000_000;

/** The view named by /v1/historical/{view}; undefined for any other path. */
export function historicalView(pathname: string): string | undefined {
  if (!pathname.startsWith("/v1/historical/")) return undefined;
  const rest = pathname.slice(15);
  if (rest === "" || rest.includes("/")) return undefined;
  try {
    return decodeURIComponent(rest);
  } catch {
    throw badRequest(`the path ${pathname} is not valid percent-encoding`);
  }
}

function readLargeBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) reject(new HttpError(413, "SF_ERR_FEATURES_BAD_REQUEST", `the body is larger than ${MAX_BODY} bytes; split the rows over several requests`));
      else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

type AskedRow = HistoricalAsk & { row: Record<string, unknown> };

/** Parses the body into asked rows (each keeping its own fields) and names. */
export function parseHistorical(text: string): { rows: AskedRow[]; names?: string[] } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest('the body is not JSON; expected {"rows": [{"entity": "...", "timestamp": ...}], "names": ["..."]}');
  }
  const { rows, names } = (body ?? {}) as { rows?: unknown; names?: unknown };
  if (!Array.isArray(rows) || rows.length === 0) throw badRequest('expected `rows`: a non-empty array of {"entity", "timestamp"} objects');
  if (rows.length > MAX_HISTORICAL_ROWS) throw badRequest(`expected at most ${MAX_HISTORICAL_ROWS} rows, got ${rows.length}`);
  if (names !== undefined && !(Array.isArray(names) && names.every((n) => typeof n === "string"))) throw badRequest("expected `names` to be an array of feature names");
  const asked = rows.map((r: unknown, i): AskedRow => {
    if (r === null || typeof r !== "object" || Array.isArray(r)) throw badRequest(`row ${i + 1}: expected an object {"entity", "timestamp"}`);
    const row = r as Record<string, unknown>;
    return { entity: row.entity as string, t: parseTime(row.timestamp), row };
  });
  checkAsks(asked);
  return { rows: asked, ...(names ? { names: names as string[] } : {}) };
}

const write = (res: http.ServerResponse, text: string) => (res.write(text) ? Promise.resolve() : new Promise<void>((resolve) => res.once("drain", resolve)));

/**
 * Answers one historical request; resolves with the HTTP status sent. Errors before the
 * first line are thrown for the server to answer as any other failure.
 */
export async function answerHistorical(features: FeatureClient, pool: pg.Pool | undefined, viewName: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (!pool) throw new HttpError(501, "SF_ERR_FEATURES_BAD_REQUEST", "this feature server has no offline log database (set DATABASE_URL)");
  const { rows, names } = parseHistorical(await readLargeBody(req));
  const view = await features.known(viewName);
  const chosen = chosenNames(view, names);
  const chunks = historicalChunks(pool, view as LoggedViewDef, rows, { names: chosen });
  const keys = chosen.map((n) => JSON.stringify(n));
  let i = 0;
  let first = await chunks.next();
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  try {
    for (; !first.done; first = await chunks.next()) {
      let out = "";
      for (const values of first.value) {
        const json = JSON.stringify(rows[i++]!.row);
        out += `${json.slice(0, -1)}${json.length > 2 ? "," : ""}"features":{${keys.map((k, f) => `${k}:${JSON.stringify(values[f]) ?? "null"}`).join(",")}}}\n`;
      }
      await write(res, out);
    }
  } catch (err) {
    const code = err instanceof SfError ? err.code : "SF_ERR_SINK_NOT_CONNECTED";
    res.write(`${JSON.stringify({ error: { code, message: `after ${i} rows: ${errorMessage(err)}` } })}\n`);
  }
  res.end();
}
