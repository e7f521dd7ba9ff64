/**
 * `npm run bench -- <name> [args]` runs test/bench/<name>.bench.ts on Node 24.
 * Names: runtime, topology-redis, redis-features, feature-server, bullmq, rabbitmq, postgres.
 */
import fs from "node:fs";
import path from "node:path";

const [name, ...rest] = process.argv.slice(2);
const available = fs.readdirSync(import.meta.dirname).filter((f) => f.endsWith(".bench.ts")).map((f) => f.replace(".bench.ts", ""));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name> [args]; names: ${available.join(", ")}`);
  process.exit(2);
}
process.argv = [process.argv[0]!, path.join(import.meta.dirname, `${name}.bench.ts`), ...rest];
await import(`./${name}.bench.ts`);
