/** What `streamfleet test` prints, and the JUnit XML it writes for CI (`--junit FILE`). */
import path from "node:path";
import { formatPath } from "../topology/loader.ts";
import { show } from "./compare.ts";
import type { CaseResult, FileResult } from "./run.ts";

export interface Totals {
  passed: number;
  failed: number;
  notRun: number;
  errors: number;
}

export function totals(results: readonly FileResult[]): Totals {
  const t = { passed: 0, failed: 0, notRun: 0, errors: 0 };
  for (const f of results) {
    if (f.problems) t.errors++;
    for (const c of f.cases) {
      if (c.status === "passed") t.passed++;
      else if (c.status === "failed") t.failed++;
      else if (c.status === "not run") t.notRun++;
      else t.errors++;
    }
  }
  return t;
}

const rel = (file: string) => path.relative(process.cwd(), file) || file;
const at = (file: string, line: number | undefined) => (line ? `${rel(file)}:${line}` : rel(file));

/** The readable report: a line per case, and under a failed one each differing path with both sides. */
export function textReport(results: readonly FileResult[]): string {
  const lines: string[] = [];
  for (const f of results) {
    if (f.problems) {
      lines.push(`ERROR ${rel(f.file)}`, ...f.problems.map((p) => `      ${p}`));
      continue;
    }
    lines.push(`${rel(f.file)} (topology ${f.topology})`, ...f.notes.map((n) => `      ${n}`));
    for (const c of f.cases) lines.push(...caseLines(f.file, c));
  }
  const t = totals(results);
  lines.push("", `${t.passed} passed, ${t.failed} failed, ${t.notRun} not run, ${t.errors} errors`);
  return lines.join("\n");
}

function caseLines(file: string, c: CaseResult): string[] {
  const ms = `${Math.round(c.ms)} ms`;
  switch (c.status) {
    case "passed":
      return [`  ok      ${c.name} (${ms})`];
    case "not run":
      return [`  not run ${c.name} (${at(file, c.line)}): ${c.reason}`];
    case "error":
      return [`  ERROR   ${c.name} (${at(file, c.line)}): ${c.reason}`];
    case "failed":
      return [`  FAIL    ${c.name} (${at(file, c.line)})`, ...diffLines(file, c).map((l) => `          ${l}`)];
  }
}

function diffLines(file: string, c: CaseResult): string[] {
  return (c.differences ?? []).flatMap((d) => [`${formatPath(d.parts)}${d.line ? ` (line ${d.line})` : ""}`, `  expected: ${show(d.expected)}`, `  actual:   ${show(d.actual)}`]);
}

const xml = (s: string) => s.replace(/[<>&"']/g, (ch) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[ch]!).split("")
    .filter((ch) => ch >= " " || ch === "\n" || ch === "\t" || ch === "\r") // XML 1.0 has no other control characters
    .join("");

/** JUnit XML: a testsuite per test file, a testcase per case; not run is <skipped>, a file that cannot run is one <error>. */
export function junitReport(results: readonly FileResult[]): string {
  const suites = results.map((f) => {
    const name = rel(f.file);
    if (f.problems) {
      return `  <testsuite name="${xml(name)}" tests="1" failures="0" errors="1" skipped="0" time="0">\n    <testcase classname="${xml(name)}" name="(file)" file="${xml(name)}">\n      <error message="${xml(f.problems[0] ?? "")}" type="SF_ERR_TEST_INVALID">${xml(f.problems.join("\n"))}</error>\n    </testcase>\n  </testsuite>`;
    }
    const t = totals([f]);
    const time = f.cases.reduce((s, c) => s + c.ms, 0) / 1000;
    const cases = f.cases.map((c) => {
      const open = `    <testcase classname="${xml(f.topology ?? name)}" name="${xml(c.name)}" file="${xml(name)}"${c.line ? ` line="${c.line}"` : ""} time="${(c.ms / 1000).toFixed(3)}"`;
      if (c.status === "passed") return `${open}/>`;
      const body =
        c.status === "not run"
          ? `<skipped message="${xml(`not run: ${c.reason}`)}"/>`
          : c.status === "error"
            ? `<error message="${xml(c.reason ?? "")}" type="SF_ERR_TEST_FAILED">${xml(c.reason ?? "")}</error>`
            : `<failure message="${xml(`${c.differences?.length ?? 0} difference(s) from the expectation`)}" type="SF_ERR_TEST_FAILED">${xml(diffLines(f.file, c).join("\n"))}</failure>`;
      return `${open}>\n      ${body}\n    </testcase>`;
    });
    return `  <testsuite name="${xml(name)}" tests="${f.cases.length}" failures="${t.failed}" errors="${t.errors}" skipped="${t.notRun}" time="${time.toFixed(3)}">\n${cases.join("\n")}\n  </testsuite>`;
  });
  const t = totals(results);
  const all = t.passed + t.failed + t.notRun + t.errors;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="streamfleet test" tests="${all}" failures="${t.failed}" errors="${t.errors}" skipped="${t.notRun}">\n${suites.join("\n")}\n</testsuites>\n`;
}
