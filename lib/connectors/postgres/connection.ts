import fs from "node:fs";
import type pg from "pg";
import type { Connections } from "../../runtime/connections.ts";
import { SfError } from "../../errors.ts";

/** Where the pool connects, resolved once from the environment; never logged. */
export interface PgTarget {
  config: pg.PoolConfig;
  /** Host, port and database only, fit for logs and errors. */
  display: string;
}

/**
 * Connection `name`: DATABASE_URL(__NAME); PGPASSWORD(_FILE) overrides the URL's password;
 * PGSSLMODE (disable, require, verify-ca, verify-full; else the URL's sslmode) and
 * PGSSLROOTCERT (a CA file). The SSL settings are taken out of the URL and built here so
 * pg's own URL parsing cannot override them.
 */
export function pgTarget(connections: Connections, name: string): PgTarget {
  const u = new URL(connections.require("DATABASE_URL", name));
  const password = connections.get("PGPASSWORD", name);
  const mode = connections.get("PGSSLMODE", name) ?? u.searchParams.get("sslmode") ?? "disable";
  const caPath = connections.get("PGSSLROOTCERT", name) ?? u.searchParams.get("sslrootcert") ?? undefined;
  for (const p of ["sslmode", "sslrootcert", "sslcert", "sslkey", "ssl"]) u.searchParams.delete(p);
  // Into the URL, not config.password: pg lays what it parses from connectionString over the
  // other fields, so a URL without a password would blank PGPASSWORD(_FILE) out.
  if (password) u.password = encodeURIComponent(password);
  const config: pg.PoolConfig = { connectionString: u.toString() };
  const ca = caPath ? connections.file("PGSSLROOTCERT", name) ?? readCa(caPath) : undefined;
  switch (mode) {
    case "disable":
    case "allow":
    case "prefer":
      config.ssl = false;
      break;
    case "require":
      config.ssl = ca ? { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } : { rejectUnauthorized: false };
      break;
    case "verify-ca":
      config.ssl = { ...(ca ? { ca } : {}), rejectUnauthorized: true, checkServerIdentity: () => undefined };
      break;
    case "verify-full":
      config.ssl = { ...(ca ? { ca } : {}), rejectUnauthorized: true };
      break;
    default:
      throw new SfError("SF_ERR_CONFIG_MISSING", `PGSSLMODE for connection "${name}" is "${mode}"; expected disable, require, verify-ca or verify-full`);
  }
  return { config, display: `${u.hostname}:${u.port || 5432}${u.pathname}` };
}

function readCa(path: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (err) {
    throw new SfError("SF_ERR_CONFIG_MISSING", `the sslrootcert ${path} cannot be read`, { cause: err });
  }
}
