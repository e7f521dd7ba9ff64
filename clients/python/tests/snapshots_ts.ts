/**
 * The TS half of test_historical_snapshots.py: what the Python client's snapshot reads are held
 * to. Reads a job (JSON) on stdin — `database` (a PostgreSQL URL) and `steps` — runs the steps
 * in order with lib/features and writes their results (JSON, one per step) to stdout:
 *   prepare      the view's offline log table, its partition and snapshot tables (ensureLogTable)
 *   fingerprint  fingerprint(view, every) per view of `views`
 *   sql          segmentsSql for the view's `names`, with or without the snapshot tables
 *   build        buildSnapshots(view, { now, every })
 *   read         historicalValues(view, asks, { names, chunk }), and whether snapshotRead found snapshots
 * Run as `npx node clients/python/tests/snapshots_ts.ts` (Node ≥ 22.18 runs the .ts as it is).
 */
import pg from "pg";
import { foldPlan } from "../../../lib/features/historical-fold.ts";
import { segmentsSql } from "../../../lib/features/historical-sql.ts";
import { historicalValues } from "../../../lib/features/historical.ts";
import type { HistoricalAsk, LoggedViewDef } from "../../../lib/features/historical.ts";
import { storeOf } from "../../../lib/features/layout.ts";
import { ensureLogTable, offlineTableOf, snapshotTables } from "../../../lib/features/offline-log.ts";
import { buildSnapshots, fingerprint, snapshotRead } from "../../../lib/features/snapshots.ts";

type Step =
  | { do: "prepare"; view: LoggedViewDef }
  | { do: "fingerprint"; views: LoggedViewDef[]; every: number }
  | { do: "sql"; view: LoggedViewDef; names: string[]; snap: boolean }
  | { do: "build"; view: LoggedViewDef; now: number; every?: number }
  | { do: "read"; view: LoggedViewDef; asks: HistoricalAsk[]; names?: string[]; chunk?: number };

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { database: string; steps: Step[] };

const pool = new pg.Pool({ connectionString: job.database, max: 3 });
const client = await pool.connect();
const out: unknown[] = [];
try {
  for (const step of job.steps) {
    switch (step.do) {
      case "prepare":
        out.push(await ensureLogTable(client, offlineTableOf(step.view), [storeOf(step.view)]));
        break;
      case "fingerprint":
        out.push(step.views.map((v) => fingerprint(v, step.every)));
        break;
      case "sql": {
        const table = offlineTableOf(step.view);
        out.push(segmentsSql(table, foldPlan(step.view, step.names).defs, step.snap ? snapshotTables(table) : undefined));
        break;
      }
      case "build": {
        const { ms: _ms, ...built } = await buildSnapshots(client, step.view, { now: step.now, ...(step.every === undefined ? {} : { every: step.every }) });
        out.push(built);
        break;
      }
      case "read":
        out.push({
          snapshots: (await snapshotRead(pool, step.view)) !== undefined,
          values: await historicalValues(pool, step.view, step.asks, { ...(step.names ? { names: step.names } : {}), ...(step.chunk ? { chunk: step.chunk } : {}) }),
        });
        break;
    }
  }
} finally {
  client.release();
  await pool.end();
}
process.stdout.write(JSON.stringify(out));
