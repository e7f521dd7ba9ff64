import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { builtin } from "../../lib/runtime/builtin.ts";
import { redis } from "../../lib/connectors/redis/index.ts";
import { buildCatalogue } from "../../lib/topology/model.ts";
import { loadTopologyFile } from "../../lib/topology/loader.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "redis-topology-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const cat = buildCatalogue([builtin, redis]);

/** The YAML shapes docs/feature-store.md and the topology authors use. */
const TOPOLOGY = `
name: complaints-features
source: { topics: [complaints] }
codec: { value: { type: json } }
steps:
  - dedupe: { key: "{eventId}", window_seconds: 3600 }
  - rate-limit: { key: "{residentId}", limit: 100, interval_seconds: 60, over_limit: { route: slow_lane } }
  - enrich: { cache: "building:{buildingId}", into: building }
  - enrich: { view: resident_activity, key: "{residentId}", names: [open_complaints], into: resident }
sinks:
  - type: redis.features
    views:
      - name: resident_activity
        entity: resident
        key: "{residentId}"
        event_time: occurredAt
        ttl_seconds: 604800
        features:
          - { name: open_complaints, kind: counter, by: "{delta}" }
          - { name: last_type, kind: latest, field: type }
          - { name: recent_types, kind: last_n, field: type, n: 5 }
          - { name: complaints_1h, kind: window_count, window: 1h, when: { field: type, eq: complaint.created } }
  - type: redis.cache
    key: "complaint:{id}"
    ttl_seconds: 86400
    delete_when: { field: type, eq: complaint.deleted }
  - type: redis.publish
    channel: "complaints:{buildingId}"
    fields: { id: "{id}", type: "{type}" }
  - type: redis.publish
    name: slow_lane
    routed_only: true
    channel: "complaints:slow"
`;

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe("redis sinks and steps in a topology file", () => {
  it("loads the documented YAML shapes", async () => {
    const { topology } = await loadTopologyFile(write("ok.yaml", TOPOLOGY), cat);
    expect(topology.steps.map((s) => s.kind)).toEqual(["dedupe", "rate-limit", "enrich", "enrich"]);
    expect(topology.sinks.map((s) => s.name)).toEqual(["redis.features", "redis.cache", "redis.publish", "slow_lane"]);
    expect(topology.sinks[0]!.config).toMatchObject({ connection: "default", key_prefix: "" });
  });

  it("names the path of a rate-limit route to a missing sink and of a bad feature", async () => {
    const bad = TOPOLOGY.replace("route: slow_lane", "route: nowhere").replace("kind: last_n, field: type, n: 5", "kind: last_n, field: type");
    const err = await loadTopologyFile(write("bad.yaml", bad), cat).catch((e: unknown) => e);
    expect(String((err as Error).message)).toMatch(/features\[2\]\.n|features\.2\.n/);
    const routeOnly = TOPOLOGY.replace("route: slow_lane", "route: nowhere");
    const err2 = await loadTopologyFile(write("bad2.yaml", routeOnly), cat).catch((e: unknown) => e);
    expect(String((err2 as Error).message)).toContain('got "nowhere"');
    expect(String((err2 as Error).message)).toMatch(/over_limit/);
  });
});
