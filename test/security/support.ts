import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject } from "vitest";
import { createKafka } from "../../lib/connectors/kafka/client.ts";
import { createTopicsReady } from "../../lib/connectors/kafka/topics.ts";
import { createRedis } from "../../lib/connectors/redis/client.ts";
import { SfError } from "../../lib/errors.ts";
import { createLogger } from "../../lib/observability/logger.ts";
import { Connections } from "../../lib/runtime/connections.ts";
import { Fleet } from "../../lib/runtime/fleet.ts";

/** The secured stack's variables: worker principals, and the `admin` named connection. */
export function secureEnv(): Record<string, string> {
  return inject("secureEnv");
}

/** `describe` for suites on the secured stack; skipped, saying why, where it cannot run. */
export function describeSecure(name: string, fn: () => void): void {
  const reason = inject("secureSkipReason");
  if (reason) describe.skip(`${name} (skipped: ${reason})`, fn);
  else describe(name, fn);
}

/** Connections of the secured stack with `overrides` (e.g. a wrong password file). */
export function connections(overrides: Record<string, string> = {}): Connections {
  return new Connections({ ...secureEnv(), ...overrides });
}

export const silent = createLogger({ level: "silent" });

/** Starts a fleet of `dir` with `env`; returns the SfError it fails to start with (and fails the test if it starts). */
export async function startError(dir: string, env: Record<string, string>): Promise<SfError> {
  const fleet = await Fleet.load([dir], { env, logger: silent });
  try {
    await fleet.start();
  } catch (err) {
    await fleet.stop(2000).catch(() => {});
    expect(err).toBeInstanceOf(SfError);
    return err as SfError;
  }
  await fleet.stop(2000);
  throw new Error("the fleet started");
}

/** Kafka as the admin principal (creates topics, reads what workers wrote). */
export function adminKafka() {
  return createKafka(connections(), "admin", silent, "security-tests");
}

/** Creates `topics` (one partition each) as the admin before the file's tests, and deletes them after. */
export function adminTopics(topics: string[]): void {
  const withAdmin = async (use: (admin: ReturnType<ReturnType<typeof adminKafka>["admin"]>) => Promise<void>) => {
    if (!secureEnv().KAFKA_BROKERS) return;
    const admin = adminKafka().admin();
    await admin.connect();
    try {
      await use(admin);
    } finally {
      await admin.disconnect();
    }
  };
  beforeAll(() => withAdmin((admin) => createTopicsReady(admin, topics, 1)));
  afterAll(() => withAdmin((admin) => admin.deleteTopics({ topics }).catch(() => {})));
}

/** Redis as the admin user (every key and command: reads results, cleans up). */
export function adminRedis() {
  return createRedis(connections(), "admin");
}

/** The CA and certificates directory of the secured stack. */
export function certsDir(): string {
  return path.dirname(secureEnv().KAFKA_SSL_CA_FILE!);
}

/** A file holding a password no server accepts. */
export function wrongPasswordFile(dir: string): string {
  const file = path.join(dir, "wrong.secret");
  fs.writeFileSync(file, "not-the-password-3f9a", { mode: 0o600 });
  return file;
}

/**
 * Every secret of the secured stack as it could appear in output: each password and token,
 * and the private keys (their PEM bodies line by line).
 */
export function secretValues(): string[] {
  const env = secureEnv();
  const secrets = [...new Set(Object.entries(env).filter(([k]) => /PASSWORD.*_FILE$|TOKEN_FILE$/.test(k)).map(([, v]) => v))].map((f) => fs.readFileSync(f, "utf8").trim());
  const keyLines = fs
    .readdirSync(certsDir())
    .filter((f) => f.endsWith(".key"))
    .flatMap((f) => fs.readFileSync(path.join(certsDir(), f), "utf8").split("\n"))
    .filter((l) => l.length >= 40 && !l.startsWith("-----"));
  return [...secrets, ...keyLines];
}
