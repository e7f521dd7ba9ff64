#!/usr/bin/env node
// Entry for `npx streamfleet`; Node 24 runs the TypeScript sources directly.
await import("../lib/cli/main.ts");
