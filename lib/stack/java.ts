import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { which } from "./daemon.ts";
import { StackError } from "./errors.ts";
import { missingToolsLine } from "./tools.ts";

/** What a user without Java can do instead of installing it. */
export const JAVA_ALTERNATIVES = "or set STREAMFLEET_STACK=docker, or point KAFKA_BROKERS/SCHEMA_REGISTRY_URL at running servers";

/** Fails with a fix-it line unless Java 17+ is on PATH. */
export function requireJava(): string {
  const java = which("java");
  if (!java) throw new StackError("SF_ERR_STACK_NO_JAVA", `${missingToolsLine(["java"])}, ${JAVA_ALTERNATIVES}`);
  const r = spawnSync(java, ["-version"], { encoding: "utf8" });
  const m = /version "(\d+)/.exec(r.stderr ?? "");
  if (m && Number(m[1]) < 17) {
    throw new StackError("SF_ERR_STACK_OLD_JAVA", `Java ${m[1]} found at ${java}, but Kafka 4 needs Java 17+: install openjdk-17`);
  }
  return java;
}

function requireMaven(what: string): string {
  const mvn = which("mvn");
  if (!mvn) throw new StackError("SF_ERR_STACK_NO_MAVEN", `${missingToolsLine(["mvn"])}: it fetches ${what} from Maven Central, once`);
  return mvn;
}

function runMaven(args: string[], what: string, logFile: string): void {
  const mvn = requireMaven(what);
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const r = spawnSync(mvn, ["-B", "-q", "-Dstyle.color=never", ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  fs.writeFileSync(logFile, `${r.stdout ?? ""}${r.stderr ?? ""}`);
  if (r.status !== 0) {
    const firstError = `${r.stdout}\n${r.stderr}`.split("\n").find((l) => l.includes("ERROR")) ?? "";
    throw new StackError(
      "SF_ERR_STACK_FETCH",
      `could not fetch ${what} with Maven (${firstError.trim().slice(0, 200)}); check network access to Maven Central, full log: ${logFile}`,
    );
  }
}

/**
 * Copies the runtime jars of a pom into `dir`, once: a marker holding the pom's hash makes a
 * second call (and a second `stack up`) reuse the cache without touching the network.
 */
export function ensurePomJars(pomFile: string, dir: string, what: string, logFile: string): void {
  const hash = crypto.createHash("sha256").update(fs.readFileSync(pomFile)).digest("hex");
  const marker = path.join(dir, ".complete");
  if (fs.existsSync(marker) && fs.readFileSync(marker, "utf8") === hash) return;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  runMaven(
    ["-f", pomFile, "dependency:copy-dependencies", "-DincludeScope=runtime", `-DoutputDirectory=${dir}`],
    what,
    logFile,
  );
  fs.writeFileSync(marker, hash);
}

/** Fetches one artifact (g:a:v:type:classifier) into `dir` once and returns its path. */
export function ensureArtifact(coords: string, fileName: string, dir: string, what: string, logFile: string): string {
  const file = path.join(dir, fileName);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(dir, { recursive: true });
  runMaven(["dependency:copy", `-Dartifact=${coords}`, `-DoutputDirectory=${dir}`], what, logFile);
  if (!fs.existsSync(file)) {
    throw new StackError("SF_ERR_STACK_FETCH", `Maven finished but ${file} is missing; see ${logFile}`);
  }
  return file;
}
