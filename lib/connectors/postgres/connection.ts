import fs from "node:fs";
import type pg from "pg";
import { authDenied, authFailed, tlsError } from "../../runtime/connections.ts";
import type { Connections, SecuredConnection } from "../../runtime/connections.ts";
import { SfError } from "../../errors.ts";

/** Where the pool connects, resolved once from the environment; never logged. */
export interface PgTarget {
  config: pg.PoolConfig;
  /** Host, port and database only, fit for logs and errors. */
  display: string;
  /** How the connection is secured, for security errors (variable names, never values). */
  secured: SecuredConnection & { user: string };
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
  const display = `${u.hostname}:${u.port || 5432}${u.pathname}`;
  const v = (variable: string) => connections.variable(variable, name);
  const secured = {
    what: `PostgreSQL connection "${name}"`,
    target: display,
    credentials: `the user in ${v("DATABASE_URL")} and ${v("PGPASSWORD")} (or ${v("PGPASSWORD")}_FILE)`,
    ca: v("PGSSLROOTCERT"),
    user: decodeURIComponent(u.username) || "(none)",
  };
  return { config, display, secured };
}

/**
 * A refused login (SQLSTATE 28xxx: wrong password, no pg_hba.conf entry, e.g. without TLS), a
 * missing password, a denied privilege (42501) or a refused server certificate, as one
 * non-retriable SfError naming the connection and what to check; undefined for anything else
 * (an outage, a row the table refuses). PostgreSQL's texts for these name the role, the
 * database and the object, never a password, so they are kept.
 */
export function pgSecurityError(err: unknown, target: PgTarget): SfError | undefined {
  const c = target.secured;
  const code = (err as { code?: unknown } | undefined)?.code;
  const message = err instanceof Error ? err.message : "";
  if (code === "28P01") return authFailed(err, c, `PostgreSQL refused the password of role ${c.user} (${message})`);
  if (code === "28000") return authFailed(err, c, `PostgreSQL admits no such login (${message}), e.g. without TLS where it demands TLS (${c.ca.replace("PGSSLROOTCERT", "PGSSLMODE")})`);
  // pg's own check: the server asked for a password (SCRAM) and none was configured.
  if (/client password must be a string/.test(message)) return authFailed(err, c, `PostgreSQL asked role ${c.user} for a password and none was given`);
  if (code === "42501") return authDenied(err, c, `role ${c.user}`, `what the sink needs (${message}); grant it (schema USAGE/CREATE, table INSERT)`);
  return tlsError(err, c);
}

function readCa(path: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (err) {
    throw new SfError("SF_ERR_CONFIG_MISSING", `the sslrootcert ${path} cannot be read`, { cause: err });
  }
}
