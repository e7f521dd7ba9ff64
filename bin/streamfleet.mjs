#!/usr/bin/env node
/* global process, console, URL */
// Entry for `streamfleet` / `npx streamfleet`: the compiled CLI under dist/ (built by `npm pack`;
// inside the repository, `npm run build` first, or use `npm run streamfleet`, which runs the sources).
// Written for any Node that can load ESM, so that an old Node gets one clear line, not a syntax error.
import fs from "node:fs";

const pkg = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const wanted = pkg.engines.node; // ">=22.18.0"
const min = wanted.replace(/^>=\s*/, "").split(".").map(Number);
const have = process.versions.node.split(".").map(Number);
const older = have[0] !== min[0] ? have[0] < min[0] : have[1] !== min[1] ? have[1] < min[1] : have[2] < min[2];
if (older) {
  console.error(`streamfleet needs Node.js ${wanted} (it runs TypeScript topologies and transforms natively), but this is ${process.version}: install Node 24 LTS (https://nodejs.org)`);
  process.exit(1);
}
await import("../dist/lib/cli/main.js");
