import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Daemons } from "./daemon.ts";
import { StackError } from "./errors.ts";
import { ensureArtifact, requireJava } from "./java.ts";
import { httpOk, tcpOpen, waitFor } from "./probe.ts";

/**
 * Apicurio Registry 3.0.x (Confluent-compatible API under /apis/ccompat/v7). 3.0.x is the
 * newest 3.x line that runs on Java 17; 3.1+ needs Java 21.
 */
export const APICURIO_VERSION = "3.0.9";

export interface RegistryOptions {
  stateDir: string;
  port: number;
  startTimeoutMs: number;
  /** HTTPS only, on `port`, with this certificate and key (the secured stack). */
  tls?: { cert: string; key: string; ca: string };
  /** Where the jar is unpacked (default `<stateDir>/registry`): the secured stack shares the open one's. */
  runnerStateDir?: string;
}

/** The registry's runnable jar under the state dir; once it exists, starting needs no Maven. */
export function registryRunner(stateDir: string): string {
  return path.join(stateDir, "registry", `apicurio-${APICURIO_VERSION}`, `apicurio-registry-app-${APICURIO_VERSION}-runner.jar`);
}

export async function startRegistry(daemons: Daemons, o: RegistryOptions): Promise<void> {
  const java = requireJava();
  const home = path.join(o.runnerStateDir ?? o.stateDir, "registry");
  const appDir = path.join(home, `apicurio-${APICURIO_VERSION}`);
  const runner = registryRunner(o.runnerStateDir ?? o.stateDir);
  if (await tcpOpen("127.0.0.1", o.port)) {
    throw new StackError(
      "SF_ERR_STACK_PORT_IN_USE",
      `port ${o.port} is in use by another process, so the schema registry cannot start: stop it, set STREAMFLEET_REGISTRY_PORT, or set SCHEMA_REGISTRY_URL to use a running registry`,
    );
  }
  if (!fs.existsSync(runner)) {
    const tarball = ensureArtifact(
      `io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:tar.gz:all`,
      `apicurio-registry-app-${APICURIO_VERSION}-all.tar.gz`,
      path.join(home, "download"),
      "Apicurio Registry",
      path.join(o.stateDir, "logs", "maven-registry.log"),
    );
    fs.mkdirSync(appDir, { recursive: true });
    const untar = spawnSync("tar", ["xzf", tarball, "-C", appDir], { encoding: "utf8" });
    if (untar.status !== 0 || !fs.existsSync(runner)) {
      throw new StackError("SF_ERR_STACK_FETCH", `unpacking ${tarball} failed: ${untar.stderr.trim()}`);
    }
  }
  daemons.start({
    name: "registry",
    command: java,
    args: [
      "-Xms128m",
      "-Xmx512m",
      ...(o.tls
        ? [`-Dquarkus.http.ssl-port=${o.port}`, "-Dquarkus.http.port=0", "-Dquarkus.http.insecure-requests=disabled", `-Dquarkus.http.ssl.certificate.files=${o.tls.cert}`, `-Dquarkus.http.ssl.certificate.key-files=${o.tls.key}`]
        : [`-Dquarkus.http.port=${o.port}`]),
      "-Dquarkus.http.host=127.0.0.1",
      "-Dquarkus.log.level=WARN",
      "-Dapicurio.rest.deletion.artifact.enabled=true",
      "-Dapicurio.rest.deletion.artifact-version.enabled=true",
      "-jar",
      runner,
    ],
    cwd: appDir,
  });
  const subjects = `${o.tls ? "https://localhost" : "http://127.0.0.1"}:${o.port}/apis/ccompat/v7/subjects`;
  const ok = await waitFor(() => httpOk(subjects, 1000, o.tls?.ca), o.startTimeoutMs);
  if (!ok) {
    const tail = daemons.tail("registry", 3);
    await daemons.stop("registry");
    throw new StackError(
      "SF_ERR_STACK_TIMEOUT",
      `the schema registry did not answer on 127.0.0.1:${o.port} within ${o.startTimeoutMs / 1000}s; log ${daemons.logFile("registry")}: ${tail.slice(-300)}`,
    );
  }
}
