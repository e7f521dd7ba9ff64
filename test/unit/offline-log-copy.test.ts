/**
 * The offline log's COPY payload written byte by byte (lib/features/offline-log.ts CopyData,
 * lib/features/offline-recorder.ts encoderOf) must be exactly the text the reference encoding
 * gives: the contributions as JSON.stringify writes them, every value escaped for COPY's text
 * format (backslash, tab, newline, carriage return).
 */
import { describe, expect, it } from "vitest";
import { CopyData } from "../../lib/features/offline-log.ts";
import { contributionsOf, encoderOf } from "../../lib/features/offline-recorder.ts";
import type { OfflineRow } from "../../lib/connectors/redis/feature-log.ts";

/** COPY text of one value, the reference (as PostgreSQL's docs state it). */
const copyText = (v: string) => v.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"));

/** A string as its UTF-8 bytes read back (a lone surrogate becomes U+FFFD, as in any UTF-8 write). */
const utf8 = (s: string) => Buffer.from(s).toString("utf8");

/** What a CopyData holds after `write`, as UTF-8 text. */
function bytesOf(write: (d: CopyData) => void): string {
  const d = new CopyData();
  const chunks: Buffer[] = [];
  d.start((c) => chunks.push(Buffer.from(c)));
  write(d);
  d.flush();
  return Buffer.concat(chunks).toString("utf8");
}

const strings = ["", "plain", 'a "quoted" word', "back\\slash", "tab\there", "line\nbreak", "cr\rlf\r\n", "\u0001\u001f control", "é ü 中文 😀", "lone \ud800 surrogate", "\u2028\u2029", "\\t literally", "x".repeat(100_000)];
const values: unknown[] = [
  ...strings,
  0,
  -0,
  1,
  -1,
  42,
  0.5,
  -12.25,
  1e21,
  1.5e-7,
  2 ** 53 + 2,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  1_700_000_000_123,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  false,
  null,
  { a: 1, "b\\c": "d\te", nested: [1, "x\ny", null] },
  ["a", "b\\"],
  [],
];

describe("offline log COPY payload", () => {
  it("writes every JSON value as JSON.stringify does, escaped for COPY", () => {
    for (const v of values) expect(bytesOf((d) => d.json(v))).toBe(utf8(copyText(JSON.stringify(v))));
  });

  it("writes text escaped for COPY, and integers as their digits", () => {
    for (const s of strings) expect(bytesOf((d) => d.text(s))).toBe(utf8(copyText(s)));
    for (const n of [0, 7, 10, 99, 100, 12_345, -1, -10, 1_700_000_000_123, -1_700_000_000_123, Number.MAX_SAFE_INTEGER, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), 99_999_999, 100_000_000, 100_000_001, 1e15, 1.5, 1e21, -0]) expect(bytesOf((d) => d.int(n))).toBe(String(n));
    const random = Array.from({ length: 5_000 }, (_, i) => Math.floor(Math.random() * 10 ** (i % 16)) * (i % 3 === 0 ? -1 : 1));
    expect(bytesOf((d) => random.forEach((n) => (d.int(n), d.byte(32))))).toBe(random.map((n) => `${String(n)} `).join(""));
  });

  it("hands a long payload on in chunks that add up to every row", () => {
    const d = new CopyData();
    const chunks: Buffer[] = [];
    d.start((c) => chunks.push(Buffer.from(c)));
    const want: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      d.text(`u${i}`);
      d.byte(9);
      d.int(i * 1_000_003);
      d.byte(10);
      d.endRow();
      want.push(`u${i}\t${i * 1_000_003}\n`);
    }
    d.flush();
    expect(chunks.length).toBeGreaterThan(2);
    expect(Buffer.concat(chunks).toString("utf8")).toBe(want.join(""));
  });

  it("encodes a record's row as the reference: entity, event time, seq, contributions (absent features left out)", () => {
    const features = [{ name: "orders" }, { name: 'we"ird\\name' }, { name: "last_item" }, { name: "tab\tname" }];
    const heads = features.map((f) => `${JSON.stringify(f.name)}:`);
    const encode = encoderOf(features);
    const rows: [string, number, number, unknown[]][] = [
      ["u1", 1_700_000_000_000, 0, [1, 2.5, "item-1", undefined]],
      ["u\t2\\x", -5, 3, [undefined, undefined, undefined, undefined]],
      ["ü", 0, 12, [undefined, -0, { x: "a\nb" }, null]],
      ["u4", 7, 1, [undefined, undefined, "back\\slash \"q\"", [1, 2]]],
    ];
    for (const [entity, t, seq, vals] of rows) {
      const row = { entity, t, seq, values: vals, cluster: "c", topic: "t", partition: 0, offset: "1" } as unknown as OfflineRow;
      expect(bytesOf((d) => encode(d, row))).toBe(utf8(`\t${copyText(entity)}\t${t}\t${seq}\t${copyText(contributionsOf(heads, vals))}\n`));
    }
  });
});
