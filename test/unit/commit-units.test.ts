import { describe, expect, it } from "vitest";
import { BatchAbandoned } from "../../lib/runtime/batch-control.ts";
import type { SourceBatch, SourceMessage } from "../../lib/runtime/contracts.ts";
import { CommitUnits } from "../../lib/runtime/units.ts";

/** A fetched batch of offsets [from, to] as the source hands it, recording what the units ask of it. */
function batch(from: number, to: number, generation = 1) {
  const asked = { resolved: [] as string[], seeks: [] as string[] };
  const messages: SourceMessage[] = [];
  for (let o = from; o <= to; o++) messages.push({ cluster: "c", topic: "t", partition: 0, offset: String(o), timestamp: 0, rawKey: null, rawValue: null, rawHeaders: {} });
  const b: SourceBatch = {
    cluster: "c",
    topic: "t",
    partition: 0,
    messages,
    highWatermark: String(to + 100), // a backlog: more to fetch
    generation,
    currentGeneration: () => generation,
    resolveOffset: (o) => void asked.resolved.push(o),
    commitThrough: async () => {},
    seek: (o) => void asked.seeks.push(o),
    heartbeat: async () => {},
    isRunning: () => true,
    isStale: () => false,
    pause: () => () => {},
  };
  return { b, asked };
}

describe("commit units", () => {
  it("closes a unit as soon as the partition is caught up", () => {
    const units = new CommitUnits({ intervalMs: 1000, maxRecords: 1000 }, () => 0);
    const a = batch(0, 9);
    units.closed(units.open(a.b, none));
    const b = batch(10, 19);
    const u = units.open(b.b, none);
    units.took(u, b.b);
    expect(units.due(u)).toBe(false);
    const c = batch(20, 29);
    c.b.highWatermark = "30"; // the last record fetched is the partition's last
    units.took(u, c.b);
    expect(units.due(u)).toBe(true);
  });

  const none = () => [];

  it("spans fetched batches until due by records or age; the partition's first unit closes after one batch", () => {
    let now = 0;
    const units = new CommitUnits({ intervalMs: 1000, maxRecords: 25 }, () => now);
    const first = units.open(batch(0, 9).b, none);
    units.took(first, batch(0, 9).b);
    expect(units.due(first)).toBe(true); // first since assignment: output and a commit at once
    units.closed(first);
    const u = units.open(batch(10, 19).b, none);
    const b1 = batch(10, 19);
    units.took(u, b1.b);
    expect(b1.asked.resolved).toEqual(["19"]); // the fetch goes on
    expect(units.due(u)).toBe(false);
    const b2 = batch(20, 29);
    expect(units.open(b2.b, none)).toBe(u); // the same unit
    units.took(u, b2.b);
    expect(units.due(u)).toBe(false); // 20 records < 25
    now = 1000;
    expect(units.due(u)).toBe(true); // by age
    expect({ first: u.first, last: u.last.offset, records: u.records }).toEqual({ first: "10", last: "29", records: 20 });
  });

  it("a rebalance voids an open unit: its records are fetched again from the committed offset", () => {
    const units = new CommitUnits({ intervalMs: 1000, maxRecords: 1000 }, () => 0);
    const a = units.open(batch(0, 9, 1).b, none);
    units.took(a, batch(0, 9, 1).b);
    units.closed(a);
    const open = units.open(batch(10, 19, 1).b, none);
    units.took(open, batch(10, 19, 1).b);
    const after = units.open(batch(10, 19, 2).b, none);
    expect(after).not.toBe(open);
    expect(after.first).toBe("10");
  });

  it("an abandoned unit seeks back to its first offset; after a replay overlap it is read again in exact mode up to its last", () => {
    const units = new CommitUnits({ intervalMs: 1000, maxRecords: 1000 }, () => 0);
    const x = batch(100, 149);
    const u = units.open(x.b, none);
    units.took(u, x.b);
    units.closed(u);
    const y = batch(150, 199);
    const v = units.open(y.b, (exact) => (expect(exact).toBe(false), []));
    units.took(v, y.b);
    expect(units.abandon(v)).toBeInstanceOf(BatchAbandoned);
    expect(y.asked.seeks).toEqual(["150"]);
    const again = batch(150, 199);
    const w = units.open(again.b, none);
    units.took(w, again.b);
    units.redoExact(w);
    expect(again.asked.seeks).toEqual(["150"]);
    let modes: boolean[] = [];
    const e1 = units.open(batch(150, 179).b, (exact) => (modes.push(exact), []));
    expect([e1.exact, units.due(e1)]).toEqual([true, true]); // closed after each batch
    units.closed(e1);
    units.open(batch(180, 210).b, (exact) => (modes.push(exact), [])); // starts at or before 199: still exact
    units.closed(units.open(batch(180, 210).b, none));
    modes = [];
    units.open(batch(211, 220).b, (exact) => (modes.push(exact), []));
    expect(modes).toEqual([false]);
  });

  it("keeps neither the taken messages nor their bytes, only the batch's handle and the last position", () => {
    const units = new CommitUnits({ intervalMs: 1000, maxRecords: 1000 }, () => 0);
    units.closed(units.open(batch(0, 9).b, none));
    const b = batch(10, 19);
    // the fetched response the messages' bytes are views of
    const response = Buffer.alloc(1024);
    for (const m of b.b.messages) m.rawValue = response.subarray(0, 8);
    const u = units.open(b.b, none);
    units.took(u, b.b);
    expect(u.batch.messages).toHaveLength(0);
    expect(b.b.messages).toHaveLength(10); // the source's batch itself is left as it was
    expect(u.last).toMatchObject({ topic: "t", partition: 0, offset: "19", rawKey: null, rawValue: null });
    expect(b.b.messages).not.toContain(u.last);
    // the handle still seeks and commits the partition
    units.abandon(u);
    expect(b.asked.seeks).toEqual(["10"]);
  });
});
